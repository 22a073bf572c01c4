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
//!
//! With `--db postgres://...` and `--daemons N` (`shutdown-pg`), N daemons
//! serve one PostgreSQL database with the polls and buyers spread over
//! them, and get SIGTERM one after another (the others still under load):
//! each must exit 0 in time and release its own waiting polls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::check::audit_async;
use crate::client::{Call, Client, Failure};
use crate::oms::{Store, start_daemons};
use crate::oversell::{Outcome, cart, order_body, place_http};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub store: Store,
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
    /// The daemon it was sent to.
    daemon: usize,
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
    let oms = args.store.oms(&args.common.oms, work, "shutdown.db")?;
    oms.shop(work, 20, 1_000_000_000, 100).await?;
    oms.must(&[
        "user", "add", "--email", WATCHER, "--name", "Watcher", "--role", "customer",
    ])
    .await?;
    let admin = oms.admin_token().await?;
    let watcher = oms.token(WATCHER).await?;
    let pg = args.store.db.is_some();
    let mut verdict = Verdict::new(if pg { "shutdown-pg" } else { "shutdown" });
    let n = args.store.daemons;
    let daemons = start_daemons(&oms, work, "shutdown", n).await?;
    let addrs: Vec<_> = daemons.iter().map(|d| d.addr).collect();
    note(format!(
        "shutdown: {} long-polls ({} admin), {} buyers for {} s on {addrs:?} ({})",
        args.pollers,
        args.admin_pollers,
        args.buyers,
        args.load_secs,
        args.store.backend()
    ));

    // Stops every loop once the daemon is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for p in 0..args.pollers {
        let (daemon, addr) = (p % n, addrs[p % n]);
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
                    daemon,
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
        let addr = addrs[b % n];
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

    // Load, then daemon after daemon: wait until the customer's long-polls
    // on it are all waiting, and SIGTERM it.
    tokio::time::sleep(Duration::from_secs(args.load_secs)).await;
    let mut signalled = Vec::with_capacity(n);
    let (mut codes, mut waiting, mut took) = (Vec::new(), 0, Duration::ZERO);
    for (i, daemon) in daemons.into_iter().enumerate() {
        let target = (args.admin_pollers.min(args.pollers)..args.pollers)
            .filter(|p| p % n == i)
            .count() as u64;
        let mut metrics = Client::new(addrs[i]);
        let mut here = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            here = feed_waiters(&mut metrics).await.unwrap_or(0);
            if here >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        verdict.check(here >= target, || {
            format!("daemon {i}: only {here} of {target} long-polls were waiting before SIGTERM")
        });
        drop(metrics);
        waiting += here;

        note(format!(
            "SIGTERM to daemon {i} with {here} long-polls waiting"
        ));
        signalled.push(Instant::now());
        let (code, t) = daemon
            .term(Duration::from_secs(args.deadline_secs.max(1) * 3))
            .await?;
        note(format!("daemon {i} exited {code:?} after {t:?}"));
        verdict.check(code == Some(0), || {
            format!("daemon {i} exited {code:?} after SIGTERM (want 0)")
        });
        verdict.check(t <= Duration::from_secs(args.deadline_secs), || {
            format!(
                "daemon {i} took {:.1} s to exit after SIGTERM (limit {} s)",
                t.as_secs_f64(),
                args.deadline_secs
            )
        });
        codes.push(code.map_or("none".into(), |c| c.to_string()));
        took = took.max(t);
    }
    stop.store(true, Ordering::Relaxed);

    // Every long-poll in flight at the signal.
    let (mut released, mut closed, mut bad, mut waited_cut) = (0u64, 0u64, 0u64, 0u64);
    let mut slowest = Duration::ZERO;
    let mut first_bad: Option<String> = None;
    for p in pollers {
        let polls = tokio::time::timeout(Duration::from_secs(args.wait + 60), p)
            .await
            .map_err(|_| "a long-poller did not finish")??;
        for poll in polls.iter().filter(|p| p.ended >= signalled[p.daemon]) {
            let signalled = signalled[poll.daemon];
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

    if pg {
        verdict.figure("daemons", n);
    }
    verdict.figure("exit_code", codes.join(","));
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
