//! Bank-style oversell check.
//!
//! A few SKUs with little stock; HTTP buyers and CLI processes place random
//! multi-line carts (the same SKU on several lines included), an admin
//! pays, fulfils and cancels at random, and `oms order expire` runs on a
//! timer. Every placement's outcome is recorded as ok (an order id),
//! refused (409 / exit 4) or unknown. At sampled moments a snapshot taken
//! with `oms backup` under load is audited, and the live file at the end:
//! per SKU `on_hand + shipped = initial`, `reserved = open quantities`,
//! nothing negative, `oms verify` clean. Finally every recorded outcome is
//! held against the database through its idempotency key: an ok placement
//! exists with its id, a refused one does not exist.
//!
//! With `--db postgres://...` and `--daemons N` (`oversell-pg`), N daemons
//! serve one PostgreSQL database and the HTTP buyers are spread over them;
//! `oms backup` then writes the snapshot as a SQLite file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;

use crate::check::audit_async;
use crate::client::{Call, Client, Failure};
use crate::oms::{Oms, Store, customer, path_str, sku, start_daemons};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub store: Store,
    /// Products in the shop.
    #[arg(long, default_value_t = 10)]
    pub skus: usize,
    /// Units of each product at the start.
    #[arg(long, default_value_t = 100)]
    pub units: i64,
    /// Concurrent HTTP buyers (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    pub buyers: usize,
    /// Concurrent loops of `oms order place` processes.
    #[arg(long, default_value_t = 4)]
    pub cli: usize,
    /// Customers the orders are spread over.
    #[arg(long, default_value_t = 50)]
    pub customers: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Snapshots audited during the load.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// `oms order expire --older-than` this many seconds, every second.
    #[arg(long, default_value_t = 3)]
    pub expire_secs: u64,
}

/// How one placement ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(i64),
    Refused,
    Unknown(String),
    /// Could not connect: nothing was sent, so nothing can have happened.
    NotSent(String),
}

/// One recorded placement.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: String,
    pub outcome: Outcome,
}

/// A random cart: 1-4 lines of 1-3 units over `skus` products, the same
/// SKU possibly on several lines.
pub fn cart(rng: &mut fastrand::Rng, skus: usize) -> Vec<(String, i64)> {
    (0..rng.usize(1..=4))
        .map(|_| (sku(rng.usize(0..skus)), rng.i64(1..=3)))
        .collect()
}

/// The body of `POST /api/orders` for a cart.
pub fn order_body(customer_id: usize, cart: &[(String, i64)], paid: bool) -> String {
    let items: Vec<_> = cart
        .iter()
        .map(|(sku, qty)| json!({"sku": sku, "quantity": qty}))
        .collect();
    json!({"customer_id": customer_id, "items": items, "payment_collected": paid}).to_string()
}

/// `--item SKU:QTY` arguments for a cart.
pub fn item_args(cart: &[(String, i64)]) -> Vec<String> {
    cart.iter()
        .flat_map(|(sku, qty)| ["--item".to_string(), format!("{sku}:{qty}")])
        .collect()
}

