//! CSV in and out (DESIGN §5): formula injection is neutralised and undone,
//! a bad row fails the whole file with its line number, order imports are
//! re-runnable, and every export re-imports.

use std::collections::BTreeMap;

use oms_core::csvio::{self, ORDER_BY_ORDER_COLUMNS, ORDER_COLUMNS};
use oms_core::prelude::*;
use oms_core::{
    Actor, CustomerQuery, CustomerRef, Db, Error, ErrorKind, ImportSummary, NewCustomer, Order,
    OrderFilter, Status,
};

use crate::{
    TestStore, add_customer, add_product, all_orders, all_products, assert_invariants, innermost,
    order_for, snapshot, stock,
};

fn import_customers(store: &mut Db, bytes: &[u8]) -> oms_core::Result<ImportSummary> {
    store.write(&Actor::cli(), |tx| csvio::import_customers(tx, bytes))
}

fn import_products(store: &mut Db, bytes: &[u8]) -> oms_core::Result<ImportSummary> {
    store.write(&Actor::cli(), |tx| csvio::import_products(tx, bytes))
}

fn import_orders(store: &mut Db, bytes: &[u8]) -> oms_core::Result<ImportSummary> {
    store.write(&Actor::cli(), |tx| csvio::import_orders(tx, bytes))
}

fn export_orders(store: &Db, by_order: bool) -> Vec<u8> {
    let mut out = Vec::new();
    csvio::export_orders(store, &OrderFilter::default(), by_order, &mut out).unwrap();
    out
}

/// Every cell of a CSV file, header included.
fn cells(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// No exported cell may start with a character a spreadsheet evaluates.
fn assert_no_formula_cells(bytes: &[u8]) {
    for row in cells(bytes) {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "unneutralised cell {cell:?}"
            );
        }
    }
}

#[test]
fn formula_cells_export_with_an_apostrophe_and_re_import_unchanged() {
    let mut src = TestStore::new();
    let people = [
        ("=HYPERLINK(\"x\")", "evil@example.com", Some("+1 555 0100")),
        ("'quoted", "quote@example.com", None),
        ("@SUM(A1)", "at@example.com", Some("-5")),
        ("Plain, \"Name\"", "plain@example.com", None),
    ];
    src.write(&Actor::cli(), |tx| {
        for (name, email, phone) in people {
            tx.add_customer(&NewCustomer {
                name: name.to_string(),
                email: email.to_string(),
                phone: phone.map(str::to_string),
            })?;
        }
        Ok(())
    })
    .unwrap();

    let mut bytes = Vec::new();
    assert_eq!(csvio::export_customers(&*src, &mut bytes).unwrap(), 4);
    let raw = String::from_utf8(bytes.clone()).unwrap();
    // The raw bytes: an apostrophe first, then the CSV quoting of the quotes.
    assert!(
        raw.contains(",\"'=HYPERLINK(\"\"x\"\")\",evil@example.com,'+1 555 0100,"),
        "{raw}"
    );
    assert!(raw.contains(",''quoted,"), "{raw}");
    assert!(raw.contains(",'@SUM(A1),at@example.com,'-5,"), "{raw}");
    assert!(raw.contains(",\"Plain, \"\"Name\"\"\","), "{raw}");
    assert!(!raw.contains(",=HYPERLINK") && !raw.contains(",\"=HYPERLINK"));
    assert!(raw.starts_with("id,name,email,phone,created_at,updated_at\r\n"));
    assert_no_formula_cells(&bytes);

    let mut dst = TestStore::new();
    let summary = import_customers(&mut dst, &bytes).unwrap();
    assert_eq!((summary.rows, summary.created), (4, 4));
    let got: Vec<(String, String, Option<String>)> = dst
        .customers(&CustomerQuery::default())
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.email, c.phone))
        .collect();
    let want: Vec<(String, String, Option<String>)> = people
        .iter()
        .map(|(n, e, p)| (n.to_string(), e.to_string(), p.map(str::to_string)))
        .collect();
    assert_eq!(got, want);

    // Re-importing the export into its own database changes nothing.
    let before = snapshot(&src);
    let again = import_customers(&mut src, &bytes).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 4));
    assert_eq!(snapshot(&src), before);
}

#[test]
fn a_bad_product_row_fails_the_whole_file_with_its_line() {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "1.00", 5);
    let before = snapshot(&store);
    let file = "sku,name,price,stock_on_hand\r\n\
                NEW-1,New one,1.00,3\r\n\
                NEW-2,New two,abc,3\r\n\
                A,Renamed,9.00,1\r\n";
    let err = import_products(&mut store, file.as_bytes()).unwrap_err();
    assert!(
        matches!(err, Error::AtLine { line: 3, .. }),
        "expected an error at line 3, got {err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("line 3:") && text.contains("abc"),
        "{text}"
    );
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(all_products(&store).len(), 1);
    assert_eq!(snapshot(&store), before, "a failed import wrote something");
    assert_invariants(&store);
}

