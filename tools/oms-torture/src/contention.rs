//! Shared-file contention.
//!
//! The daemon is kept under order load while a separate `oms order import`
//! process imports a large file and another CLI loop places orders on the
//! same database file: no side may see "database is busy" or "locked" (the
//! daemon answers 503 for it, the CLI exit 1 with that message), the import
//! must succeed, and the audit must be clean.
//!
//! Then the lock test: a helper process (`oms-torture hold-lock`) holds the
//! write lock longer than oms's busy timeout, and a CLI write must fail
//! cleanly: exit 1, a message that says the database is busy and to retry,
//! within the busy timeout plus a margin (never a hang), nothing written.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oms_core::{Actor, Db, Location};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::check::audit_async;
use crate::client::Client;
use crate::oms::{Daemon, Oms, customer, path_str, sku};
use crate::oversell::{cart, item_args, order_body};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Lines of the CLI import (orders of 1-3 lines).
    #[arg(long, default_value_t = 100_000)]
    pub import_lines: usize,
    /// Concurrent HTTP buyers.
    #[arg(long, default_value_t = 16)]
    pub buyers: usize,
    #[arg(long, default_value_t = 200)]
    pub skus: usize,
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Seconds the load goes on before the import starts.
    #[arg(long, default_value_t = 1)]
    pub before_secs: u64,
    /// Seconds the load goes on after the import ended.
    #[arg(long, default_value_t = 2)]
    pub after_secs: u64,
    /// Seconds the helper holds the write lock in the lock test (more than
    /// oms's 10 s busy timeout; 0 skips the test).
    #[arg(long, default_value_t = 13)]
    pub lock_hold_secs: u64,
}

#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// The database file.
    #[arg(long)]
    pub db: PathBuf,
    /// How long to hold the lock.
    #[arg(long)]
    pub secs: u64,
}

/// Holds the write lock (an empty `BEGIN IMMEDIATE` transaction through
/// oms-core) for `secs`; prints `locked` once it holds it.
pub fn hold_lock(args: &HoldArgs) -> Result<crate::Verdict> {
    use std::io::Write;
    let store = Db::open(&Location::File(args.db.clone()))?;
    store.write(&Actor::system("torture-hold-lock"), |_tx| {
        println!("locked");
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(args.secs));
        Ok(())
    })?;
    Ok(crate::Verdict::default())
}

#[derive(Debug, Default)]
struct HttpTally {
    placed: u64,
    busy: u64,
    other: u64,
    failed: u64,
    first_problem: Option<String>,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = Oms::new(&args.common.oms, work.join("contention.db"));
    oms.shop(work, args.skus, 1_000_000_000, args.customers)
        .await?;
    let token = oms.admin_token().await?;
    let import_file = work.join("contention-import.csv");
    let import_orders = write_import(
        &import_file,
        args.import_lines,
        args.skus,
        args.customers,
        args.common.seed,
    )?;
    let mut verdict = Verdict::new("contention");
    let started = Instant::now();

