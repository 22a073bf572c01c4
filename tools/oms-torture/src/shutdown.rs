//! Graceful shutdown.
//!
//! The daemon under order load, with hundreds of long-polls on the change
//! feed (most of them a customer's, who has nothing to see and so waits the
//! whole time; some an admin's, woken by every commit and polling again),
//! gets SIGTERM. It must exit 0 within the deadline; every long-poll that
//! was waiting when the signal came must get a complete answer (released,
//! not cut when the grace period runs out); no request may end in a reset
//! or a cut answer (a clean close, for a request sent as the daemon stops,
//! is allowed); and every acknowledged order must be in the file, which
//! must pass `oms verify`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::check::audit_async;
use crate::client::{Call, Client, Failure};
use crate::oms::{Daemon, Oms};
use crate::oversell::{Outcome, cart, order_body, place_http};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Long-polls held at once.
    #[arg(long, default_value_t = 500)]
    pub pollers: usize,
    /// How many of them follow the whole feed as the admin (the others are
    /// a customer with no orders, who waits undisturbed).
    #[arg(long, default_value_t = 50)]
    pub admin_pollers: usize,
    /// Concurrent HTTP buyers.
    #[arg(long, default_value_t = 8)]
    pub buyers: usize,
    /// Seconds of load before SIGTERM.
    #[arg(long, default_value_t = 3)]
    pub load_secs: u64,
    /// `wait` of each long-poll, in seconds (longer than the daemon's grace
    /// period, so that only a release ends it early).
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
    /// The daemon must exit within this many seconds of SIGTERM.
    #[arg(long, default_value_t = 10)]
    pub deadline_secs: u64,
}

/// A long-poll that was sent, and how it ended.
struct Poll {
    sent: Instant,
    ended: Instant,
    result: Result<u16, Failure>,
}

/// A poll sent this long before SIGTERM was surely waiting in the daemon.
const SURELY_WAITING: Duration = Duration::from_millis(300);