/// Regression: the csv crate's own line numbers run one behind after CRLF
/// terminators and blank lines, and every oms export uses CRLF, so "line 3"
/// was reported as "line 2".
#[test]
fn error_line_numbers_count_crlf_blank_lines_and_quoted_newlines() {
    let mut store = TestStore::new();
    let before = snapshot(&store);
    for (file, line, needle) in [
        ("sku,name,price\nA,a,1.00\nB,b,abc\n", 3, "abc"),
        ("sku,name,price\r\nA,a,1.00\r\nB,b,abc\r\n", 3, "abc"),
        (
            "sku,name,price\r\nA,a,1.00\r\nB,b,1.00\r\nC,c,abc",
            4,
            "abc",
        ),
        (
            "sku,name,price\r\nA,a,1.00\r\n\r\n\r\nB,b,abc\r\n",
            5,
            "abc",
        ),
        (
            "sku,name,price,note\r\nA,a,1.00,\"two\r\nlines\"\r\nB,b,abc,\r\n",
            4,
            "abc",
        ),
        (
            "sku,name,price\r\nA,a,1.00\r\nB,b\r\n",
            3,
            "expected 3 fields, found 2",
        ),
    ] {
        let err = import_products(&mut store, file.as_bytes()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::AtLine { line: got, .. } if got == line) && text.contains(needle),
            "{file:?}: expected line {line}, got {text}"
        );
        assert_eq!(snapshot(&store), before);
    }
}

#[test]
fn product_import_upserts_by_sku_and_refuses_stock_below_reservations() {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "1.00", 5);
    add_customer(&mut store, "Ada", "ada@example.com");
    store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&order_for("ada@example.com", &[("A", 3)]))
        })
        .unwrap();
    let file = "sku,name,price,stock_on_hand,active,ignored\r\n\
                A,Product A,1.00,8,,x\r\n\
                B,Product B,2.00,,false,y\r\n\
                C,Product C,3.00,4,true,z\r\n";
    let summary = import_products(&mut store, file.as_bytes()).unwrap();
    assert_eq!(
        (
            summary.rows,
            summary.created,
            summary.updated,
            summary.unchanged
        ),
        (3, 2, 1, 0)
    );
    assert_eq!(stock(&store, "A"), (8, 3));
    assert_eq!(stock(&store, "B"), (0, 0));
    assert_eq!(stock(&store, "C"), (4, 0));
    assert!(!all_products(&store)[1].active);

    // Importing the same file again is a no-op.
    let before = snapshot(&store);
    let again = import_products(&mut store, file.as_bytes()).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 3));
    assert_eq!(snapshot(&store), before);

    // Setting A below its 3 reserved units is refused, at its line.
    let file = "sku,name,price,stock_on_hand\r\nC,Product C,3.00,9\r\nA,Product A,1.00,2\r\n";
    let err = import_products(&mut store, file.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::AtLine { line: 3, .. }), "{err:?}");
    assert_eq!(innermost(&err).kind(), ErrorKind::Conflict, "{err:?}");
    assert_eq!(snapshot(&store), before);
    assert_invariants(&store);
}

#[test]
fn product_export_re_imports_into_a_fresh_database() {
    let mut src = TestStore::new();
    add_product(&mut src, "A", "1.25", 5);
    add_product(&mut src, "-DASH", "0.99", 0);
    add_product(&mut src, "=EQ", "100.00", 7);
    let mut bytes = Vec::new();
    assert_eq!(csvio::export_products(&*src, &mut bytes).unwrap(), 3);
    assert_no_formula_cells(&bytes);
    let mut dst = TestStore::new();
    let summary = import_products(&mut dst, &bytes).unwrap();
    assert_eq!(summary.created, 3);
    let shape = |s: &Db| -> Vec<(String, String, String, i64, bool)> {
        all_products(s)
            .into_iter()
            .map(|p| {
                (
                    p.sku.to_string(),
                    p.name,
                    p.price.to_string(),
                    p.stock_on_hand,
                    p.active,
                )
            })
            .collect()
    };
    assert_eq!(shape(&dst), shape(&src));
    assert_invariants(&dst);
}