    let daemon = Daemon::start(&oms, &work.join("contention-daemon.log"), &[]).await?;
    let addr = daemon.addr;
    note(format!(
        "contention: {} buyers on {addr}, import of {} lines, a CLI place loop",
        args.buyers, args.import_lines
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut buyers = Vec::new();
    for b in 0..args.buyers {
        let (token, stop) = (token.clone(), Arc::clone(&stop));
        let (skus, customers) = (args.skus, args.customers);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ (b as u64 + 1) << 8);
        buyers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut tally = HttpTally::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = order_body(rng.usize(1..=customers), &cart(&mut rng, skus), false);
                let call =
                    crate::client::Call::json(hyper::Method::POST, "/api/orders", &token, body);
                n += 1;
                match client.send(&call, Duration::from_secs(30)).await {
                    Ok(r) if r.status == 201 => tally.placed += 1,
                    Ok(r) => {
                        let text = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
                        if r.status == 503 || text.contains("locked") || text.contains("busy") {
                            tally.busy += 1;
                        } else {
                            tally.other += 1;
                        }
                        tally
                            .first_problem
                            .get_or_insert_with(|| format!("order {n}: HTTP {}: {text}", r.status));
                    }
                    Err(e) => {
                        tally.failed += 1;
                        tally
                            .first_problem
                            .get_or_insert_with(|| format!("order {n}: {e}"));
                    }
                }
            }
            tally
        }));
    }
    // A CLI loop placing orders as long as the load lasts.
    let placer = {
        let (oms, done) = (oms.clone(), Arc::clone(&stop));
        let (skus, customers) = (args.skus, args.customers);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ 0xc11);
        tokio::spawn(async move {
            let (mut placed, mut busy, mut other) = (0u64, 0u64, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let items = item_args(&cart(&mut rng, skus));
                let email = customer(rng.usize(1..=customers));
                let mut argv = vec!["-q", "order", "place", "--customer", &email];
                argv.extend(items.iter().map(String::as_str));
                match oms.run(&argv, Duration::from_secs(60)).await {
                    Ok(run) if run.ok() => placed += 1,
                    Ok(run) if run.mentions_lock() => busy += 1,
                    Ok(run) => other.push(format!("exit {:?}: {}", run.code, run.error_line())),
                    Err(e) => other.push(e.to_string()),
                }
            }
            (placed, busy, other)
        })
    };

    tokio::time::sleep(Duration::from_secs(args.before_secs)).await;
    let import = oms
        .run(
            &["order", "import", path_str(&import_file)?],
            Duration::from_secs(600),
        )
        .await?;
    let import_secs = import.elapsed.as_secs_f64();
    note(format!(
        "import: exit {:?} after {import_secs:.1} s",
        import.code
    ));
    if import.mentions_lock() {
        verdict.fail(format!("the import hit the lock: {}", import.error_line()));
    } else {
        verdict.check(import.ok(), || {
            format!(
                "the import exited {:?}: {}",
                import.code,
                import.error_line()
            )
        });
    }
    // The load goes on a little after the import.
    tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (cli_placed, cli_busy, cli_other) = placer.await?;
    let mut http = HttpTally::default();
    for b in buyers {
        let t = b.await?;
        http.placed += t.placed;
        http.busy += t.busy;
        http.other += t.other;
        http.failed += t.failed;
        if http.first_problem.is_none() {
            http.first_problem = t.first_problem;
        }
    }
    let (code, _) = daemon.term(Duration::from_secs(20)).await?;
    verdict.check(code == Some(0), || {
        format!("the daemon exited {code:?} after SIGTERM")
    });
    verdict.check(http.busy == 0, || {
        format!(
            "{} HTTP placements answered busy/locked; first: {}",
            http.busy,
            http.first_problem.clone().unwrap_or_default()
        )
    });
    verdict.check(http.other + http.failed == 0, || {
        format!(
            "{} HTTP placements failed otherwise; first: {}",
            http.other + http.failed,
            http.first_problem.clone().unwrap_or_default()
        )
    });
    verdict.check(cli_busy == 0, || {
        format!("{cli_busy} CLI placements failed with busy/locked")
    });
    for o in cli_other.iter().take(5) {
        verdict.fail(format!("CLI placement failed: {o}"));
    }
    let audit = audit_async(oms.db.clone(), None).await?;
    for p in audit.problems.iter().take(20) {
        verdict.fail(format!("end: {p}"));
    }
    let imported = (0..import_orders)
        .filter(|k| audit.by_key.contains_key(&format!("big-{k}")))
        .count();
    if import.ok() {
        verdict.check(imported == import_orders, || {
            format!("the import exited 0 but {imported} of {import_orders} orders exist")
        });
    }

    // The lock test.
    let mut lock_exit = "skipped".to_string();
    let mut lock_secs = 0.0;
    if args.lock_hold_secs > 0 {
        let (exit, secs) = lock_test(&oms, args.lock_hold_secs, &mut verdict).await?;
        lock_exit = exit;
        lock_secs = secs;
    }

    verdict.figure("http_placed", http.placed);
    verdict.figure("http_busy", http.busy);
    verdict.figure("http_other_errors", http.other + http.failed);
    verdict.figure("cli_placed", cli_placed);
    verdict.figure("cli_busy", cli_busy);
    verdict.figure("import_lines", args.import_lines);
    verdict.figure("import_orders", imported);
    verdict.figure("import_secs", format!("{import_secs:.1}"));
    verdict.figure(
        "locked_errors",
        http.busy + cli_busy + u64::from(import.mentions_lock()),
    );
    verdict.figure("held_lock_exit", lock_exit);
    verdict.figure("held_lock_secs", format!("{lock_secs:.1}"));
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}

