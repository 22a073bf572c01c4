//! The status machine of DESIGN §4, through the store: stock effects,
//! safe retries, refusals and optimistic locking.

use oms_core::prelude::*;
use oms_core::{Actor, Db, Error, ErrorKind, Order, OrderId, Status, Timestamp};

use crate::{
    TestStore, add_customer, add_product, assert_invariants, item, last_seq, order_for, snapshot,
    stock,
};

const EMAIL: &str = "ada@example.com";

fn shop() -> TestStore {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "10.00", 5);
    add_product(&mut store, "B", "2.50", 5);
    add_customer(&mut store, "Ada", EMAIL);
    store
}

fn place(store: &mut Db, items: &[(&str, i64)], paid: bool) -> Order {
    let mut new = order_for(EMAIL, items);
    new.paid = paid;
    store
        .write(&Actor::cli(), |tx| tx.place_order(&new))
        .unwrap()
        .order
}

fn set(store: &mut Db, id: OrderId, to: Status) -> oms_core::Result<Order> {
    store.write(&Actor::cli(), |tx| tx.set_status(id, to, None))
}

#[test]
fn a_retried_cancel_is_a_no_op_that_releases_once() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 3)], false);
    // A second order keeps a reservation, so a double release would show.
    place(&mut store, &[("A", 2)], false);
    assert_eq!(stock(&store, "A"), (5, 5));

    let cancelled = set(&mut store, order.id, Status::Cancelled).unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    assert_eq!(cancelled.version, order.version + 1);
    assert_eq!(stock(&store, "A"), (5, 2));

    let before = snapshot(&store);
    let again = set(&mut store, order.id, Status::Cancelled).unwrap();
    assert_eq!(again, cancelled);
    assert_eq!(snapshot(&store), before, "a retried cancel wrote something");
    assert_eq!(stock(&store, "A"), (5, 2));
    assert_invariants(&store);
}

#[test]
fn paid_never_moves_back_to_pending() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 1)], true);
    let before = snapshot(&store);
    let err = set(&mut store, order.id, Status::Pending).unwrap_err();
    match &err {
        Error::InvalidTransition { from, to, allowed } => {
            assert_eq!((*from, *to), (Status::Paid, Status::Pending));
            assert_eq!(allowed, &vec![Status::Fulfilled, Status::Cancelled]);
        }
        other => panic!("expected InvalidTransition, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("FULFILLED or CANCELLED"), "{err}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn terminal_states_refuse_every_move() {
    let mut store = shop();
    let cancelled = place(&mut store, &[("A", 1)], false);
    set(&mut store, cancelled.id, Status::Cancelled).unwrap();
    let fulfilled = place(&mut store, &[("B", 1)], true);
    set(&mut store, fulfilled.id, Status::Fulfilled).unwrap();
    let before = snapshot(&store);
    for (id, to) in [
        (cancelled.id, Status::Paid),
        (cancelled.id, Status::Pending),
        (cancelled.id, Status::Fulfilled),
        (fulfilled.id, Status::Cancelled),
        (fulfilled.id, Status::Paid),
    ] {
        let err = set(&mut store, id, to).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTransition { ref allowed, .. } if allowed.is_empty()),
            "{id} -> {to}: {err:?}"
        );
        assert!(err.to_string().contains("terminal"), "{err}");
    }
    assert_eq!(snapshot(&store), before);
    assert_invariants(&store);
}

#[test]
fn pending_cannot_be_fulfilled_before_payment() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 1)], false);
    let before = snapshot(&store);
    let err = set(&mut store, order.id, Status::Fulfilled).unwrap_err();
    assert!(matches!(err, Error::InvalidTransition { .. }), "{err:?}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn fulfil_ships_the_units() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 2), ("B", 1)], false);
    let paid = set(&mut store, order.id, Status::Paid).unwrap();
    assert!(paid.payment_collected);
    // Paying moves no stock.
    assert_eq!(stock(&store, "A"), (5, 2));
    let shipped = set(&mut store, order.id, Status::Fulfilled).unwrap();
    assert_eq!(shipped.status, Status::Fulfilled);
    assert_eq!(shipped.version, order.version + 2);
    assert_eq!(stock(&store, "A"), (3, 0));
    assert_eq!(stock(&store, "B"), (4, 0));
    // A retried fulfil ships nothing more.
    let seq = last_seq(&store);
    set(&mut store, order.id, Status::Fulfilled).unwrap();
    assert_eq!(stock(&store, "A"), (3, 0));
    assert_eq!(last_seq(&store), seq);
    assert_invariants(&store);
}

