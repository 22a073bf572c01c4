//! kill -9 crash loop.
//!
//! Round after round: start the daemon, put it under order load (HTTP
//! buyers, each placement with its own Idempotency-Key) while an `oms order
//! import` runs beside it on the same file, and SIGKILL the daemon at a
//! random moment (in some rounds the import too). After each kill, with no
//! process on the file: `oms verify` (which runs `PRAGMA integrity_check`)
//! must pass, no order may lack items, reserved stock must equal the open
//! orders, every acknowledged placement (201, or an import that exited 0)
//! must exist, and a killed import must have written all of its orders or
//! none. Placements without an answer are replayed with the same key and
//! body after the restart: the answer must be 201 (the existing order,
//! `Idempotent-Replayed: true`, or created now), and no key may ever hold
//! two orders. Every few rounds `oms backup` runs under load; the copy must
//! pass `oms verify` and the same audit.
//!
//! With `--db postgres://...` and `--daemons N` (`crash-pg`), N daemons
//! serve one PostgreSQL database with the buyers spread over them, and each
//! round SIGKILLs one of them (in turn) while the others keep serving; the
//! checks run once the load has stopped, and the unanswered placements are
//! replayed through another daemon than the one killed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::check::audit_async;
use crate::client::Client;
use crate::oms::{Daemon, Oms, Store, customer, daemon_log, path_str, sku};
use crate::oversell::{Outcome, cart, order_body, place_http};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub store: Store,
    /// Daemon kills (rounds).
    #[arg(long, default_value_t = 50)]
    pub kills: usize,
    /// Concurrent HTTP buyers during a round.
    #[arg(long, default_value_t = 16)]
    pub buyers: usize,
    /// Products in the shop (stock never runs out).
    #[arg(long, default_value_t = 20)]
    pub skus: usize,
    #[arg(long, default_value_t = 100)]
    pub customers: usize,
    /// Shortest time the daemon runs before its kill, in ms.
    #[arg(long, default_value_t = 300)]
    pub min_up_ms: u64,
    /// Longest time the daemon runs before its kill, in ms.
    #[arg(long, default_value_t = 1500)]
    pub max_up_ms: u64,
    /// Lines of each CLI import (orders of 1-3 lines).
    #[arg(long, default_value_t = 2000)]
    pub import_lines: usize,
    /// `oms backup` under load every Nth round (0: never).
    #[arg(long, default_value_t = 5)]
    pub backup_every: usize,
}

/// A placement whose answer never came: replayed after the restart.
struct Pending {
    key: String,
    body: String,
}

