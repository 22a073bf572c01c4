//! `storage`: orders placed in-process in group commits, as the daemon's
//! writer places them (one transaction and one fsync per group, a SAVEPOINT
//! per order; see oms-core/benches/hot_paths.rs). Its rate is the storage
//! ceiling the HTTP placement rate is compared with.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use oms_core::{
    Actor, CustomerId, CustomerRef, GroupJob, ItemRequest, NewCustomer, NewOrder, NewProduct,
    ProductQuery, ProductRef, Quantity, Sku, Store, WriteTx,
};

use crate::{Result, StorageArgs};

pub const SKUS: i64 = 200;
pub const CUSTOMERS: i64 = 1000;
/// Stock per SKU: enough that no placement runs out, with room left below
/// `MAX_STOCK` for restocks (`feed-latency --commit cli`).
const STOCK: i64 = oms_core::MAX_STOCK / 10 * 9;

struct PlaceJob {
    actor: Actor,
    order: NewOrder,
    ok: bool,
}

impl GroupJob for PlaceJob {
    fn actor(&self) -> &Actor {
        &self.actor
    }
    fn run(&mut self, tx: &WriteTx<'_>) -> bool {
        self.ok = tx.place_order(&self.order).is_ok();
        self.ok
    }
}

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
fn seed(store: &mut Store) -> Result<bool> {
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
    let mut store = Store::open(&args.db)?;
    if seed(&mut store)? {
        eprintln!(
            "oms-bench: seeded {} with {SKUS} SKUs and {CUSTOMERS} customers",
            args.db.display()
        );
    }
    // Keys unique across runs on the same file, so nothing is a replay.
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let run = format!("{run:x}");
    let actor = Actor::system("bench");
    let total = i64::try_from(args.orders)?;
    let mut placed = 0u64;
    let mut failed = 0u64;
    let mut build = std::time::Duration::ZERO;
    let start = Instant::now();
    let mut n = 0i64;
    while n < total {
        let t = Instant::now();
        let end = (n + args.group as i64).min(total);
        let mut jobs = (n..end)
            .map(|i| {
                let lines = lo + i % (hi - lo + 1);
                let paid = args.paid_every > 0 && (i as u64).is_multiple_of(args.paid_every);
                Ok(PlaceJob {
                    actor: actor.clone(),
                    order: order(i, lines, paid, &run)?,
                    ok: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        build += t.elapsed();
        store.write_group(jobs.iter_mut().map(|j| j as &mut dyn GroupJob))?;
        for job in &jobs {
            if job.ok {
                placed += 1;
            } else {
                failed += 1;
            }
        }
        n = end;
    }
    let secs = start.elapsed().as_secs_f64();
    // The requests are built outside the timed writer work in the daemon
    // (its HTTP tasks parse them), so building them is not counted here.
    let write_secs = (secs - build.as_secs_f64()).max(f64::EPSILON);
    println!(
        "storage orders={placed} failed={failed} group={} lines={} seconds={write_secs:.3} orders_per_s={:.0}",
        args.group,
        args.lines,
        placed as f64 / write_secs
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
            db: db.clone(),
            orders: 130,
            group: 64,
            lines: "1-3".into(),
            paid_every: 4,
        };
        run(&args).expect("first run");
        run(&args).expect("second run (already seeded, new keys)");
        let store = Store::open(&db).expect("open");
        let all = store
            .orders(&oms_core::OrderFilter::default())
            .expect("orders");
        assert_eq!(all.len(), 260);
        assert!(all.iter().any(|o| o.status == oms_core::Status::Paid));
        drop(store);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