const ORDERS_FILE: &str = "order_ref,customer_email,sku,quantity,status\r\n\
                           r1,ada@example.com,A,1,\r\n\
                           r1,ada@example.com,B,2,\r\n\
                           r2,ada@example.com,A,1,paid\r\n\
                           r3,bob@example.com,B,1,Cancelled\r\n\
                           r4,bob@example.com,A,2,FULFILLED\r\n";

fn order_shop() -> TestStore {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "10.00", 10);
    add_product(&mut store, "B", "2.50", 10);
    add_customer(&mut store, "Ada", "ada@example.com");
    add_customer(&mut store, "Bob", "bob@example.com");
    store
}

#[test]
fn importing_the_same_orders_twice_creates_no_duplicates() {
    let mut store = order_shop();
    let first = import_orders(&mut store, ORDERS_FILE.as_bytes()).unwrap();
    assert_eq!(
        (first.rows, first.created, first.unchanged),
        (4, 4, 0),
        "{first:?}"
    );
    let orders = all_orders(&store);
    let shape: Vec<(Option<&str>, Status, usize)> = orders
        .iter()
        .map(|o| (o.idempotency_key.as_deref(), o.status, o.items.len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (Some("r1"), Status::Pending, 2),
            (Some("r2"), Status::Paid, 1),
            (Some("r3"), Status::Cancelled, 1),
            (Some("r4"), Status::Fulfilled, 1),
        ]
    );
    // A: 1 + 1 open, 2 shipped; B: 2 open, the cancelled one holds nothing.
    assert_eq!(stock(&store, "A"), (8, 2));
    assert_eq!(stock(&store, "B"), (10, 2));
    assert_invariants(&store);

    let before = snapshot(&store);
    let second = import_orders(&mut store, ORDERS_FILE.as_bytes()).unwrap();
    assert_eq!(
        (second.rows, second.created, second.unchanged),
        (4, 0, 4),
        "{second:?}"
    );
    assert_eq!(snapshot(&store), before, "a re-import wrote something");
}

/// An imported order announces the status it ends in, once: one outbox
/// row per order (README, "E-mail notifications"), none on a re-import.
#[test]
fn an_import_queues_one_mail_per_order_of_the_status_it_ends_in() {
    let mut store = order_shop();
    import_orders(&mut store, ORDERS_FILE.as_bytes()).unwrap();
    let mails = |store: &Db| -> Vec<(i64, String, String)> {
        store
            .notifications(&oms_core::NotificationFilter::default())
            .unwrap()
            .into_iter()
            .map(|n| (n.order_id.get(), n.kind.to_string(), n.recipient))
            .collect()
    };
    let ids: Vec<i64> = all_orders(&store).iter().map(|o| o.id.get()).collect();
    let expected: Vec<(i64, String, String)> = [
        ("order.placed", "ada@example.com"),
        ("order.paid", "ada@example.com"),
        ("order.cancelled", "bob@example.com"),
        ("order.fulfilled", "bob@example.com"),
    ]
    .iter()
    .zip(&ids)
    .map(|((kind, to), id)| (*id, kind.to_string(), to.to_string()))
    .collect();
    assert_eq!(mails(&store), expected);
    import_orders(&mut store, ORDERS_FILE.as_bytes()).unwrap();
    assert_eq!(mails(&store), expected, "a re-import queued mail again");
}

#[test]
fn a_bad_order_row_fails_the_whole_file_with_its_line() {
    let mut store = order_shop();
    let before = snapshot(&store);
    for (file, line) in [
        // Quantity 0 on line 3.
        (
            "order_ref,customer_email,sku,quantity\r\nr1,ada@example.com,A,1\r\nr2,ada@example.com,A,0\r\n",
            3,
        ),
        // Not enough B for r2, whose first row is line 3.
        (
            "order_ref,customer_email,sku,quantity\r\nr1,ada@example.com,A,1\r\nr2,ada@example.com,A,1\r\nr2,ada@example.com,B,11\r\nr3,ada@example.com,A,1\r\n",
            3,
        ),
        // r1 comes back after r2.
        (
            "order_ref,customer_email,sku,quantity\r\nr1,ada@example.com,A,1\r\nr2,ada@example.com,A,1\r\nr1,ada@example.com,B,1\r\n",
            4,
        ),
        // Unknown customer.
        (
            "order_ref,customer_email,sku,quantity\r\nr1,nobody@example.com,A,1\r\n",
            2,
        ),
    ] {
        let err = import_orders(&mut store, file.as_bytes()).unwrap_err();
        match &err {
            Error::AtLine { line: got, .. } => assert_eq!(*got, line, "{err}"),
            other => panic!("expected a line number, got {other:?}"),
        }
        assert!(
            err.to_string().starts_with(&format!("line {line}:")),
            "{err}"
        );
        assert_eq!(snapshot(&store), before, "{file:?} wrote something");
    }
}

