//! Pay racing cancel on one order, many times over: two connections to one
//! database (as the daemon and a cron job would be), released together
//! by a barrier. Whatever the interleaving, every round must end in one
//! legal serial history of DESIGN §4:
//!
//! - pay, then cancel: both succeed (PAID -> CANCELLED is allowed), the log
//!   holds PENDING->PAID then PAID->CANCELLED, the payment is recorded;
//! - cancel, then pay: the cancel succeeds, the pay is refused as an invalid
//!   transition from CANCELLED, the log holds PENDING->CANCELLED only.
//!
//! Either way the reservation is released exactly once. Prints one figure
//! line (`cargo test -p oms-core --test it status_race -- --nocapture`).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use oms_core::prelude::*;
use oms_core::{Actor, Db, Error, Order, OrderId, Seq, Status};

use crate::{TestDb, add_customer, add_product, order_for, stock};

const EMAIL: &str = "ada@example.com";
const ROUNDS: usize = 1_000;
const STOCK: i64 = 10;

/// The serial histories a round may end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum History {
    PayThenCancel,
    CancelThenPayRefused,
}

/// A worker thread with its own connection that applies one status to each
/// order id it is sent, starting together with the other worker.
fn worker(
    db: Arc<TestDb>,
    to: Status,
    barrier: Arc<Barrier>,
    orders: mpsc::Receiver<OrderId>,
    results: mpsc::Sender<oms_core::Result<Order>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let store = db.open().unwrap();
        for id in orders {
            barrier.wait();
            let result = store.write(&Actor::cli(), |tx| tx.set_status(id, to, None));
            if results.send(result).is_err() {
                return;
            }
        }
    })
}

/// `(from, to)` of every status change of `id` after `after`.
fn moves(store: &Db, after: Seq, id: OrderId) -> Vec<(Status, Status)> {
    let status = |v: &serde_json::Value| v.as_str().unwrap().parse::<Status>().unwrap();
    store
        .changes_after(after, 100, None)
        .unwrap()
        .into_iter()
        .filter(|c| c.entity == "order" && c.entity_id == id.get())
        .map(|c| {
            assert_eq!(c.kind, "order.status_changed", "{c:?}");
            (status(&c.data["from"]), status(&c.data["to"]))
        })
        .collect()
}

#[test]
fn pay_racing_cancel_always_ends_in_one_legal_history() {
    let db = Arc::new(TestDb::from_env());
    let mut store = db.open().unwrap();
    add_product(&mut store, "RACE", "3.00", STOCK);
    add_customer(&mut store, "Ada", EMAIL);

    let barrier = Arc::new(Barrier::new(2));
    let (pay_tx, pay_orders) = mpsc::channel();
    let (cancel_tx, cancel_orders) = mpsc::channel();
    let (pay_results_tx, pay_results) = mpsc::channel();
    let (cancel_results_tx, cancel_results) = mpsc::channel();
    let payer = worker(
        Arc::clone(&db),
        Status::Paid,
        Arc::clone(&barrier),
        pay_orders,
        pay_results_tx,
    );
    let canceller = worker(
        Arc::clone(&db),
        Status::Cancelled,
        Arc::clone(&barrier),
        cancel_orders,
        cancel_results_tx,
    );

    let mut seen: BTreeMap<History, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        // Every round ends with the order cancelled, so the stock is whole
        // again and each order can take all of it.
        let placed = store
            .write(&Actor::cli(), |tx| {
                tx.place_order(&order_for(EMAIL, &[("RACE", STOCK)]))
            })
            .unwrap()
            .order;
        let id = placed.id;
        let after = store.last_seq().unwrap();
        assert_eq!(stock(&store, "RACE"), (STOCK, STOCK));

        pay_tx.send(id).unwrap();
        cancel_tx.send(id).unwrap();
        let paid = pay_results.recv().unwrap();
        let cancelled = cancel_results.recv().unwrap();

        let cancelled = cancelled
            .unwrap_or_else(|e| panic!("round {round}: the cancel must always succeed: {e:?}"));
        assert_eq!(cancelled.status, Status::Cancelled, "round {round}");
        let (history, log, version, collected) = match paid {
            Ok(paid) => {
                assert_eq!(paid.status, Status::Paid, "round {round}");
                assert_eq!(paid.version, 2, "round {round}: pay came first");
                (
                    History::PayThenCancel,
                    vec![
                        (Status::Pending, Status::Paid),
                        (Status::Paid, Status::Cancelled),
                    ],
                    3,
                    true,
                )
            }
            Err(Error::InvalidTransition { from, to, .. }) => {
                assert_eq!(
                    (from, to),
                    (Status::Cancelled, Status::Paid),
                    "round {round}"
                );
                (
                    History::CancelThenPayRefused,
                    vec![(Status::Pending, Status::Cancelled)],
                    2,
                    false,
                )
            }
            Err(other) => panic!("round {round}: pay failed with {other:?}"),
        };
        *seen.entry(history).or_default() += 1;

        let now = store.order(id).unwrap();
        assert_eq!(
            now, cancelled,
            "round {round}: the cancel's answer is final"
        );
        assert_eq!(
            (now.version, now.payment_collected),
            (version, collected),
            "round {round}: {history:?}"
        );
        assert_eq!(moves(&store, after, id), log, "round {round}: {history:?}");
        assert_eq!(
            stock(&store, "RACE"),
            (STOCK, 0),
            "round {round}: {history:?} must release exactly once"
        );
        if round % 250 == 249 {
            let report = store.verify().unwrap();
            assert!(report.is_clean(), "round {round}: {:?}", report.problems);
        }
    }
    drop((pay_tx, cancel_tx));
    payer.join().unwrap();
    canceller.join().unwrap();

    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let count = |h| seen.get(&h).copied().unwrap_or(0);
    println!(
        "status race (library, 2 connections): {ROUNDS} rounds, pay->cancel {}, \
         cancel then pay refused {}, illegal 0",
        count(History::PayThenCancel),
        count(History::CancelThenPayRefused)
    );
}