#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    acked_http: usize,
    acked_import: usize,
    imports_killed: usize,
    imports_killed_applied: usize,
    unknown: usize,
    resolved_existing: usize,
    resolved_created: usize,
    backups: usize,
    lost: usize,
    partial: usize,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = args.store.oms(&args.common.oms, work, "crash.db")?;
    oms.shop(work, args.skus, 1_000_000_000, args.customers)
        .await?;
    let token = oms.admin_token().await?;
    let n = args.store.daemons;
    let pg = args.store.db.is_some();
    let mut rng = fastrand::Rng::with_seed(args.common.seed);
    let mut verdict = Verdict::new(if pg { "crash-pg" } else { "crash" });
    // Daemon i, or None once killed (restarted at the next round).
    let mut daemons: Vec<Option<Daemon>> = Vec::with_capacity(n);
    for i in 0..n {
        daemons.push(Some(
            Daemon::start(&oms, &daemon_log(work, "crash", n, i), &[]).await?,
        ));
    }
    let mut figures = Figures::default();
    // Every acknowledged placement so far: key -> order id (0 for an
    // import's orders, whose ids the import does not print).
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let started = Instant::now();
    note(format!(
        "crash: {} kills of {n} daemon(s), {} buyers, imports of {} lines ({})",
        args.kills,
        args.buyers,
        args.import_lines,
        args.store.backend()
    ));

    for round in 0..=args.kills {
        // Restart the daemon killed last round.
        let mut restarted = None;
        for (i, slot) in daemons.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Some(Daemon::start(&oms, &daemon_log(work, "crash", n, i), &[]).await?);
                restarted = Some(i);
            }
        }
        let addrs: Vec<_> = daemons.iter().flatten().map(|d| d.addr).collect();
        // Resolve the last round's unanswered placements by their keys,
        // through another daemon than the one that was killed when there
        // is one.
        let replay_on = restarted.map_or(0, |i| (i + 1) % n);
        let mut client = Client::new(addrs[replay_on]);
        for p in pending.drain(..) {
            let reply = place_replay(&mut client, &token, &p).await;
            match reply {
                Ok((id, replayed)) => {
                    if replayed {
                        figures.resolved_existing += 1;
                    } else {
                        figures.resolved_created += 1;
                    }
                    acked.insert(p.key, id);
                }
                Err(e) => verdict.fail(format!("replaying {} after restart: {e}", p.key)),
            }
        }
        if round == args.kills {
            // The last start only resolves; it ends cleanly.
            for (i, daemon) in daemons.drain(..).flatten().enumerate() {
                let (code, _) = daemon.term(Duration::from_secs(20)).await?;
                verdict.check(code == Some(0), || {
                    format!("daemon {i} exited {code:?} after the last SIGTERM")
                });
            }
            break;
        }
        let victim = round % n;

        // Load.
        let stop = Arc::new(AtomicBool::new(false));
        let mut buyers = Vec::new();
        for b in 0..args.buyers {
            let addr = addrs[b % n];
            let (token, stop) = (token.clone(), Arc::clone(&stop));
            let (skus, customers) = (args.skus, args.customers);
            let mut rng = fastrand::Rng::with_seed(rng.u64(..));
            buyers.push(tokio::spawn(async move {
                let mut client = Client::new(addr);
                let mut out = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let cart = cart(&mut rng, skus);
                    let body = order_body(rng.usize(1..=customers), &cart, false);
                    let key = format!("r{round}-b{b}-{n}");
                    n += 1;
                    let outcome = place_http(
                        &mut client,
                        &token,
                        &key,
                        body.clone(),
                        Duration::from_secs(30),
                    )
                    .await;
                    // After the kill: the request in flight is the last.
                    let last = match &outcome {
                        Outcome::NotSent(_) => break,
                        Outcome::Unknown(_) => stop.load(Ordering::Relaxed),
                        _ => false,
                    };
                    out.push((key, body, outcome));
                    if last {
                        break;
                    }
                }
                out
            }));
        }
        let up =
            Duration::from_millis(rng.u64(args.min_up_ms..=args.max_up_ms.max(args.min_up_ms)));
        let kill_at = Instant::now() + up;
        // A CLI import beside the daemon. In odd rounds it is killed with
        // the daemon, and started shortly before the kill so that it is
        // likely to be running then.
        let import_file = work.join(format!("crash-import-{round}.csv"));
        let import_orders =
            write_import(&import_file, round, args.import_lines, args.skus, &mut rng)?;
        let kill_import = round % 2 == 1;
        let import_path = path_str(&import_file)?;
        let import_cmd = || oms.command(&["order", "import", import_path]).spawn();
        let mut import = if kill_import {
            None
        } else {
            Some(import_cmd()?)
        };
        let backup = args.backup_every > 0 && round % args.backup_every == 0;
        let snapshot = work.join(format!("crash-backup-{round}.db"));
        if backup {
            tokio::time::sleep(up / 2).await;
            let _ = tokio::fs::remove_file(&snapshot).await;
            let run = oms
                .run(&["backup", path_str(&snapshot)?], Duration::from_secs(60))
                .await?;
            verdict.check(run.ok(), || {
                format!(
                    "round {round}: oms backup under load failed: {}",
                    run.error_line()
                )
            });
        }
        if import.is_none() {
            let lead = Duration::from_millis(rng.u64(20..400));
            tokio::time::sleep_until(kill_at.checked_sub(lead).unwrap_or(kill_at).into()).await;
            import = Some(import_cmd()?);
        }
        let mut import = import.ok_or("the import never started")?;
        tokio::time::sleep_until(kill_at.into()).await;
        stop.store(true, Ordering::Relaxed);
        daemons[victim]
            .take()
            .ok_or("the daemon to kill is not running")?
            .kill9()
            .await?;
        figures.kills += 1;
        let import_status = if kill_import {
            let _ = import.start_kill();
            import.wait().await?
        } else {
            tokio::time::timeout(Duration::from_secs(120), import.wait())
                .await
                .map_err(|_| "the import did not finish within 120 s")??
        };
        let mut round_acked = 0;
        for b in buyers {
            for (key, body, outcome) in b.await? {
                match outcome {
                    Outcome::Ok(id) => {
                        round_acked += 1;
                        acked.insert(key, id);
                    }
                    Outcome::Refused => {
                        verdict.fail(format!("placement {key} refused with stock to spare"))
                    }
                    Outcome::Unknown(_) => pending.push(Pending { key, body }),
                    Outcome::NotSent(_) => {}
                }
            }
        }
        figures.acked_http += round_acked;
        figures.unknown += pending.len();

        // Nobody writes now (the other daemons have no load left): check
        // the database.
        let verify = oms.run(&["verify"], Duration::from_secs(120)).await?;
        verdict.check(verify.ok(), || {
            format!(
                "round {round}: oms verify after kill -9 exited {:?}: {} {}",
                verify.code,
                verify.stdout.trim(),
                verify.error_line()
            )
        });
        let audit = audit_async(oms.db.clone(), None).await?;
        for p in &audit.problems {
            verdict.fail(format!("round {round}: {p}"));
        }
        figures.partial += audit.partial;
        let present = (0..import_orders)
            .filter(|k| audit.by_key.contains_key(&import_ref(round, *k)))
            .count();
        if import_status.success() {
            figures.acked_import += import_orders;
            for k in 0..import_orders {
                acked.insert(import_ref(round, k), 0);
            }
        } else if kill_import {
            figures.imports_killed += 1;
            figures.imports_killed_applied += usize::from(present == import_orders);
        } else {
            verdict.fail(format!(
                "round {round}: the import failed (exit {:?}) without being killed",
                import_status.code()
            ));
        }
        if present != 0 && present != import_orders {
            figures.partial += 1;
            verdict.fail(format!(
                "round {round}: the import wrote {present} of its {import_orders} orders"
            ));
        }
        // A lost placement is reported once, then forgotten.
        let mut gone = Vec::new();
        for (key, id) in &acked {
            match audit.by_key.get(key) {
                Some((found, _)) if *id == 0 || found == id => {}
                other => {
                    figures.lost += 1;
                    gone.push(key.clone());
                    verdict.fail(format!(
                        "round {round}: acknowledged placement {key} (order {id}) is {}",
                        match other {
                            Some((found, _)) => format!("order {found} instead"),
                            None => "missing".into(),
                        }
                    ));
                }
            }
        }
        for key in gone {
            acked.remove(&key);
        }
        if backup {
            let copy = Oms::new(&oms.bin, snapshot.clone());
            let verify = copy.run(&["verify"], Duration::from_secs(120)).await?;
            verdict.check(verify.ok(), || {
                format!(
                    "round {round}: oms verify of the backup exited {:?}: {}",
                    verify.code,
                    verify.stdout.trim()
                )
            });
            let audit = audit_async(snapshot.clone(), None).await?;
            for p in &audit.problems {
                verdict.fail(format!("round {round}: backup: {p}"));
            }
            figures.backups += 1;
            let _ = tokio::fs::remove_file(&snapshot).await;
        }
        let _ = tokio::fs::remove_file(&import_file).await;
        note(format!(
            "round {round}: daemon {victim} up {up:?}, {round_acked} acked, {} unanswered, import {}, {} orders on file",
            pending.len(),
            if import_status.success() {
                "done"
            } else {
                "killed"
            },
            audit.orders
        ));
    }

    // The final word: every key once, nothing lost.
    let end = audit_async(oms.db.clone(), None).await?;
    for p in &end.problems {
        verdict.fail(format!("end: {p}"));
    }
    for (key, id) in &acked {
        let ok = matches!(end.by_key.get(key), Some((found, _)) if *id == 0 || found == id);
        if !ok {
            figures.lost += 1;
            verdict.fail(format!("end: acknowledged placement {key} is missing"));
        }
    }
    if pg {
        verdict.figure("daemons", n);
    }
    verdict.figure("kills", figures.kills);
    verdict.figure("acked_orders", figures.acked_http + figures.acked_import);
    verdict.figure("acked_http", figures.acked_http);
    verdict.figure("acked_import", figures.acked_import);
    verdict.figure("unanswered", figures.unknown);
    verdict.figure("replayed_existing", figures.resolved_existing);
    verdict.figure("replayed_created", figures.resolved_created);
    verdict.figure("imports_killed", figures.imports_killed);
    verdict.figure("imports_killed_committed", figures.imports_killed_applied);
    verdict.figure("backups_verified", figures.backups);
    verdict.figure("orders", end.orders);
    verdict.figure("lost", figures.lost);
    verdict.figure("partial", figures.partial);
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}

