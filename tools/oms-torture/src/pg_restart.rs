//! PostgreSQL restarts under load.
//!
//! Two daemons serve one database of a cluster that belongs to this
//! harness alone (`--pg-dir`, started with `scripts/pg start`). Buyers
//! place orders on both, each with an `Idempotency-Key`, and a prober asks
//! `/healthz` and `GET /api/orders` of each daemon every 100 ms. Mid-load
//! the cluster is stopped (`pg_ctl stop -m fast`), kept down for
//! `--down-secs`, and started again. Every request must get an answer
//! within its client timeout (a timeout or a broken connection is a
//! failure: the daemon must not hang on a dead database); every answer
//! while the cluster is down must be 503 `application/problem+json` (the
//! probes' `/healthz` too, as its documented plain JSON `Health` body with
//! `"status": "unavailable"`); both daemons must answer 2xx again within
//! `--recover-secs` of the start, on their own; at the end every 201's
//! order exists under its key with its id, every placement that got no
//! 201 is retried with its key and body and must now get one, no key holds
//! two orders, and `oms verify` is clean.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::process::Command;

use crate::check::audit_async;
use crate::client::{Call, Client, Reply};
use crate::oms::{Store, start_daemons};
use crate::oversell::{cart, order_body};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A `postgres://` URL of an empty database on the cluster in
    /// --pg-dir.
    #[arg(long)]
    pub db: String,
    /// The directory of this harness's own cluster (`scripts/pg start
    /// DIR`: DIR/data); it is stopped and started again.
    #[arg(long)]
    pub pg_dir: PathBuf,
    /// PostgreSQL's programs.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pub pg_bin: PathBuf,
    /// HTTP buyers, spread over the two daemons.
    #[arg(long, default_value_t = 8)]
    pub buyers: usize,
    /// Seconds of load before the stop.
    #[arg(long, default_value_t = 2)]
    pub before_secs: u64,
    /// Seconds the cluster stays down.
    #[arg(long, default_value_t = 3)]
    pub down_secs: u64,
    /// Both daemons must answer 2xx again within this many seconds of the
    /// cluster's start.
    #[arg(long, default_value_t = 15)]
    pub recover_secs: u64,
    /// Seconds of load after the recovery.
    #[arg(long, default_value_t = 2)]
    pub after_secs: u64,
    /// The client timeout of every request: no answer by then is a hang.
    #[arg(long, default_value_t = 10)]
    pub request_secs: u64,
}

/// One request and its answer (or why none came).
struct Exchange {
    daemon: usize,
    what: String,
    sent: Instant,
    ended: Instant,
    /// (status, content type, the start of the body), or why no answer.
    answer: std::result::Result<(u16, String, String), String>,
}

impl Exchange {
    fn summary(reply: &Reply) -> (u16, String, String) {
        let body: String = String::from_utf8_lossy(&reply.body)
            .chars()
            .take(160)
            .collect();
        (
            reply.status,
            reply.header("content-type").unwrap_or("").to_string(),
            body,
        )
    }
}