/// A CLI write against a held lock: exit 1, a clear message, no hang,
/// nothing written. Returns the exit code and the seconds it took.
async fn lock_test(oms: &Oms, hold_secs: u64, verdict: &mut Verdict) -> Result<(String, f64)> {
    let me = std::env::current_exe()?;
    let mut holder = tokio::process::Command::new(me)
        .args([
            "hold-lock",
            "--db",
            path_str(&oms.db)?,
            "--secs",
            &hold_secs.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = holder.stdout.take().ok_or("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| "hold-lock did not take the lock within 30 s")??;
    if first.as_deref() != Some("locked") {
        return Err(format!("hold-lock printed {first:?}").into());
    }
    note(format!(
        "lock test: write lock held for {hold_secs} s; placing an order"
    ));
    let key = "held-lock-probe";
    let run = oms
        .run(
            &[
                "order",
                "place",
                "--customer",
                &customer(1),
                "--item",
                &format!("{}:1", sku(0)),
                "--idempotency-key",
                key,
            ],
            // The busy timeout is 10 s: a hang is anything well past it.
            Duration::from_secs(hold_secs + 20),
        )
        .await?;
    let secs = run.elapsed.as_secs_f64();
    verdict.check(!run.timed_out, || {
        format!("oms order place hung behind a held lock ({secs:.1} s)")
    });
    verdict.check(run.code == Some(1), || {
        format!(
            "oms order place behind a held lock exited {:?} (want 1): {}",
            run.code,
            run.error_line()
        )
    });
    let message = run.error_line().to_ascii_lowercase();
    verdict.check(
        message.starts_with("error:") && message.contains("busy") && message.contains("retry"),
        || format!("unclear message behind a held lock: {:?}", run.error_line()),
    );
    note(format!(
        "lock test: exit {:?} after {secs:.1} s: {}",
        run.code,
        run.error_line()
    ));
    let status = tokio::time::timeout(Duration::from_secs(hold_secs + 30), holder.wait())
        .await
        .map_err(|_| "hold-lock did not exit")??;
    verdict.check(status.success(), || format!("hold-lock exited {status}"));
    let audit = audit_async(oms.db.clone(), None).await?;
    verdict.check(!audit.by_key.contains_key(key), || {
        "the refused placement behind the held lock was written".to_string()
    });
    let code = run.code.map_or("none".to_string(), |c| c.to_string());
    Ok((code, secs))
}

/// Writes the big import: `order_ref` `big-K`, orders of 1-3 lines with
/// distinct SKUs; returns the number of orders.
fn write_import(
    path: &std::path::Path,
    lines: usize,
    skus: usize,
    customers: usize,
    seed: u64,
) -> Result<usize> {
    use std::io::Write;
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x1b);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "order_ref,customer_email,sku,quantity")?;
    let (mut written, mut orders) = (0, 0);
    while written < lines {
        let who = customer(rng.usize(1..=customers));
        let first = rng.usize(0..skus);
        for j in 0..rng.usize(1..=3).min(lines - written).min(skus) {
            writeln!(
                out,
                "big-{orders},{who},{},{}",
                sku((first + j) % skus),
                rng.i64(1..=3)
            )?;
            written += 1;
        }
        orders += 1;
    }
    out.flush()?;
    Ok(orders)
}
