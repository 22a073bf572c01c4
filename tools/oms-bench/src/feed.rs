//! `feed-latency`: W long-poll waiters on `/api/changes`, one commit per
//! round, and for every waiter the time from the commit's acknowledgement
//! (the daemon's response, or the CLI process's exit) to its own response.
//!
//! A waiter may be answered before the writer's own response reaches it;
//! such a wake counts as 0 ms.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oms_core::prelude::*;
use oms_core::{Db, Location};
use tokio::sync::{mpsc, watch};

use crate::http::{self, Conn};
use crate::stats::Samples;
use crate::{CommitVia, FeedArgs, Result};

/// How long a waiter waits (the request's `wait`), and so the longest a
/// round may take.
const WAIT_SECS: u64 = 30;

/// What one waiter saw in one round.
struct Wake {
    at: Instant,
    next: i64,
    changes: usize,
}

/// One waiter: a keep-alive connection re-armed for every round.
async fn waiter(
    addr: SocketAddr,
    token: String,
    mut arm: watch::Receiver<Option<i64>>,
    done: mpsc::Sender<Result<Wake, String>>,
) {
    let mut conn = match Conn::connect(addr).await {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e.to_string())).await;
            return;
        }
    };
    while arm.changed().await.is_ok() {
        let Some(after) = *arm.borrow_and_update() else {
            return;
        };
        let path = format!("/api/changes?after={after}&wait={WAIT_SECS}");
        let req = http::request("GET", &path, addr, Some(&token), None);
        let wake = async {
            let resp = conn.call(&req, Duration::from_secs(WAIT_SECS + 10)).await?;
            let at = Instant::now();
            if resp.status != 200 {
                return Err(format!("GET {path} answered {}: {}", resp.status, resp.text()).into());
            }
            let json = resp.json()?;
            Ok::<_, crate::Error>(Wake {
                at,
                next: json["next"].as_i64().unwrap_or(after),
                changes: json["changes"].as_array().map_or(0, Vec::len),
            })
        }
        .await
        .map_err(|e| e.to_string());
        let failed = wake.is_err();
        if done.send(wake).await.is_err() || failed {
            return;
        }
    }
}

/// Makes one commit and returns when it is acknowledged.
async fn commit(args: &FeedArgs, addr: SocketAddr, conn: &mut Conn, round: usize) -> Result<()> {
    match args.commit {
        CommitVia::Http => {
            let body = serde_json::json!({"name": format!("Feed bench round {round}")}).to_string();
            let path = format!("/api/products/{}", args.sku);
            let req = http::request("PATCH", &path, addr, Some(&args.token), Some(&body));
            let resp = conn.call(&req, Duration::from_secs(15)).await?;
            if resp.status != 200 {
                return Err(
                    format!("PATCH {path} answered {}: {}", resp.status, resp.text()).into(),
                );
            }
        }
        CommitVia::Cli => {
            let (oms, db, sku) = (args.oms.clone(), args.db.clone(), args.sku.clone());
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new(oms)
                    .arg("--db")
                    .arg(db)
                    .args(["product", "restock", &sku, "--add", "1", "-q"])
                    .stdout(std::process::Stdio::null())
                    .status()
            })
            .await??;
            if !status.success() {
                return Err(format!("oms product restock exited with {status}").into());
            }
        }
    }
    Ok(())
}

fn last_seq(db: &std::path::Path) -> Result<i64> {
    Ok(Db::open(&Location::File(db.to_path_buf()))?
        .last_seq()?
        .get())
}

pub async fn run(args: &FeedArgs) -> Result<()> {
    let addr = http::loopback_addr(&args.url)?;
    if args.waiters == 0 || args.rounds == 0 {
        return Err("--waiters and --rounds must be at least 1".into());
    }
    let mut after = last_seq(&args.db)?;
    let mut control = Conn::connect(addr).await?;
    let mut writer = Conn::connect(addr).await?;
    let baseline = http::feed_waiters(&mut control, addr).await?;

    let (arm, arm_rx) = watch::channel(None);
    let (done_tx, mut done) = mpsc::channel(args.waiters);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.waiters {
        tasks.spawn(waiter(
            addr,
            args.token.clone(),
            arm_rx.clone(),
            done_tx.clone(),
        ));
    }
    drop(done_tx);

    let mut samples = Samples::default();
    let mut zero = 0usize;
    let started = Instant::now();
    for round in 1..=args.rounds {
        arm.send_replace(Some(after));
        http::await_waiters(
            &mut control,
            addr,
            baseline + args.waiters as u64,
            Duration::from_secs(20),
        )
        .await?;
        commit(args, addr, &mut writer, round).await?;
        let ack = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_SECS + 15);
        let mut next = after;
        for _ in 0..args.waiters {
            let wake = tokio::time::timeout_at(deadline, done.recv())
                .await
                .map_err(|_| format!("round {round}: not every waiter was answered"))?
                .ok_or("a waiter stopped")??;
            if wake.changes == 0 {
                return Err(format!(
                    "round {round}: a waiter was answered without changes (wait ran out)"
                )
                .into());
            }
            let latency = wake.at.saturating_duration_since(ack);
            if latency.is_zero() {
                zero += 1;
            }
            samples.push(latency);
            next = next.max(wake.next);
        }
        after = next;
    }
    let elapsed = started.elapsed().as_secs_f64();
    arm.send_replace(None);
    drop(arm);
    while tasks.join_next().await.is_some() {}

    let via = match args.commit {
        CommitVia::Http => "http",
        CommitVia::Cli => "cli",
    };
    println!(
        "feed-latency commit={via} waiters={} rounds={} wakes={} before_ack={zero} {} seconds={elapsed:.1}",
        args.waiters,
        args.rounds,
        samples.len(),
        samples.summary("")
    );
    Ok(())
}
