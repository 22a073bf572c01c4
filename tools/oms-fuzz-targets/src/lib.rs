//! What each fuzz target does with one input, in one place: the libFuzzer
//! binaries in `tools/fuzz/fuzz_targets/` call these functions, and
//! `tests/replay.rs` feeds every committed corpus file through the same
//! functions on stable Rust, so a crash found once stays fixed.
//!
//! Each function must never panic for any input; where a property is
//! cheap to check (an import leaves a consistent database, a parsed amount
//! prints back to itself) it panics when the property fails, so the fuzzer
//! reports it as a crash.

use oms_core::prelude::*;
use oms_core::{
    Actor, Currency, Db, ErrorKind, ItemRequest, NewCustomer, NewProduct, Quantity, Sku, csvio,
};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// The targets, by name (`tools/fuzz/fuzz_targets/<name>.rs`, `tools/fuzz/corpus/<name>/`).
pub const TARGETS: [(&str, Target); 3] = [
    ("csv_import", csv_import),
    ("json_bodies", json_bodies),
    ("money_quantity", money_quantity),
];

/// A small shop for imports to act on: two products with stock, one of
/// them reserved by a pending order, and a customer.
fn shop() -> Db {
    let store = match Db::open_in_memory() {
        Ok(store) => store,
        Err(e) => panic!("cannot open an in-memory database: {e}"),
    };
    let seeded = store.write(&Actor::cli(), |tx| {
        for (sku, stock) in [("A", 10), ("B-2", 3)] {
            tx.add_product(&NewProduct {
                sku: Sku::parse(sku)?,
                name: format!("Product {sku}"),
                price: Currency::USD.parse_amount("2.50")?,
                stock_on_hand: stock,
                active: true,
            })?;
        }
        tx.add_customer(&NewCustomer {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            phone: None,
        })?;
        tx.place_order(&oms_core::NewOrder {
            customer: oms_core::CustomerRef::Email("ada@example.com".into()),
            items: vec![ItemRequest::parse("A:2")?],
            paid: false,
            idempotency_key: Some("seed".into()),
        })?;
        Ok(())
    });
    if let Err(e) = seeded {
        panic!("cannot seed the shop: {e}");
    }
    store
}

/// CSV import: the first byte picks products, customers or orders; the rest
/// is the file, imported into a small shop. A refused file must leave
/// nothing behind; an accepted one must leave a database that `verify`
/// finds consistent (stock equals ledger and open orders).
pub fn csv_import(data: &[u8]) {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    let store = shop();
    let before = store.last_seq().ok();
    let result = store.write(&Actor::cli(), |tx| match which % 3 {
        0 => csvio::import_products(tx, file),
        1 => csvio::import_customers(tx, file),
        _ => csvio::import_orders(tx, file),
    });
    if let Err(e) = result {
        // Bad input is the user's problem (exit 5, 409, ...); an internal
        // error (I/O on an in-memory input, SQL) is oms's.
        assert!(e.kind() != ErrorKind::Internal, "internal error: {e:?}");
        assert_eq!(store.last_seq().ok(), before, "a refused import wrote");
    }
    match store.verify() {
        Ok(report) => assert!(
            report.is_clean(),
            "import left drift: {:?}",
            report.problems
        ),
        Err(e) => panic!("verify failed: {e}"),
    }
}

/// JSON request bodies: every body decoder of the daemon.
pub fn json_bodies(data: &[u8]) {
    oms_daemon::fuzzing::decode_json_bodies(data);
}

/// Money and quantity parsing: amounts in currencies with 0, 2 and 3
/// decimals must print back to an amount that parses to the same value;
/// quantities and `SKU:QTY` items parse without panicking, and an accepted
/// amount times an accepted quantity never overflows.
pub fn money_quantity(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut quantity = None;
    if let Ok(q) = text.parse::<Quantity>() {
        assert!(q.get() >= 1, "accepted quantity {}", q.get());
        quantity = Some(q);
    }
    if let Ok(item) = ItemRequest::parse(text) {
        quantity = quantity.or(Some(item.quantity));
    }
    for code in ["USD", "JPY", "KWD"] {
        let Ok(currency) = Currency::parse(code) else {
            panic!("{code} is a known currency");
        };
        let Ok(amount) = currency.parse_amount(text) else {
            continue;
        };
        assert!(amount.minor() >= 0, "{text:?} parsed negative");
        let printed = amount.to_string();
        match currency.parse_amount(&printed) {
            Ok(again) => assert_eq!(again, amount, "{text:?} -> {printed:?}"),
            Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
        }
        if let Some(q) = quantity {
            assert!(
                amount.checked_mul(q.get()).is_some(),
                "{printed} x {} overflows",
                q.get()
            );
        }
    }
}