/// Places one order over HTTP with an idempotency key.
pub async fn place_http(
    client: &mut Client,
    token: &str,
    key: &str,
    body: String,
    limit: Duration,
) -> Outcome {
    let headers = [("idempotency-key", key)];
    let call = Call {
        headers: &headers,
        ..Call::json(Method::POST, "/api/orders", token, body)
    };
    match client.send(&call, limit).await {
        Ok(reply) if reply.status == 201 => match reply.json().and_then(|v| v["id"].as_i64()) {
            Some(id) => Outcome::Ok(id),
            None => Outcome::Unknown("201 without an order id".into()),
        },
        Ok(reply) if reply.status == 409 => Outcome::Refused,
        Ok(reply) => Outcome::Unknown(format!(
            "HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )),
        Err(failure @ Failure::Connect(_)) => Outcome::NotSent(failure.to_string()),
        Err(failure) => Outcome::Unknown(failure.to_string()),
    }
}

/// Places one order with an `oms order place` process.
pub async fn place_cli(
    oms: &Oms,
    customer_email: &str,
    cart: &[(String, i64)],
    paid: bool,
    key: &str,
) -> Outcome {
    let items = item_args(cart);
    let mut args: Vec<&str> = vec![
        "-q",
        "order",
        "place",
        "--customer",
        customer_email,
        "--idempotency-key",
        key,
    ];
    args.extend(items.iter().map(String::as_str));
    if paid {
        args.push("--paid");
    }
    match oms.run(&args, Duration::from_secs(60)).await {
        Ok(run) if run.ok() => match run.stdout.trim().parse::<i64>() {
            Ok(id) => Outcome::Ok(id),
            Err(_) => Outcome::Unknown(format!("exit 0 without an id: {:?}", run.stdout)),
        },
        Ok(run) if run.code == Some(4) => Outcome::Refused,
        Ok(run) => Outcome::Unknown(format!("exit {:?}: {}", run.code, run.error_line())),
        Err(e) => Outcome::Unknown(e.to_string()),
    }
}

/// Counts of the admin's actions: (asked, done, refused, unknown).
#[derive(Debug, Default, Clone, Copy)]
struct AdminTally {
    asked: u64,
    done: u64,
    refused: u64,
    unknown: u64,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = args.store.oms(&args.common.oms, work, "oversell.db")?;
    oms.shop(work, args.skus, args.units, args.customers)
        .await?;
    let initial: BTreeMap<String, i64> = (0..args.skus).map(|i| (sku(i), args.units)).collect();
    let token = oms.admin_token().await?;
    let daemons = start_daemons(&oms, work, "oversell", args.store.daemons).await?;
    let addrs: Vec<_> = daemons.iter().map(|d| d.addr).collect();
    note(format!(
        "oversell: {} SKUs x {} units; {} HTTP buyers + {} CLI loops for {} s on {addrs:?} ({})",
        args.skus,
        args.units,
        args.buyers,
        args.cli,
        args.secs,
        args.store.backend()
    ));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let accepted: Arc<Mutex<Vec<i64>>> = Arc::default();
    let pg = args.store.db.is_some();
    let mut verdict = Verdict::new(if pg { "oversell-pg" } else { "oversell" });

    let mut placers = Vec::new();
    for b in 0..args.buyers {
        let addr = addrs[b % addrs.len()];
        let (token, accepted) = (token.clone(), Arc::clone(&accepted));
        let (skus, customers) = (args.skus, args.customers);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ (b as u64 + 1) << 8);
        placers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut out = Vec::new();
            for n in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let cart = cart(&mut rng, skus);
                let body = order_body(rng.usize(1..=customers), &cart, rng.u8(0..10) < 3);
                let key = format!("http-{b}-{n}");
                let outcome =
                    place_http(&mut client, &token, &key, body, Duration::from_secs(30)).await;
                if let Outcome::Ok(id) = outcome
                    && let Ok(mut a) = accepted.lock()
                {
                    a.push(id);
                }
                out.push(Attempt { key, outcome });
            }
            out
        }));
    }
    for c in 0..args.cli {
        let (oms, accepted) = (oms.clone(), Arc::clone(&accepted));
        let (skus, customers) = (args.skus, args.customers);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ (c as u64 + 1) << 20);
        placers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for n in 0.. {
                if Instant::now() >= deadline {
                    break;
                }
                let cart = cart(&mut rng, skus);
                let email = customer(rng.usize(1..=customers));
                let key = format!("cli-{c}-{n}");
                let outcome = place_cli(&oms, &email, &cart, rng.u8(0..10) < 3, &key).await;
                if let Outcome::Ok(id) = outcome
                    && let Ok(mut a) = accepted.lock()
                {
                    a.push(id);
                }
                out.push(Attempt { key, outcome });
            }
            out
        }));
    }

    // The admin: pays, fulfils and cancels accepted orders at random.
    let admin = {
        let (token, accepted) = (token.clone(), Arc::clone(&accepted));
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ 0xad);
        let addrs = addrs.clone();
        tokio::spawn(async move {
            // One connection per daemon, a random daemon for each action.
            let mut clients: Vec<Client> = addrs.iter().map(|a| Client::new(*a)).collect();
            let mut tally = AdminTally::default();
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let id = match accepted.lock() {
                    Ok(a) if !a.is_empty() => a[rng.usize(0..a.len())],
                    _ => continue,
                };
                let status = match rng.u8(0..10) {
                    0..=3 => "cancelled",
                    4..=6 => "paid",
                    _ => "fulfilled",
                };
                let path = format!("/api/orders/{id}/status");
                let call = Call::json(
                    Method::PUT,
                    &path,
                    &token,
                    json!({ "status": status }).to_string(),
                );
                tally.asked += 1;
                let d = rng.usize(0..clients.len());
                match clients[d].send(&call, Duration::from_secs(30)).await {
                    Ok(r) if r.status == 200 => tally.done += 1,
                    Ok(r) if r.status == 409 => tally.refused += 1,
                    _ => tally.unknown += 1,
                }
            }
            tally
        })
    };

    // Expiry: a cron-like CLI process every second.
    let expiry = {
        let oms = oms.clone();
        let older = format!("{}s", args.expire_secs);
        tokio::spawn(async move {
            let (mut runs, mut failed) = (0u64, Vec::new());
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match oms
                    .run(
                        &["order", "expire", "--older-than", &older],
                        Duration::from_secs(60),
                    )
                    .await
                {
                    Ok(run) if run.ok() => runs += 1,
                    Ok(run) => failed.push(format!("exit {:?}: {}", run.code, run.error_line())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (runs, failed)
        })
    };

    // Snapshots under load.
    let mut samples = 0;
    for i in 1..=args.samples {
        let at = started + Duration::from_secs(args.secs) * i as u32 / (args.samples as u32 + 1);
        tokio::time::sleep_until(at.into()).await;
        let snap = work.join(format!("oversell-snapshot-{i}.db"));
        let _ = tokio::fs::remove_file(&snap).await;
        let backup = oms
            .run(&["backup", path_str(&snap)?], Duration::from_secs(60))
            .await?;
        if !backup.ok() {
            verdict.fail(format!(
                "sample {i}: oms backup failed (exit {:?}): {}",
                backup.code,
                backup.error_line()
            ));
            continue;
        }
        let audit = audit_async(snap.clone(), Some(initial.clone())).await?;
        let verify = Oms::new(&oms.bin, snap.clone())
            .run(&["verify"], Duration::from_secs(60))
            .await?;
        verdict.check(verify.ok(), || {
            format!(
                "sample {i}: oms verify on the snapshot exited {:?}: {}",
                verify.code,
                verify.stdout.trim()
            )
        });
        for p in &audit.problems {
            verdict.fail(format!("sample {i} ({} orders): {p}", audit.orders));
        }
        note(format!(
            "sample {i}: {} orders, {} problem(s)",
            audit.orders,
            audit.problems.len()
        ));
        samples += 1;
    }

    let mut attempts = Vec::new();
    for p in placers {
        attempts.extend(p.await?);
    }
    let tally = admin.await?;
    let (expiry_runs, expiry_failed) = expiry.await?;
    for e in &expiry_failed {
        verdict.fail(format!("oms order expire: {e}"));
    }

    // The end: the live file, now that nobody writes.
    let end = audit_async(oms.db.clone(), Some(initial.clone())).await?;
    for p in &end.problems {
        verdict.fail(format!("end ({} orders): {p}", end.orders));
    }
    let verify = oms.run(&["verify"], Duration::from_secs(60)).await?;
    verdict.check(verify.ok(), || {
        format!(
            "end: oms verify exited {:?}: {}",
            verify.code,
            verify.stdout.trim()
        )
    });

    // Every outcome against the database.
    let (mut ok, mut refused, mut unknown, mut unknown_placed) = (0, 0, 0, 0);
    let mut unknown_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for a in &attempts {
        let found = end.by_key.get(&a.key).map(|(id, _)| *id);
        match &a.outcome {
            Outcome::Ok(id) => {
                ok += 1;
                verdict.check(found == Some(*id), || {
                    format!(
                        "placement {} was acknowledged as order {id} but the database has {found:?}",
                        a.key
                    )
                });
            }
            Outcome::Refused => {
                refused += 1;
                verdict.check(found.is_none(), || {
                    format!("placement {} was refused but order {found:?} exists", a.key)
                });
            }
            Outcome::Unknown(reason) | Outcome::NotSent(reason) => {
                unknown += 1;
                unknown_placed += u64::from(found.is_some());
                let short: String = reason.chars().take(80).collect();
                *unknown_reasons.entry(short).or_default() += 1;
            }
        }
    }
    for (reason, n) in &unknown_reasons {
        note(format!("unknown outcome x{n}: {reason}"));
    }

    let mut took = Duration::ZERO;
    for (i, daemon) in daemons.into_iter().enumerate() {
        let (code, t) = daemon.term(Duration::from_secs(20)).await?;
        took = took.max(t);
        verdict.check(code == Some(0), || {
            format!("daemon {i} exited {code:?} after SIGTERM")
        });
    }

    if pg {
        verdict.figure("daemons", addrs.len());
    }
    verdict.figure("attempts", attempts.len());
    verdict.figure("accepted", ok);
    verdict.figure("refused", refused);
    verdict.figure("unknown", unknown);
    verdict.figure("unknown_placed", unknown_placed);
    verdict.figure("orders", end.orders);
    verdict.figure("admin_actions", tally.asked);
    verdict.figure("admin_done", tally.done);
    verdict.figure("expiry_runs", expiry_runs);
    verdict.figure("samples", samples);
    verdict.figure("oversold", end.oversold);
    verdict.figure("violations", end.problems.len());
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    note(format!(
        "oversell: admin refused {} / unknown {}; daemons stopped in {took:?}",
        tally.refused, tally.unknown
    ));
    Ok(verdict)
}
