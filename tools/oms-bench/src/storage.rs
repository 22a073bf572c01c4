//! `storage`: orders placed in-process through the same serving `Db` the
//! daemon opens, by `--group` writers at once, so its writer thread commits
//! them in groups of about that size (one transaction and one fsync per
//! group), exactly as it commits the daemon's requests. No HTTP, no JSON:
//! its rate is the storage ceiling the HTTP placement rate is compared with.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use oms_core::prelude::*;
use oms_core::{
    Actor, CustomerId, CustomerRef, Db, ItemRequest, Location, NewCustomer, NewOrder, NewProduct,
    ProductQuery, ProductRef, Quantity, ServeOptions, Sku,
};

use crate::{Result, StorageArgs};

pub const SKUS: i64 = 200;
pub const CUSTOMERS: i64 = 1000;
/// Stock per SKU: enough that no placement runs out, with room left below
/// `MAX_STOCK` for restocks (`feed-latency --commit cli`).
const STOCK: i64 = oms_core::MAX_STOCK / 10 * 9;

/// `1-3` or `3`.
fn parse_lines(spec: &str) -> Result<(i64, i64)> {
    let (lo, hi) = match spec.split_once('-') {
        Some((lo, hi)) => (lo.trim().parse()?, hi.trim().parse()?),
        None => {
            let n = spec.trim().parse()?;
            (n, n)
        }
    };
    if !(1..=SKUS).contains(&lo) || hi < lo || hi > SKUS {
        return Err(format!("--lines {spec}: expected N or LO-HI within 1..{SKUS}").into());
    }
    Ok((lo, hi))
}

/// Order `n` of this run: `lines` distinct SKUs, quantities 1, 1, 2, ...
fn order(n: i64, lines: i64, paid: bool, run: &str) -> Result<NewOrder> {
    let items = (0..lines)
        .map(|k| {
            Ok(ItemRequest {
                product: ProductRef::parse(&format!("SKU-{:03}", (n * 7 + k * 37) % SKUS + 1))?,
                quantity: Quantity::new(if k == 2 { 2 } else { 1 })?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(NewOrder {
        customer: CustomerRef::Id(CustomerId(n % CUSTOMERS + 1)),
        items,
        paid,
        idempotency_key: Some(format!("storage-{run}-{n}")),
    })
}

/// 200 SKUs (SKU-001..) with the most stock allowed and 1000 customers
/// (c1@example.com..), the data the wrk scripts assume, if there are no
/// products yet.
fn seed(store: &Db) -> Result<bool> {
    let query = ProductQuery {
        limit: Some(1),
        ..ProductQuery::default()
    };
    if !store.products(&query)?.is_empty() {
        return Ok(false);
    }
    store.write(&Actor::cli(), |tx| {
        for i in 1..=SKUS {
            tx.add_product(&NewProduct {
                sku: Sku::parse(&format!("SKU-{i:03}"))?,
                name: format!("Product {i}"),
                price: tx
                    .currency()
                    .parse_amount(&format!("{}.{:02}", 1 + i % 90, i % 100))?,
                stock_on_hand: STOCK,
                active: true,
            })?;
        }
        for i in 1..=CUSTOMERS {
            tx.add_customer(&NewCustomer {
                name: format!("Customer {i}"),
                email: format!("c{i}@example.com"),
                phone: None,
            })?;
        }
        Ok(())
    })?;
    Ok(true)
}

pub fn run(args: &StorageArgs) -> Result<()> {
    if args.group == 0 {
        return Err("--group must be at least 1".into());
    }
    let (lo, hi) = parse_lines(&args.lines)?;
    let location: Location = args.db.parse()?;
    if seed(&Db::open(&location)?)? {
        eprintln!(
            "oms-bench: seeded {} with {SKUS} SKUs and {CUSTOMERS} customers",
            location.display()
        );
    }
    // Keys unique across runs on the same file, so nothing is a replay.
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let run = format!("{run:x}");
    // The requests are built before the clock starts (the daemon's HTTP
    // tasks parse them outside the writer's work), one queue per writer.
    let mut queues: Vec<Vec<NewOrder>> = vec![Vec::new(); args.group];
    for i in 0..i64::try_from(args.orders)? {
        let lines = lo + i % (hi - lo + 1);
        let paid = args.paid_every > 0 && (i as u64).is_multiple_of(args.paid_every);
        let queue = usize::try_from(i)? % args.group;
        queues[queue].push(order(i, lines, paid, &run)?);
    }
    let db = Arc::new(Db::serve(
        &location,
        ServeOptions {
            max_batch: args.group,
            ..ServeOptions::default()
        },
    )?);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let start = Instant::now();
    let outcomes: Vec<(u64, u64)> = runtime.block_on(async {
        let mut writers = tokio::task::JoinSet::new();
        for queue in queues {
            let db = Arc::clone(&db);
            writers.spawn(async move {
                let (mut placed, mut failed) = (0u64, 0u64);
                for order in queue {
                    let placed_now = db
                        .write_async(Actor::system("bench"), move |tx| tx.place_order(&order))
                        .await;
                    match placed_now {
                        Ok(_) => placed += 1,
                        Err(_) => failed += 1,
                    }
                }
                (placed, failed)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = writers.join_next().await {
            outcomes.push(done.unwrap_or((0, 1)));
        }
        outcomes
    });
    let secs = start.elapsed().as_secs_f64().max(f64::EPSILON);
    db.close();
    let placed: u64 = outcomes.iter().map(|o| o.0).sum();
    let failed: u64 = outcomes.iter().map(|o| o.1).sum();
    println!(
        "storage orders={placed} failed={failed} group={} lines={} seconds={secs:.3} orders_per_s={:.0}",
        args.group,
        args.lines,
        placed as f64 / secs
    );
    if failed > 0 {
        return Err(format!("{failed} placements failed").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_spec() {
        assert_eq!(parse_lines("3").expect("3"), (3, 3));
        assert_eq!(parse_lines("1-3").expect("1-3"), (1, 3));
        assert!(parse_lines("0").is_err());
        assert!(parse_lines("3-1").is_err());
    }

    #[test]
    fn places_in_groups_and_seeds_once() {
        let dir = std::env::temp_dir().join(format!("oms-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("s.db");
        let args = StorageArgs {
            db: db.display().to_string(),
            orders: 130,
            group: 64,
            lines: "1-3".into(),
            paid_every: 4,
        };
        run(&args).expect("first run");
        run(&args).expect("second run (already seeded, new keys)");
        let store = Db::open(&Location::File(db.clone())).expect("open");
        let all = store
            .orders(&oms_core::OrderFilter::default())
            .expect("orders");
        assert_eq!(all.len(), 260);
        assert!(all.iter().any(|o| o.status == oms_core::Status::Paid));
        drop(store);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
