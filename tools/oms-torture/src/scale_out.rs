//! Scale-out: several daemons and CLI processes on one PostgreSQL database
//! buy the last units of a product.
//!
//! Each round, a product has `--units` units left. `--http-buyers` HTTP
//! buyers (each on its own, already open keep-alive connection, spread
//! over `--daemons` daemons) and `--cli` `oms order place` processes are
//! released together and each try to buy one unit, with an idempotency key
//! of its own. Exactly `--units` of them must get their order (201 / exit 0
//! with an id), every other one must be refused (409 / exit 4): any other
//! answer is a failure. Then, with nothing running: the product's
//! `stock_reserved` equals the units sold and `stock_on_hand` is untouched,
//! every accepted order exists under its key with its id, no refused buyer
//! has an order, the stock audit is clean and `oms verify` exits 0.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use crate::check::audit_async;
use crate::client::{Call, Client};
use crate::oms::{customer, sku, start_daemons};
use crate::oversell::{Outcome, order_body, place_cli, place_http};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A `postgres://` URL of an empty database (the harness creates the
    /// shop in it).
    #[arg(long)]
    pub db: String,
    /// `oms serve` processes on the database.
    #[arg(long, default_value_t = 3)]
    pub daemons: usize,
    /// HTTP buyers per round, spread over the daemons.
    #[arg(long, default_value_t = 90)]
    pub http_buyers: usize,
    /// `oms order place` processes per round.
    #[arg(long, default_value_t = 10)]
    pub cli: usize,
    /// Units left of the product each round.
    #[arg(long, default_value_t = 25)]
    pub units: i64,
    /// Rounds, each on a product of its own.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Each HTTP buyer waits a random 0..this many ms after the release, so
    /// that the CLI processes (which must start first) are in the race too.
    #[arg(long, default_value_t = 60)]
    pub jitter_ms: u64,
}

