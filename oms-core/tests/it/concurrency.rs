//! Many writers on one database, each with its own connection (as many
//! CLI processes and the daemon would be): nobody oversells, nobody sees
//! `Busy`, and the invariants hold afterwards (DESIGN §8).

use std::sync::Barrier;

use oms_core::{Actor, Error, Status};

use crate::{TestDb, add_customer, add_product, all_orders, assert_invariants, order_for, stock};

const EMAIL: &str = "ada@example.com";

fn prepared(units: i64) -> TestDb {
    let db = TestDb::from_env();
    let mut store = db.open().unwrap();
    add_product(&mut store, "LAST", "5.00", units);
    add_product(&mut store, "OTHER", "1.00", 1000);
    add_customer(&mut store, "Ada", EMAIL);
    db
}

#[test]
fn sixteen_buyers_of_ten_units_never_oversell() {
    let db = prepared(10);
    let threads = 16;
    let barrier = Barrier::new(threads);
    let results: Vec<oms_core::Result<Status>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let store = db.open()?;
                    barrier.wait();
                    let placed = store.write(&Actor::cli(), |tx| {
                        tx.place_order(&order_for(EMAIL, &[("LAST", 1)]))
                    })?;
                    Ok(placed.order.status)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut sold = 0;
    for result in &results {
        match result {
            Ok(status) => {
                assert_eq!(*status, Status::Pending);
                sold += 1;
            }
            Err(Error::InsufficientStock { lines }) => {
                assert_eq!(lines.len(), 1);
                assert_eq!(lines[0].product, "LAST");
                assert_eq!(lines[0].reason, "only 0 available");
            }
            Err(other) => panic!("unexpected error (Busy is a failure here): {other:?}"),
        }
    }
    assert_eq!(sold, 10, "{results:?}");

    let store = db.open().unwrap();
    assert_eq!(stock(&store, "LAST"), (10, 10));
    assert_eq!(all_orders(&store).len(), 10);
    assert_invariants(&store);
}

#[test]
fn concurrent_mixed_writers_keep_the_invariants() {
    // Each thread places, then pays and fulfils or cancels its own orders,
    // while competing for the same two products.
    let db = prepared(30);
    let threads = 8;
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (db, barrier) = (&db, &barrier);
            scope.spawn(move || {
                let store = db.open().unwrap();
                barrier.wait();
                for round in 0..6 {
                    let placed = store.write(&Actor::cli(), |tx| {
                        tx.place_order(&order_for(EMAIL, &[("LAST", 1), ("OTHER", 2)]))
                    });
                    let order = match placed {
                        Ok(outcome) => outcome.order,
                        Err(Error::InsufficientStock { .. }) => continue,
                        Err(other) => panic!("thread {t}: {other:?}"),
                    };
                    let path: &[Status] = if (t + round) % 3 == 0 {
                        &[Status::Cancelled]
                    } else {
                        &[Status::Paid, Status::Fulfilled]
                    };
                    for to in path {
                        store
                            .write(&Actor::cli(), |tx| tx.set_status(order.id, *to, None))
                            .unwrap();
                    }
                }
            });
        }
    });
    let store = db.open().unwrap();
    let orders = all_orders(&store);
    let shipped: i64 = orders
        .iter()
        .filter(|o| o.status == Status::Fulfilled)
        .count() as i64;
    assert!(shipped > 0);
    assert_eq!(stock(&store, "LAST"), (30 - shipped, 0));
    assert_eq!(stock(&store, "OTHER"), (1000 - 2 * shipped, 0));
    assert_invariants(&store);
}

#[test]
fn many_processes_may_create_a_fresh_database_at_once() {
    let db = TestDb::from_env();
    let threads = 8;
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    db.open().map(|s| s.verify().unwrap().is_clean())
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().unwrap());
        }
    });
}