const WATCHER: &str = "watcher@torture.test";

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = Oms::new(&args.common.oms, work.join("shutdown.db"));
    oms.shop(work, 20, 1_000_000_000, 100).await?;
    oms.must(&[
        "user", "add", "--email", WATCHER, "--name", "Watcher", "--role", "customer",
    ])
    .await?;
    let admin = oms.admin_token().await?;
    let watcher = oms.token(WATCHER).await?;
    let mut verdict = Verdict::new("shutdown");
    let daemon = Daemon::start(&oms, &work.join("shutdown-daemon.log"), &[]).await?;
    let addr = daemon.addr;
    note(format!(
        "shutdown: {} long-polls ({} admin), {} buyers for {} s on {addr}",
        args.pollers, args.admin_pollers, args.buyers, args.load_secs
    ));

    // Stops every loop once the daemon is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for p in 0..args.pollers {
        let token = if p < args.admin_pollers {
            admin.clone()
        } else {
            watcher.clone()
        };
        let (stop, wait) = (Arc::clone(&stop), args.wait);
        pollers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut polls = Vec::new();
            let mut after = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/api/changes?after={after}&limit=1000&wait={wait}");
                let sent = Instant::now();
                let result = client
                    .send(&Call::get(&path, &token), Duration::from_secs(wait + 30))
                    .await;
                let ended = Instant::now();
                let done = match &result {
                    Ok(reply) => {
                        if let Some(next) = reply.json().and_then(|v| v["next"].as_i64()) {
                            after = next;
                        }
                        false
                    }
                    // The daemon is gone: nothing more to ask.
                    Err(Failure::Connect(_)) => true,
                    Err(_) => false,
                };
                if done {
                    break;
                }
                polls.push(Poll {
                    sent,
                    ended,
                    result: result.map(|r| r.status),
                });
            }
            polls
        }));
    }
    let mut buyers = Vec::new();
    for b in 0..args.buyers {
        let (token, stop) = (admin.clone(), Arc::clone(&stop));
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ (b as u64 + 1) << 8);
        buyers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut out = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = order_body(rng.usize(1..=100), &cart(&mut rng, 20), false);
                let key = format!("s-{b}-{n}");
                n += 1;
                let outcome =
                    place_http(&mut client, &token, &key, body, Duration::from_secs(30)).await;
                let gone = matches!(&outcome, Outcome::NotSent(_));
                out.push((key, outcome));
                if gone {
                    break;
                }
            }
            out
        }));
    }

    // Load, and wait until the customer's long-polls are all waiting.
    let waiting_target = (args.pollers - args.admin_pollers.min(args.pollers)) as u64;
    tokio::time::sleep(Duration::from_secs(args.load_secs)).await;
    let mut metrics = Client::new(addr);
    let mut waiting = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        waiting = feed_waiters(&mut metrics).await.unwrap_or(0);
        if waiting >= waiting_target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verdict.check(waiting >= waiting_target, || {
        format!("only {waiting} of {waiting_target} long-polls were waiting before SIGTERM")
    });
    drop(metrics);

    note(format!("SIGTERM with {waiting} long-polls waiting"));
    let signalled = Instant::now();
    let (code, took) = daemon
        .term(Duration::from_secs(args.deadline_secs.max(1) * 3))
        .await?;
    note(format!("daemon exited {code:?} after {took:?}"));
    verdict.check(code == Some(0), || {
        format!("the daemon exited {code:?} after SIGTERM (want 0)")
    });
    verdict.check(took <= Duration::from_secs(args.deadline_secs), || {
        format!(
            "the daemon took {:.1} s to exit after SIGTERM (limit {} s)",
            took.as_secs_f64(),
            args.deadline_secs
        )
    });
    stop.store(true, Ordering::Relaxed);

    // Every long-poll in flight at the signal.
    let (mut released, mut closed, mut bad, mut waited_cut) = (0u64, 0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let mut first_bad: Option<String> = None;
    for p in pollers {
        let polls = tokio::time::timeout(Duration::from_secs(args.wait + 60), p)
            .await
            .map_err(|_| "a long-poller did not finish")??;
        for poll in polls.iter().filter(|p| p.ended >= signalled) {
            let waiting_then = poll.sent + SURELY_WAITING <= signalled;
            match &poll.result {
                Ok(_) => {
                    released += 1;
                    slowest = slowest.max(poll.ended - signalled);
                }
                Err(Failure::Closed) if !waiting_then => closed += 1,
                Err(Failure::Closed) => {
                    waited_cut += 1;
                    first_bad.get_or_insert_with(|| {
                        format!(
                            "a long-poll waiting since {:.1} s before SIGTERM was closed without an answer after {:.1} s",
                            (signalled - poll.sent).as_secs_f64(),
                            (poll.ended - signalled).as_secs_f64()
                        )
                    });
                }
                Err(e) => {
                    bad += 1;
                    first_bad.get_or_insert_with(|| format!("a long-poll ended badly: {e}"));
                }
            }
        }
    }
    verdict.check(waited_cut == 0, || {
        format!(
            "{waited_cut} waiting long-polls were cut instead of released; {}",
            first_bad.clone().unwrap_or_default()
        )
    });
    verdict.check(bad == 0, || {
        format!(
            "{bad} long-polls ended in a reset, a cut answer or a timeout; {}",
            first_bad.clone().unwrap_or_default()
        )
    });

    // Acknowledged orders are on file.
    let mut acked = Vec::new();
    let mut unknown = 0;
    for b in buyers {
        for (key, outcome) in b.await? {
            match outcome {
                Outcome::Ok(id) => acked.push((key, id)),
                Outcome::Refused => {
                    verdict.fail(format!("placement {key} refused with stock to spare"))
                }
                Outcome::Unknown(_) => unknown += 1,
                Outcome::NotSent(_) => {}
            }
        }
    }
    let audit = audit_async(oms.db.clone(), None).await?;
    for p in &audit.problems {
        verdict.fail(format!("after shutdown: {p}"));
    }
    let lost = acked
        .iter()
        .filter(|(key, id)| audit.by_key.get(key).map(|(found, _)| found) != Some(id))
        .count();
    verdict.check(lost == 0, || {
        format!("{lost} acknowledged orders are missing after shutdown")
    });
    let verify = oms.run(&["verify"], Duration::from_secs(60)).await?;
    verdict.check(verify.ok(), || {
        format!("oms verify after shutdown exited {:?}", verify.code)
    });

    verdict.figure("exit_code", code.map_or("none".into(), |c| c.to_string()));
    verdict.figure("exit_secs", format!("{:.2}", took.as_secs_f64()));
    verdict.figure("waiting_at_sigterm", waiting);
    verdict.figure("polls_released", released);
    verdict.figure("polls_closed_clean", closed);
    verdict.figure("polls_cut", waited_cut + bad);
    verdict.figure("slowest_release_ms", slowest.as_millis());
    verdict.figure("acked_orders", acked.len());
    verdict.figure("unanswered_orders", unknown);
    verdict.figure("lost", lost);
    Ok(verdict)
}

/// The daemon's `feed_waiters` gauge from `/metrics` (open on loopback).
async fn feed_waiters(client: &mut Client) -> Option<u64> {
    let call = Call {
        token: None,
        ..Call::get("/metrics", "")
    };
    let reply = client.send(&call, Duration::from_secs(10)).await.ok()?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.split_once(' ')?;
            name.split('{')
                .next()?
                .ends_with("feed_waiters")
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .map(|v| v as u64)
}
