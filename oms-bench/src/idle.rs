//! `idle-conns`: holds N long-poll requests on `/api/changes` open (each on
//! its own connection), then reads the daemon's resident memory and times
//! sequential `GET /healthz` requests, compared with the same before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::http::{self, Conn};
use crate::stats::Samples;
use crate::{IdleArgs, Result};

/// A cursor past any real change, so the requests stay idle even if
/// something commits meanwhile.
const FAR_AFTER: i64 = 1 << 60;
/// Connections being opened at once (stays under the listen backlog).
const CONNECTING: usize = 256;

/// The daemon's resident set in MiB, from /proc/PID/status.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmRSS in /proc/PID/status")?;
    Ok(kib / 1024.0)
}

/// The soft limit on open files of this process, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn healthz(addr: SocketAddr, n: usize) -> Result<Samples> {
    let mut conn = Conn::connect(addr).await?;
    let req = http::request("GET", "/healthz", addr, None, None);
    let mut samples = Samples::default();
    for _ in 0..n {
        let t = Instant::now();
        let resp = conn.call(&req, Duration::from_secs(10)).await?;
        samples.push(t.elapsed());
        if resp.status != 200 {
            return Err(format!("GET /healthz answered {}", resp.status).into());
        }
    }
    Ok(samples)
}

async fn open_idle(addr: SocketAddr, req: Arc<Vec<u8>>, gate: Arc<Semaphore>) -> Result<TcpStream> {
    let _permit = gate.acquire_owned().await?;
    let mut conn = Conn::connect(addr).await?;
    conn.send(&req).await?;
    Ok(conn.into_inner())
}

pub async fn run(args: &IdleArgs) -> Result<()> {
    let addr = http::loopback_addr(&args.url)?;
    if let Some(limit) = open_files_limit() {
        let need = args.count as u64 + 64;
        if limit < need {
            return Err(format!(
                "holding {} connections needs {need} open files, the limit is {limit} (ulimit -n)",
                args.count
            )
            .into());
        }
    }
    let mut control = Conn::connect(addr).await?;
    let baseline = http::feed_waiters(&mut control, addr).await?;
    let rss_before = rss_mib(args.pid)?;
    let mut before = healthz(addr, args.healthz).await?;

    let path = format!("/api/changes?after={FAR_AFTER}&wait=60");
    let req = Arc::new(http::request("GET", &path, addr, Some(&args.token), None));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let started = Instant::now();
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..args.count {
        opening.spawn(open_idle(addr, req.clone(), gate.clone()));
    }
    let mut held = Vec::with_capacity(args.count);
    while let Some(conn) = opening.join_next().await {
        held.push(conn??);
    }
    // Every request is registered as a waiter: nothing answered them early.
    http::await_waiters(
        &mut control,
        addr,
        baseline + args.count as u64,
        Duration::from_secs(30),
    )
    .await?;
    let open_secs = started.elapsed().as_secs_f64();
    let rss = rss_mib(args.pid)?;
    let mut during = healthz(addr, args.healthz).await?;
    let waiting = http::feed_waiters(&mut control, addr).await?;
    if waiting < baseline + args.count as u64 {
        return Err(format!("only {waiting} long-polls were still waiting").into());
    }

    // Close them and see the daemon let go of them.
    drop(held);
    let released = Instant::now();
    let mut left = waiting;
    while left > baseline && released.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = http::feed_waiters(&mut control, addr).await?;
    }
    println!(
        "idle-conns count={} open_s={open_secs:.1} rss_before_mb={rss_before:.1} rss_mb={rss:.1} {} {} released_s={:.1} still_waiting={}",
        args.count,
        before.summary("before_healthz_"),
        during.summary("healthz_"),
        released.elapsed().as_secs_f64(),
        left.saturating_sub(baseline)
    );
    Ok(())
}