/// Replays an unanswered placement; returns its order id and whether the
/// daemon answered with the existing order.
async fn place_replay(
    client: &mut Client,
    token: &str,
    p: &Pending,
) -> Result<(i64, bool), String> {
    let headers = [("idempotency-key", p.key.as_str())];
    let call = crate::client::Call {
        headers: &headers,
        ..crate::client::Call::json(hyper::Method::POST, "/api/orders", token, p.body.clone())
    };
    // A restart is fresh: give it a few tries on a refused connection.
    let mut last = String::new();
    for _ in 0..3 {
        match client.send(&call, Duration::from_secs(30)).await {
            Ok(reply) if reply.status == 201 => {
                let id = reply
                    .json()
                    .and_then(|v| v["id"].as_i64())
                    .ok_or("201 without an id")?;
                return Ok((id, reply.header("idempotent-replayed") == Some("true")));
            }
            Ok(reply) => {
                return Err(format!(
                    "HTTP {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

fn import_ref(round: usize, k: usize) -> String {
    format!("imp{round}-{k}")
}

/// Writes an order import of `lines` lines (orders of 1-3 lines); returns
/// the number of orders.
fn write_import(
    path: &std::path::Path,
    round: usize,
    lines: usize,
    skus: usize,
    rng: &mut fastrand::Rng,
) -> Result<usize> {
    let mut csv = String::from("order_ref,customer_email,sku,quantity\n");
    let (mut written, mut orders) = (0, 0);
    while written < lines {
        let who = customer(rng.usize(1..=20));
        // Distinct SKUs within one order: an import line per product.
        let first = rng.usize(0..skus);
        for j in 0..rng.usize(1..=3).min(lines - written).min(skus) {
            csv.push_str(&format!(
                "{},{who},{},{}\n",
                import_ref(round, orders),
                sku((first + j) % skus),
                rng.i64(1..=3)
            ));
            written += 1;
        }
        orders += 1;
    }
    std::fs::write(path, csv)?;
    Ok(orders)
}
