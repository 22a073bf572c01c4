//! Placement is all-or-nothing, checks repeated SKUs against their sum, and
//! lists every failing line (DESIGN §4).

use oms_core::prelude::*;
use oms_core::{Actor, Error, ErrorKind, ProductPatch, ProductRef, Status};

use crate::{
    TestStore, add_customer, add_product, all_orders, assert_invariants, order_for, snapshot, stock,
};

const EMAIL: &str = "ada@example.com";

fn shop() -> TestStore {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "10.00", 5);
    add_product(&mut store, "B", "2.50", 2);
    add_product(&mut store, "C", "1.00", 10);
    add_customer(&mut store, "Ada", EMAIL);
    store
}

fn failing_products(err: &Error) -> Vec<(String, i64)> {
    match err {
        Error::InsufficientStock { lines } => {
            let mut out: Vec<_> = lines
                .iter()
                .map(|l| (l.product.clone(), l.requested))
                .collect();
            out.sort();
            out
        }
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
}

#[test]
fn one_bad_line_of_three_writes_nothing() {
    let store = shop();
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for(EMAIL, &[("A", 2), ("B", 3), ("C", 4)]))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(failing_products(&err), vec![("B".to_string(), 3)]);
    assert!(err.to_string().contains("only 2 available"), "{err}");
    assert_eq!(
        snapshot(&store),
        before,
        "a refused placement wrote something"
    );
    assert_eq!(stock(&store, "A"), (5, 0));
    assert_eq!(stock(&store, "C"), (10, 0));
    assert!(all_orders(&store).is_empty());
    assert_invariants(&store);
}

#[test]
fn the_error_lists_every_failing_line() {
    let store = shop();
    store
        .write(&Actor::cli(), |tx| {
            tx.update_product(
                &ProductRef::Key("C".into()),
                &ProductPatch {
                    active: Some(false),
                    ..ProductPatch::default()
                },
            )
        })
        .unwrap();
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for(
                EMAIL,
                &[("A", 6), ("B", 1), ("NOPE", 1), ("C", 1)],
            ))
        })
        .unwrap_err();
    let Error::InsufficientStock { lines } = &err else {
        panic!("expected InsufficientStock, got {err:?}");
    };
    let mut reasons: Vec<(&str, i64, &str)> = lines
        .iter()
        .map(|l| (l.product.as_str(), l.requested, l.reason.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("A", 6, "only 5 available"),
            ("C", 1, "product is inactive"),
            ("NOPE", 1, "unknown product"),
        ]
    );
    let text = err.to_string();
    for needle in ["A × 6", "C × 1", "NOPE × 1", "nothing was written"] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    assert_eq!(snapshot(&store), before);
    assert_invariants(&store);
}

#[test]
fn the_same_sku_on_two_lines_is_checked_against_the_sum() {
    let store = shop();
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for(EMAIL, &[("A", 3), ("A", 3)]))
        })
        .unwrap_err();
    assert_eq!(failing_products(&err), vec![("A".to_string(), 6)]);
    assert_eq!(snapshot(&store), before);

    // 2 + 3 fits in 5: one merged line of 5, all of it reserved.
    let placed = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for(EMAIL, &[("A", 2), ("C", 1), ("A", 3)]))
        })
        .unwrap();
    assert!(!placed.replayed);
    let order = placed.order;
    assert_eq!(order.status, Status::Pending);
    let lines: Vec<(&str, i64)> = order
        .items
        .iter()
        .map(|i| (i.sku.as_str(), i.quantity))
        .collect();
    assert_eq!(lines, vec![("A", 5), ("C", 1)]);
    assert_eq!(order.total.minor(), 5 * 1000 + 100);
    assert_eq!(stock(&store, "A"), (5, 5));
    assert_eq!(stock(&store, "C"), (10, 1));
    assert_invariants(&store);
}

#[test]
fn unknown_customer_is_not_found_and_writes_nothing() {
    let store = shop();
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for("nobody@example.com", &[("A", 1)]))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn paid_placement_reserves_like_pending() {
    let store = shop();
    let mut new = order_for(EMAIL, &[("B", 2)]);
    new.paid = true;
    let order = store
        .write(&Actor::cli(), |tx| tx.place_order(&new))
        .unwrap()
        .order;
    assert_eq!(order.status, Status::Paid);
    assert!(order.payment_collected);
    assert_eq!(stock(&store, "B"), (2, 2));
    // The last units are gone: the next buyer is refused.
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for(EMAIL, &[("B", 1)]))
        })
        .unwrap_err();
    assert_eq!(failing_products(&err), vec![("B".to_string(), 1)]);
    assert_invariants(&store);
}

#[test]
fn a_failed_placement_inside_a_larger_transaction_commits_nothing() {
    // Operations take no savepoint of their own: a refused placement may
    // have reserved lines before it failed, so a transaction that goes on
    // after ignoring the error is refused whole, the first order included.
    let store = shop();
    let before = store.last_seq().unwrap();
    let result = store.write(&Actor::cli(), |tx| {
        let first = tx.place_order(&order_for(EMAIL, &[("A", 1)]));
        let second = tx.place_order(&order_for(EMAIL, &[("A", 1), ("B", 9)]));
        assert!(first.is_ok());
        assert!(matches!(second, Err(Error::InsufficientStock { .. })));
        Ok(())
    });
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert_eq!(all_orders(&store).len(), 0);
    assert_eq!(stock(&store, "A"), (5, 0));
    assert_eq!(stock(&store, "B"), (2, 0));
    assert_eq!(store.last_seq().unwrap(), before);
    assert_invariants(&store);
}