/// What an order looks like independent of the database it lives in.
#[derive(Debug, PartialEq)]
struct Portable {
    key: String,
    status: Status,
    customer_email: String,
    customer_name: String,
    items: Vec<(String, String, i64)>,
    total: String,
}

fn portable(store: &Db, order: &Order, key_if_none: bool) -> Portable {
    let customer = store.customer(&CustomerRef::Id(order.customer_id)).unwrap();
    Portable {
        key: match &order.idempotency_key {
            Some(k) => k.clone(),
            None if key_if_none => format!("import-order-{}", order.id),
            None => String::new(),
        },
        status: order.status,
        customer_email: customer.email,
        customer_name: customer.name,
        items: order
            .items
            .iter()
            .map(|i| (i.sku.to_string(), i.unit_price.to_string(), i.quantity))
            .collect(),
        total: order.total.to_string(),
    }
}

/// A database with orders in every status, awkward names and SKUs.
fn order_history() -> TestStore {
    let mut store = TestStore::new();
    for (sku, price) in [("A", "10.00"), ("B", "2.50"), ("+PLUS", "0.10")] {
        add_product(&mut store, sku, price, 20);
    }
    add_customer(&mut store, "Ada Lovelace", "ada@example.com");
    add_customer(&mut store, "=cmd|' /C calc'!A0", "evil@example.com");
    add_customer(&mut store, "Bob, \"the builder\"", "bob@example.com");
    let place =
        |store: &mut Db, email: &str, items: &[(&str, i64)], key: Option<&str>, then: &[Status]| {
            let mut new = order_for(email, items);
            new.idempotency_key = key.map(str::to_string);
            store
                .write(&Actor::cli(), |tx| {
                    let order = tx.place_order(&new)?.order;
                    for to in then {
                        tx.set_status(order.id, *to, None)?;
                    }
                    Ok(())
                })
                .unwrap();
        };
    place(
        &mut store,
        "ada@example.com",
        &[("A", 2), ("B", 1)],
        Some("web-1"),
        &[],
    );
    place(
        &mut store,
        "evil@example.com",
        &[("+PLUS", 1), ("A", 1)],
        None,
        &[Status::Paid],
    );
    place(
        &mut store,
        "bob@example.com",
        &[("B", 3)],
        None,
        &[Status::Paid, Status::Fulfilled],
    );
    place(
        &mut store,
        "ada@example.com",
        &[("A", 1)],
        Some("-web-2"),
        &[Status::Cancelled],
    );
    place(
        &mut store,
        "bob@example.com",
        &[("A", 1), ("B", 1), ("+PLUS", 2)],
        None,
        &[],
    );
    assert_invariants(&store);
    store
}

/// A fresh database with the same products (and fresh stock), no
/// customers and no orders.
fn fresh_with_products() -> TestStore {
    let mut store = TestStore::new();
    for (sku, price) in [("A", "10.00"), ("B", "2.50"), ("+PLUS", "0.10")] {
        add_product(&mut store, sku, price, 20);
    }
    store
}

fn stock_levels(store: &Db) -> BTreeMap<String, (i64, i64)> {
    all_products(store)
        .into_iter()
        .map(|p| (p.sku.to_string(), (p.stock_on_hand, p.stock_reserved)))
        .collect()
}

fn assert_round_trip(by_order: bool) {
    let src = order_history();
    let bytes = export_orders(&src, by_order);
    let header = if by_order {
        ORDER_BY_ORDER_COLUMNS.join(",")
    } else {
        ORDER_COLUMNS.join(",")
    };
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(&format!("{header}\r\n")), "{text}");
    assert_no_formula_cells(&bytes);
    let rows = cells(&bytes).len() - 1;
    assert_eq!(rows, if by_order { 5 } else { 9 }, "{text}");

    let mut dst = fresh_with_products();
    let summary = import_orders(&mut dst, &bytes).unwrap();
    assert_eq!((summary.rows, summary.created), (5, 5), "{summary:?}");

    let src_orders: Vec<Portable> = all_orders(&src)
        .iter()
        .map(|o| portable(&src, o, true))
        .collect();
    let dst_orders: Vec<Portable> = all_orders(&dst)
        .iter()
        .map(|o| portable(&dst, o, false))
        .collect();
    assert_eq!(dst_orders, src_orders);
    assert_eq!(stock_levels(&dst), stock_levels(&src));
    assert_invariants(&dst);

    // The new database exports the same rows, apart from when each order
    // was created and the refs given to orders that had none.
    let again = export_orders(&dst, by_order);
    let strip = |bytes: &[u8]| -> Vec<Vec<String>> {
        cells(bytes)
            .into_iter()
            .map(|mut row| {
                row[1] = String::new();
                row[2] = String::new();
                row
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&bytes));

    // And importing its own export again changes nothing.
    let before = snapshot(&dst);
    let second = import_orders(&mut dst, &again).unwrap();
    assert_eq!((second.created, second.unchanged), (0, 5), "{second:?}");
    assert_eq!(snapshot(&dst), before);
}