/// A placement: its key and body, and its 201's order id if it got one.
struct Placement {
    key: String,
    body: String,
    daemon: usize,
    id: Option<i64>,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let port = args
        .db
        .rsplit_once('@')
        .and_then(|(_, host)| host.split('/').next())
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or("--db must name the port: postgres://USER@127.0.0.1:PORT/DB")?;
    let data = args.pg_dir.join("data");
    if !data.join("postmaster.pid").exists() {
        return Err(format!("no running cluster in {}", args.pg_dir.display()).into());
    }
    let oms = Store {
        db: Some(args.db.clone()),
        daemons: 2,
    }
    .oms(&args.common.oms, work, "")?;
    oms.shop(work, 20, 1_000_000_000, 50).await?;
    let token = oms.admin_token().await?;
    let daemons = start_daemons(&oms, work, "pg-restart", 2).await?;
    let addrs: Vec<_> = daemons.iter().map(|d| d.addr).collect();
    let limit = Duration::from_secs(args.request_secs);
    note(format!(
        "pg-restart: {} buyers on {addrs:?}; cluster {} down for {} s after {} s",
        args.buyers,
        args.pg_dir.display(),
        args.down_secs,
        args.before_secs
    ));
    let mut verdict = Verdict::new("pg-restart");
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    let mut buyers = Vec::new();
    for b in 0..args.buyers {
        let (token, stop) = (token.clone(), Arc::clone(&stop));
        let (d, addr) = (b % addrs.len(), addrs[b % addrs.len()]);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ (b as u64 + 1) << 8);
        buyers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let (mut log, mut placed) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = order_body(rng.usize(1..=50), &cart(&mut rng, 20), false);
                let key = format!("pr-{b}-{n}");
                n += 1;
                let headers = [("idempotency-key", key.as_str())];
                let call = Call {
                    headers: &headers,
                    ..Call::json(Method::POST, "/api/orders", &token, body.clone())
                };
                let sent = Instant::now();
                let result = client.send(&call, limit).await;
                let ended = Instant::now();
                let id = match &result {
                    Ok(r) if r.status == 201 => r.json().and_then(|v| v["id"].as_i64()),
                    _ => None,
                };
                let answer = match &result {
                    Ok(r) => Ok(Exchange::summary(r)),
                    Err(e) => Err(e.to_string()),
                };
                let refused = !matches!(answer, Ok((201, _, _)));
                log.push(Exchange {
                    daemon: d,
                    what: format!("POST /api/orders ({key})"),
                    sent,
                    ended,
                    answer,
                });
                placed.push(Placement {
                    key,
                    body,
                    daemon: d,
                    id,
                });
                if refused {
                    // As a client honouring Retry-After would, a little
                    // (and so that the requests stay bounded).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            (log, placed)
        }));
    }
    let prober = {
        let (token, stop, addrs) = (token.clone(), Arc::clone(&stop), addrs.clone());
        tokio::spawn(async move {
            let mut clients: Vec<Client> = addrs.iter().map(|a| Client::new(*a)).collect();
            let mut log = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for (d, client) in clients.iter_mut().enumerate() {
                    for (what, call) in [
                        (
                            "GET /healthz",
                            Call {
                                token: None,
                                ..Call::get("/healthz", "")
                            },
                        ),
                        ("GET /api/orders", Call::get("/api/orders?limit=1", &token)),
                    ] {
                        let sent = Instant::now();
                        let result = client.send(&call, limit).await;
                        log.push(Exchange {
                            daemon: d,
                            what: what.to_string(),
                            sent,
                            ended: Instant::now(),
                            answer: result
                                .map(|r| Exchange::summary(&r))
                                .map_err(|e| e.to_string()),
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            log
        })
    };

    tokio::time::sleep(Duration::from_secs(args.before_secs)).await;
    note("stopping PostgreSQL (pg_ctl stop -m fast)");
    let stopping = Instant::now();
    pg_ctl(&args, &["stop", "-m", "fast", "-w", "-t", "60"]).await?;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.down_secs)).await;
    note("starting PostgreSQL again");
    let starting = Instant::now();
    let opts = format!("-p {port} -k {}", args.pg_dir.display());
    let log = args.pg_dir.join("postgres.log");
    let log = log.to_str().ok_or("--pg-dir is not UTF-8")?;
    pg_ctl(&args, &["start", "-w", "-t", "60", "-l", log, "-o", &opts]).await?;
    let up = Instant::now();

    // Both daemons answer again, on their own.
    let mut recovered = Vec::new();
    for (d, addr) in addrs.iter().enumerate() {
        let mut client = Client::new(*addr);
        let deadline = up + Duration::from_secs(args.recover_secs);
        let mut back = None;
        while Instant::now() < deadline {
            let call = Call::get("/api/orders?limit=1", &token);
            if let Ok(r) = client.send(&call, limit).await
                && r.status == 200
            {
                back = Some(up.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match back {
            Some(t) => recovered.push(t),
            None => verdict.fail(format!(
                "daemon {d} did not answer 200 within {} s of the restart",
                args.recover_secs
            )),
        }
    }
    tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    stop.store(true, Ordering::Relaxed);

    let mut exchanges = Vec::new();
    let mut placements = Vec::new();
    for b in buyers {
        let (log, placed) = b.await?;
        exchanges.extend(log);
        placements.extend(placed);
    }
    exchanges.extend(prober.await?);

    // Every answer, by when it was asked.
    let (mut hangs, mut during_down, mut unavailable, mut wrong) = (0, 0, 0, 0);
    let mut first_wrong = None;
    for e in &exchanges {
        let in_down = e.sent >= down && e.ended <= starting;
        during_down += usize::from(in_down);
        match &e.answer {
            Err(why) => {
                hangs += 1;
                if hangs <= 3 {
                    verdict.fail(format!(
                        "daemon {}: {} at +{:.2} s got no answer: {why}",
                        e.daemon,
                        e.what,
                        (e.sent - started).as_secs_f64()
                    ));
                }
            }
            Ok((503, ctype, body)) => {
                unavailable += 1;
                // `/healthz` answers plain JSON, not a problem (OpenAPI:
                // `Health`, `"status": "unavailable"`); everything else a
                // problem.
                let right = if e.what == "GET /healthz" {
                    ctype.starts_with("application/json") && body.contains("unavailable")
                } else {
                    ctype.starts_with("application/problem+json")
                };
                if !right {
                    wrong += 1;
                    first_wrong.get_or_insert_with(|| {
                        format!("daemon {}: {} answered 503 as {ctype:?}", e.daemon, e.what)
                    });
                }
            }
            Ok((status, _, body)) if in_down => {
                wrong += 1;
                first_wrong.get_or_insert_with(|| {
                    format!(
                        "daemon {}: {} answered {status} while PostgreSQL was down: {body}",
                        e.daemon, e.what
                    )
                });
            }
            Ok((status, _, _)) if (200..300).contains(status) => {}
            Ok((status, _, body)) => {
                wrong += 1;
                first_wrong.get_or_insert_with(|| {
                    format!("daemon {}: {} answered {status}: {body}", e.daemon, e.what)
                });
            }
        }
    }
    verdict.check(hangs <= 3, || {
        format!(
            "{hangs} requests got no answer within {} s",
            args.request_secs
        )
    });
    verdict.check(wrong == 0, || {
        format!(
            "{wrong} answers were not 2xx or 503 problem+json; first: {}",
            first_wrong.clone().unwrap_or_default()
        )
    });
    let probes_down = exchanges
        .iter()
        .filter(|e| e.what == "GET /healthz" && e.sent >= down && e.ended <= starting)
        .count();
    verdict.check(probes_down > 0, || {
        "no /healthz probe ran while PostgreSQL was down".into()
    });

    // Retries resolve every placement that got no 201.
    let mut clients: Vec<Client> = addrs.iter().map(|a| Client::new(*a)).collect();
    let (mut retried, mut retry_failed) = (0, 0);
    for p in placements.iter_mut().filter(|p| p.id.is_none()) {
        retried += 1;
        // Through the other daemon.
        let d = (p.daemon + 1) % clients.len();
        let headers = [("idempotency-key", p.key.as_str())];
        let call = Call {
            headers: &headers,
            ..Call::json(Method::POST, "/api/orders", &token, p.body.clone())
        };
        match clients[d].send(&call, limit).await {
            Ok(r) if r.status == 201 => p.id = r.json().and_then(|v| v["id"].as_i64()),
            other => {
                retry_failed += 1;
                if retry_failed <= 3 {
                    verdict.fail(format!(
                        "retrying {} after the restart: {:?}",
                        p.key,
                        other.map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                    ));
                }
            }
        }
    }
    let acked = placements.iter().filter(|p| p.id.is_some()).count();

    let end = audit_async(oms.db.clone(), None).await?;
    for p in &end.problems {
        verdict.fail(format!("end: {p}"));
    }
    let mut lost = 0;
    for p in &placements {
        if let Some(id) = p.id {
            let found = end.by_key.get(&p.key).map(|(f, _)| *f);
            if found != Some(id) {
                lost += 1;
                if lost <= 3 {
                    verdict.fail(format!(
                        "placement {} was answered order {id} but the database has {found:?}",
                        p.key
                    ));
                }
            }
        }
    }
    let verify = oms.run(&["verify"], Duration::from_secs(120)).await?;
    verdict.check(verify.ok(), || {
        format!(
            "oms verify exited {:?}: {}",
            verify.code,
            verify.stdout.trim()
        )
    });
    for (d, daemon) in daemons.into_iter().enumerate() {
        let (code, _) = daemon.term(Duration::from_secs(20)).await?;
        verdict.check(code == Some(0), || {
            format!("daemon {d} exited {code:?} after SIGTERM")
        });
    }
    verdict.figure("requests", exchanges.len());
    verdict.figure("while_down", during_down);
    verdict.figure("answered_503", unavailable);
    verdict.figure("no_answer", hangs);
    verdict.figure("wrong_answers", wrong);
    verdict.figure("stop_ms", (down - stopping).as_millis());
    verdict.figure("down_ms", (up - down).as_millis());
    let slowest = recovered.iter().max().copied().unwrap_or_default();
    verdict.figure("recovered_ms", slowest.as_millis());
    verdict.figure("placements", placements.len());
    verdict.figure("retried", retried);
    verdict.figure("acked_orders", acked);
    verdict.figure("lost", lost);
    verdict.figure("orders", end.orders);
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}

/// `pg_ctl -D DIR/data ARGS`, as the cluster's owner (`postgres` when run
/// as root, as `scripts/pg` does).
async fn pg_ctl(args: &Args, rest: &[&str]) -> Result<()> {
    let data = args.pg_dir.join("data");
    let pg_ctl = args.pg_bin.join("pg_ctl");
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    cmd.arg("-D").arg(&data).args(rest);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .map_err(|_| "pg_ctl did not finish in 90 s")??;
    if !out.status.success() {
        return Err(format!(
            "pg_ctl {} failed: {}",
            rest.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}