#[test]
fn cancelling_a_paid_order_releases_without_shipping() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 4)], true);
    set(&mut store, order.id, Status::Cancelled).unwrap();
    assert_eq!(stock(&store, "A"), (5, 0));
    assert_invariants(&store);
}

#[test]
fn editing_a_pending_order_re_reserves_the_difference() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 2)], false);
    let edited = store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("A", 4), item("B", 1)], Some(order.version))
        })
        .unwrap();
    assert_eq!(edited.version, order.version + 1);
    assert_eq!(stock(&store, "A"), (5, 4));
    assert_eq!(stock(&store, "B"), (5, 1));
    assert_eq!(edited.total.minor(), 4 * 1000 + 250);

    // Asking for more than is left is refused and changes nothing.
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("A", 6)], None)
        })
        .unwrap_err();
    match &err {
        Error::InsufficientStock { lines } => {
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0].product, "A");
        }
        other => panic!("expected InsufficientStock, got {other:?}"),
    }
    assert_eq!(snapshot(&store), before);

    // Dropping a line releases it.
    store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("B", 1)], None)
        })
        .unwrap();
    assert_eq!(stock(&store, "A"), (5, 0));
    assert_eq!(stock(&store, "B"), (5, 1));
    assert_invariants(&store);
}

#[test]
fn editing_a_paid_order_is_refused() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 1)], true);
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("A", 2)], None)
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err:?}");
    assert!(err.to_string().contains("only PENDING"), "{err}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn a_stale_version_is_refused() {
    let mut store = shop();
    let order = place(&mut store, &[("A", 1)], false);
    let stale = order.version;
    store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("A", 2)], Some(stale))
        })
        .unwrap();
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.set_status(order.id, Status::Paid, Some(stale))
        })
        .unwrap_err();
    match &err {
        Error::StaleVersion {
            order_id,
            expected,
            current,
        } => {
            assert_eq!(*order_id, order.id.get());
            assert_eq!(*expected, stale);
            assert_eq!(*current, stale + 1);
        }
        other => panic!("expected StaleVersion, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Stale);
    let err = store
        .write(&Actor::cli(), |tx| {
            tx.edit_order(order.id, &[item("A", 3)], Some(stale))
        })
        .unwrap_err();
    assert!(matches!(err, Error::StaleVersion { .. }), "{err:?}");
    assert_eq!(snapshot(&store), before);
    // The current version goes through.
    store
        .write(&Actor::cli(), |tx| {
            tx.set_status(order.id, Status::Paid, Some(stale + 1))
        })
        .unwrap();
}

#[test]
fn expiry_cancels_only_old_pending_orders() {
    let mut store = shop();
    let pending = place(&mut store, &[("A", 2)], false);
    let paid = place(&mut store, &[("A", 1)], true);
    // A cutoff in the past expires nothing.
    let none = store
        .write(&Actor::system("expire"), |tx| {
            tx.expire_pending(Timestamp::from_millis(0))
        })
        .unwrap();
    assert!(none.cancelled.is_empty());
    assert_eq!(stock(&store, "A"), (5, 3));

    let far_future = Timestamp::parse("2999-01-01").unwrap();
    let out = store
        .write(&Actor::system("expire"), |tx| tx.expire_pending(far_future))
        .unwrap();
    assert_eq!(out.cancelled, vec![pending.id]);
    assert_eq!(store.order(pending.id).unwrap().status, Status::Cancelled);
    assert_eq!(store.order(paid.id).unwrap().status, Status::Paid);
    assert_eq!(stock(&store, "A"), (5, 1));
    // Running it again finds nothing left to expire.
    let seq = last_seq(&store);
    let again = store
        .write(&Actor::system("expire"), |tx| tx.expire_pending(far_future))
        .unwrap();
    assert!(again.cancelled.is_empty());
    assert_eq!(last_seq(&store), seq);
    assert_invariants(&store);
}

#[test]
fn removing_orders_follows_their_status() {
    let mut store = shop();
    let pending = place(&mut store, &[("A", 2)], false);
    let paid = place(&mut store, &[("B", 1)], true);
    store
        .write(&Actor::cli(), |tx| tx.remove_order(pending.id))
        .unwrap();
    assert_eq!(stock(&store, "A"), (5, 0));
    assert_eq!(
        store.order(pending.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let before = snapshot(&store);
    let err = store
        .write(&Actor::cli(), |tx| tx.remove_order(paid.id))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(snapshot(&store), before);
    assert_invariants(&store);
}
