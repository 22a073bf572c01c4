//! The integration and property tests of `oms-core`, as one test binary
//! (one link step, shared helpers): the contract of DESIGN §3–§5 exercised
//! through the public API only.
//!
//! Every test gets its database from `oms_testdb` ([`TestStore`] for a
//! fresh shop, [`TestDb`] for one several connections open), so the whole
//! binary runs on SQLite or, with `OMS_TEST_BACKEND=postgres`, on
//! PostgreSQL. Tests about SQLite itself return early on PostgreSQL
//! through [`oms_testdb::sqlite_only`].

// clippy.toml allows unwrap in `#[test]` functions; the helpers they share
// are test code too, and a panic there is a failed test, which is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod concurrency;
mod csv_safety;
mod csvio;
mod idempotency;
mod invariants;
mod migrations;
mod placement;
mod seam;
mod search;
mod status;
mod status_race;

use std::collections::BTreeMap;

use oms_core::prelude::*;
use oms_core::{
    Actor, Currency, Customer, CustomerRef, Db, Error, ItemRequest, NewCustomer, NewOrder,
    NewProduct, Order, OrderFilter, Product, ProductQuery, ProductRef, Quantity, Seq, Sku, Status,
};

pub use oms_testdb::{TestDb, TestStore};

/// A SKU that the test knows is valid.
pub fn sku(text: &str) -> Sku {
    Sku::parse(text).unwrap()
}

/// One order line `SKU:QTY`.
pub fn item(product: &str, quantity: i64) -> ItemRequest {
    ItemRequest {
        product: ProductRef::Key(product.to_string()),
        quantity: Quantity::new(quantity).unwrap(),
    }
}

/// A placement request for a customer e-mail.
pub fn order_for(email: &str, items: &[(&str, i64)]) -> NewOrder {
    NewOrder {
        customer: CustomerRef::Email(email.to_string()),
        items: items.iter().map(|(s, q)| item(s, *q)).collect(),
        paid: false,
        idempotency_key: None,
    }
}

/// Adds a product priced `price` (e.g. "9.99") with `stock` units on hand.
pub fn add_product(store: &mut Db, sku_text: &str, price: &str, stock: i64) -> Product {
    store
        .write(&Actor::cli(), |tx| {
            tx.add_product(&NewProduct {
                sku: sku(sku_text),
                name: format!("Product {sku_text}"),
                price: Currency::USD.parse_amount(price).unwrap(),
                stock_on_hand: stock,
                active: true,
            })
        })
        .unwrap()
}

/// Adds a customer.
pub fn add_customer(store: &mut Db, name: &str, email: &str) -> Customer {
    store
        .write(&Actor::cli(), |tx| {
            tx.add_customer(&NewCustomer {
                name: name.to_string(),
                email: email.to_string(),
                phone: None,
            })
        })
        .unwrap()
}

/// `(stock_on_hand, stock_reserved)` of a product.
pub fn stock(store: &Db, sku_text: &str) -> (i64, i64) {
    let p = store
        .product(&ProductRef::Key(sku_text.to_string()))
        .unwrap();
    (p.stock_on_hand, p.stock_reserved)
}

pub fn all_orders(store: &Db) -> Vec<Order> {
    store.orders(&OrderFilter::default()).unwrap()
}

pub fn all_products(store: &Db) -> Vec<Product> {
    store.products(&ProductQuery::default()).unwrap()
}

pub fn last_seq(store: &Db) -> Seq {
    store.last_seq().unwrap()
}

/// Everything a refused operation must leave untouched.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub products: Vec<Product>,
    pub orders: Vec<Order>,
    pub last_seq: Seq,
}

pub fn snapshot(store: &Db) -> Snapshot {
    Snapshot {
        products: all_products(store),
        orders: all_orders(store),
        last_seq: last_seq(store),
    }
}

/// The invariants of DESIGN §4, checked from the outside: for every product
/// `0 <= reserved <= on_hand`, `reserved` is the sum of its quantities over
/// PENDING and PAID orders, and `verify` (which also sums the stock ledger)
/// finds no drift.
pub fn assert_invariants(store: &Db) {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    for order in all_orders(store) {
        if matches!(order.status, Status::Pending | Status::Paid) {
            for line in &order.items {
                *open.entry(line.product_id.get()).or_default() += line.quantity;
            }
        }
    }
    for p in all_products(store) {
        assert!(
            0 <= p.stock_reserved && p.stock_reserved <= p.stock_on_hand,
            "{}: reserved {} outside 0..={}",
            p.sku,
            p.stock_reserved,
            p.stock_on_hand
        );
        assert_eq!(
            p.stock_available,
            p.stock_on_hand - p.stock_reserved,
            "{}: available",
            p.sku
        );
        let held = open.get(&p.id.get()).copied().unwrap_or(0);
        assert_eq!(
            p.stock_reserved, held,
            "{}: reserved differs from the PENDING+PAID orders",
            p.sku
        );
    }
    let report = store.verify().unwrap();
    assert!(
        report.is_clean(),
        "verify found drift: {:?}",
        report.problems
    );
    assert_eq!(report.integrity, "ok");
}

/// Strips CSV line context so tests can match the underlying variant.
pub fn innermost(err: &Error) -> &Error {
    match err {
        Error::AtLine { source, .. } => innermost(source),
        other => other,
    }
}