#[test]
fn order_export_re_imports_into_a_fresh_database() {
    assert_round_trip(false);
}

#[test]
fn by_order_export_re_imports_into_a_fresh_database() {
    assert_round_trip(true);
}

#[test]
fn export_filters_apply() {
    let src = order_history();
    let mut out = Vec::new();
    let filter = OrderFilter {
        status: Some(Status::Paid),
        ..OrderFilter::default()
    };
    assert_eq!(
        csvio::export_orders(&*src, &filter, false, &mut out).unwrap(),
        1
    );
    let rows = cells(&out);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[1..].iter().all(|r| r[3] == "PAID"), "{rows:?}");
}

/// The export reads orders in batches (so a slow consumer never holds a
/// read snapshot): across batch boundaries it still gives every order once,
/// in id order, honours filters and limits, and leaves out orders placed
/// after it started.
#[test]
fn order_export_in_batches_gives_every_order_once_in_order() {
    let mut store = TestStore::new();
    add_product(&mut store, "A", "1.00", 100_000);
    add_product(&mut store, "B", "2.00", 100_000);
    add_customer(&mut store, "C", "c@example.com");
    let total = oms_core::EXPORT_BATCH as usize * 2 + 321;
    store
        .write(&Actor::cli(), |tx| {
            for n in 0..total {
                let placed = tx.place_order(&order_for("c@example.com", &[("A", 1), ("B", 2)]))?;
                if n % 3 == 0 {
                    tx.set_status(placed.order.id, Status::Paid, None)?;
                }
            }
            Ok(())
        })
        .unwrap();
    let export = |filter: &OrderFilter| {
        let mut ids: Vec<i64> = Vec::new();
        let mut lines = 0;
        store
            .for_each_export_row(filter, &mut |row| {
                lines += 1;
                if ids.last() != Some(&row.order_id.get()) {
                    ids.push(row.order_id.get());
                }
                Ok(())
            })
            .unwrap();
        (ids, lines)
    };
    let listed = |filter: &OrderFilter| -> Vec<i64> {
        store
            .orders(filter)
            .unwrap()
            .iter()
            .map(|o| o.id.get())
            .collect()
    };
    let all = OrderFilter::default();
    let (ids, lines) = export(&all);
    assert_eq!(ids, listed(&all));
    assert_eq!(ids.len(), total);
    assert_eq!(lines, total * 2);
    let paid = OrderFilter {
        status: Some(Status::Paid),
        ..OrderFilter::default()
    };
    assert_eq!(export(&paid).0, listed(&paid));
    for limit in [1, 999, 1000, 1001, 2001] {
        let limited = OrderFilter {
            limit: Some(limit),
            ..OrderFilter::default()
        };
        let (ids, _) = export(&limited);
        assert_eq!(ids, listed(&limited), "limit {limit}");
        assert_eq!(ids.len(), limit as usize);
    }
    // Orders placed while the export runs (between its batches, by another
    // connection) are not in it, and the export does not block them.
    let db = crate::TestDb::from_env();
    let mut file_store = db.open().unwrap();
    add_product(&mut file_store, "A", "1.00", 100_000);
    add_customer(&mut file_store, "C", "c@example.com");
    file_store
        .write(&Actor::cli(), |tx| {
            for _ in 0..1500 {
                tx.place_order(&order_for("c@example.com", &[("A", 1)]))?;
            }
            Ok(())
        })
        .unwrap();
    let writer = db.open().unwrap();
    let mut exported = Vec::new();
    let mut placed_during = Vec::new();
    file_store
        .for_each_export_row(&all, &mut |row| {
            if exported.is_empty() {
                let placed = writer
                    .write(&Actor::cli(), |tx| {
                        tx.place_order(&order_for("c@example.com", &[("A", 1)]))
                    })
                    .unwrap();
                placed_during.push(placed.order.id.get());
            }
            exported.push(row.order_id.get());
            Ok(())
        })
        .unwrap();
    assert_eq!(exported.len(), 1500);
    assert!(!exported.contains(&placed_during[0]));
}