/// Who placed: a daemon's HTTP buyer, or a CLI process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    Http(usize),
    Cli,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    if args.daemons == 0 || args.units <= 0 {
        return Err("--daemons and --units must be at least 1".into());
    }
    let oms = crate::oms::Store {
        db: Some(args.db.clone()),
        daemons: args.daemons,
    }
    .oms(&args.common.oms, work, "")?;
    let customers = 50;
    oms.shop(work, args.rounds, args.units, customers).await?;
    let initial: BTreeMap<String, i64> = (0..args.rounds).map(|i| (sku(i), args.units)).collect();
    let token = oms.admin_token().await?;
    let daemons = start_daemons(&oms, work, "scale-out", args.daemons).await?;
    let addrs: Vec<_> = daemons.iter().map(|d| d.addr).collect();
    let buyers = args.http_buyers + args.cli;
    note(format!(
        "scale-out: {} rounds; {} HTTP buyers over {} daemons + {} CLI processes for {} units",
        args.rounds, args.http_buyers, args.daemons, args.cli, args.units
    ));
    let mut verdict = Verdict::new("scale-out");
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(args.common.seed);
    // (key, via, outcome) of every attempt of every round.
    let mut all: Vec<(String, Via, Outcome)> = Vec::new();
    let mut slowest = Duration::ZERO;

    for round in 0..args.rounds {
        let product = sku(round);
        // Every HTTP buyer opens its connection before the release.
        let mut clients = Vec::with_capacity(args.http_buyers);
        for b in 0..args.http_buyers {
            let mut client = Client::new(addrs[b % addrs.len()]);
            let health = Call {
                token: None,
                ..Call::get("/healthz", "")
            };
            match client.send(&health, Duration::from_secs(10)).await {
                Ok(r) if r.status == 200 => {}
                other => {
                    return Err(format!(
                        "round {round}: daemon {} /healthz before the race: {other:?}",
                        b % addrs.len()
                    )
                    .into());
                }
            }
            clients.push(client);
        }
        let barrier = Arc::new(Barrier::new(buyers + 1));
        let mut tasks = Vec::with_capacity(buyers);
        for (b, mut client) in clients.into_iter().enumerate() {
            let (barrier, token) = (Arc::clone(&barrier), token.clone());
            let cart = vec![(product.clone(), 1)];
            let body = order_body(rng.usize(1..=customers), &cart, false);
            let key = format!("so{round}-h{b}");
            let delay = Duration::from_millis(rng.u64(0..=args.jitter_ms));
            let via = Via::Http(b % addrs.len());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                tokio::time::sleep(delay).await;
                let t0 = Instant::now();
                let outcome =
                    place_http(&mut client, &token, &key, body, Duration::from_secs(30)).await;
                (key, via, outcome, t0.elapsed())
            }));
        }
        for c in 0..args.cli {
            let (barrier, oms) = (Arc::clone(&barrier), oms.clone());
            let cart = vec![(product.clone(), 1)];
            let email = customer(rng.usize(1..=customers));
            let key = format!("so{round}-c{c}");
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let t0 = Instant::now();
                let outcome = place_cli(&oms, &email, &cart, false, &key).await;
                (key, Via::Cli, outcome, t0.elapsed())
            }));
        }
        barrier.wait().await;
        let mut ok = 0;
        let mut ids = HashSet::new();
        for t in tasks {
            let (key, via, outcome, took) = t.await?;
            slowest = slowest.max(took);
            match &outcome {
                Outcome::Ok(id) => {
                    ok += 1;
                    verdict.check(ids.insert(*id), || {
                        format!("round {round}: order {id} was handed to two buyers")
                    });
                }
                Outcome::Refused => {}
                Outcome::Unknown(why) | Outcome::NotSent(why) => verdict.fail(format!(
                    "round {round}: buyer {key} ({via:?}) got neither its order nor a refusal: {why}"
                )),
            }
            all.push((key, via, outcome));
        }
        verdict.check(ok == args.units, || {
            format!(
                "round {round}: {ok} buyers got an order for the last {} units of {product}",
                args.units
            )
        });
        note(format!("round {round}: {ok} orders of {buyers} buyers"));
    }

    // Nothing runs now but idle daemons: the database must agree.
    let end = audit_async(oms.db.clone(), Some(initial.clone())).await?;
    for p in &end.problems {
        verdict.fail(format!("end ({} orders): {p}", end.orders));
    }
    for (i, sku) in initial.keys().enumerate() {
        let stock = end.stock.get(sku).copied();
        verdict.check(stock == Some((args.units, args.units)), || {
            format!(
                "round {i}: {sku} has (on_hand, reserved) = {stock:?}, expected ({0}, {0})",
                args.units
            )
        });
    }
    let verify = oms.run(&["verify"], Duration::from_secs(120)).await?;
    verdict.check(verify.ok(), || {
        format!(
            "end: oms verify exited {:?}: {} {}",
            verify.code,
            verify.stdout.trim(),
            verify.error_line()
        )
    });
    // Every answer against the database.
    let mut won: BTreeMap<Via, usize> = BTreeMap::new();
    let (mut accepted, mut refused) = (0, 0);
    for (key, via, outcome) in &all {
        let found = end.by_key.get(key).map(|(id, _)| *id);
        match outcome {
            Outcome::Ok(id) => {
                accepted += 1;
                *won.entry(*via).or_default() += 1;
                verdict.check(found == Some(*id), || {
                    format!(
                        "{key} ({via:?}) was answered order {id} but the database has {found:?}"
                    )
                });
            }
            Outcome::Refused => {
                refused += 1;
                verdict.check(found.is_none(), || {
                    format!("{key} ({via:?}) was refused but order {found:?} exists")
                });
            }
            _ => {}
        }
    }
    verdict.check(end.orders == all.len() - refused, || {
        format!(
            "the database holds {} orders, {} buyers were not refused",
            end.orders,
            all.len() - refused
        )
    });
    for (i, daemon) in daemons.into_iter().enumerate() {
        let (code, _) = daemon.term(Duration::from_secs(20)).await?;
        verdict.check(code == Some(0), || {
            format!("daemon {i} exited {code:?} after SIGTERM")
        });
    }
    let by_daemon: Vec<String> = (0..addrs.len())
        .map(|d| won.get(&Via::Http(d)).copied().unwrap_or(0).to_string())
        .collect();
    verdict.figure("daemons", addrs.len());
    verdict.figure("rounds", args.rounds);
    verdict.figure("buyers_per_round", buyers);
    verdict.figure("units_per_round", args.units);
    verdict.figure("accepted", accepted);
    verdict.figure("refused", refused);
    verdict.figure("unknown", all.len() - accepted - refused);
    verdict.figure("won_http_by_daemon", by_daemon.join(","));
    verdict.figure("won_cli", won.get(&Via::Cli).copied().unwrap_or(0));
    verdict.figure("oversold", end.oversold);
    verdict.figure("slowest_ms", slowest.as_millis());
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}
