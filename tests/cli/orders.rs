//! `oms order ...`: placement, listing, the status machine, edits, removal,
//! import, expiry and idempotency.

use serde_json::Value;

use crate::support::{CONFLICT, Db, INVALID, NOT_FOUND, n, s};

/// Products A (1.50, 10 units), B (2.00, 5 units) and customer C.
fn shop() -> Db {
    let db = Db::new();
    db.add_product("A", "1.50", 10);
    db.add_product("B", "2.00", 5);
    db.add_customer("Carol", "carol@example.com");
    db
}

fn status(db: &Db, id: i64) -> String {
    s(&db.order(id), "status").to_string()
}

fn items(order: &Value) -> Vec<(String, i64)> {
    order["items"]
        .as_array()
        .expect("items array")
        .iter()
        .map(|i| (s(i, "sku").to_string(), n(i, "quantity")))
        .collect()
}

// ---- place ---------------------------------------------------------------

#[test]
fn place_by_sku_and_customer_email() {
    let db = shop();
    let o = db.json(&[
        "order",
        "place",
        "--customer",
        "carol@example.com",
        "--item",
        "A:2",
        "--item",
        "B:1",
    ]);
    assert!(n(&o, "id") > 0);
    assert_eq!(n(&o, "customer_id"), 1);
    assert_eq!(s(&o, "status"), "PENDING");
    assert_eq!(s(&o, "total"), "5.00");
    assert_eq!(s(&o, "currency"), "USD");
    assert_eq!(o["payment_collected"], false);
    assert!(o["idempotency_key"].is_null());
    assert!(!s(&o, "tracking_code").is_empty());
    assert_eq!(n(&o, "version"), 1);
    assert!(s(&o, "created_at").ends_with('Z'));
    assert!(s(&o, "updated_at").ends_with('Z'));

    let lines = o["items"].as_array().expect("items");
    assert_eq!(lines.len(), 2);
    assert_eq!(n(&lines[0], "product_id"), 1);
    assert_eq!(s(&lines[0], "sku"), "A");
    assert_eq!(s(&lines[0], "name"), "A");
    assert_eq!(s(&lines[0], "unit_price"), "1.50");
    assert_eq!(n(&lines[0], "quantity"), 2);
    assert_eq!(s(&lines[0], "line_total"), "3.00");
    assert_eq!(s(&lines[1], "sku"), "B");

    assert_eq!(db.stock("A"), (10, 2, 8), "reserved on placement");
    assert_eq!(db.stock("B"), (5, 1, 4));
    assert_eq!(db.order(n(&o, "id")), o, "show prints what place printed");
    db.assert_verifies();
}

#[test]
fn place_by_product_id_and_customer_id() {
    let db = shop();
    let o = db.json(&["order", "place", "--customer", "1", "--item", "2:3"]);
    assert_eq!(items(&o), [("B".to_string(), 3)]);
    assert_eq!(n(&o, "customer_id"), 1);
    assert_eq!(db.stock("B"), (5, 3, 2));
}

#[test]
fn place_with_customer_email_in_other_case() {
    let db = shop();
    let o = db.json(&[
        "order",
        "place",
        "--customer",
        "CAROL@Example.com",
        "--item",
        "A:1",
    ]);
    assert_eq!(n(&o, "customer_id"), 1);
}

#[test]
fn place_paid() {
    let db = shop();
    let o = db.json(&[
        "order",
        "place",
        "--customer",
        "1",
        "--item",
        "A:1",
        "--paid",
    ]);
    assert_eq!(s(&o, "status"), "PAID");
    assert_eq!(o["payment_collected"], true);
    assert_eq!(db.stock("A"), (10, 1, 9), "a paid order reserves too");
}

#[test]
fn place_quiet_prints_only_the_id() {
    let db = shop();
    let out = db.ok(&["order", "place", "--customer", "1", "--item", "A:1", "-q"]);
    assert_eq!(out, "1\n");
}

#[test]
fn insufficient_stock_is_a_conflict_and_writes_nothing() {
    let db = shop();
    let before = db.change_count();
    let err = db.fails(
        &[
            "order",
            "place",
            "--customer",
            "1",
            "--item",
            "A:1",
            "--item",
            "B:6",
        ],
        CONFLICT,
    );
    assert!(err.contains('B') && err.contains("available"), "{err}");
    assert!(db.ids(&["order", "list"]).is_empty(), "no order");
    assert_eq!(db.stock("A"), (10, 0, 10), "the good line was not reserved");
    assert_eq!(db.stock("B"), (5, 0, 5));
    assert_eq!(db.change_count(), before, "no change logged");
    db.assert_verifies();
}

#[test]
fn every_failing_line_is_listed() {
    let db = shop();
    db.add_product("OFF", "1.00", 5);
    db.ok(&["product", "update", "OFF", "--active", "false"]);
    let err = db.fails(
        &[
            "order",
            "place",
            "--customer",
            "1",
            "--item",
            "A:11",
            "--item",
            "B:6",
            "--item",
            "NOPE:1",
            "--item",
            "OFF:1",
        ],
        CONFLICT,
    );
    for sku in ["A ", "B ", "NOPE", "OFF"] {
        assert!(err.contains(sku), "{sku:?} missing from {err}");
    }
    assert!(db.ids(&["order", "list"]).is_empty());
}

#[test]
fn unknown_sku_is_a_conflict() {
    let db = shop();
    let err = db.fails(
        &["order", "place", "--customer", "1", "--item", "ZZZ:1"],
        CONFLICT,
    );
    assert!(err.contains("ZZZ"), "{err}");
    assert!(db.ids(&["order", "list"]).is_empty());
}

#[test]
fn unknown_customer_is_not_found() {
    let db = shop();
    db.fails(
        &["order", "place", "--customer", "99", "--item", "A:1"],
        NOT_FOUND,
    );
    db.fails(
        &[
            "order",
            "place",
            "--customer",
            "x@example.com",
            "--item",
            "A:1",
        ],
        NOT_FOUND,
    );
    assert_eq!(db.stock("A"), (10, 0, 10));
}

#[test]
fn malformed_items_are_invalid_input() {
    let db = shop();
    for item in ["A", "A:0", "A:-1", "A:x", ":1"] {
        db.fails(
            &[
                "order",
                "place",
                "--customer",
                "1",
                &format!("--item={item}"),
            ],
            INVALID,
        );
    }
    assert!(db.ids(&["order", "list"]).is_empty());
}

#[test]
fn same_sku_twice_is_checked_against_the_sum() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    db.fails(
        &[
            "order",
            "place",
            "--customer",
            "1",
            "--item",
            "A:3",
            "--item",
            "A:3",
        ],
        CONFLICT,
    );
    assert_eq!(db.stock("A"), (5, 0, 5));
    assert!(db.ids(&["order", "list"]).is_empty());

    let o = db.json(&[
        "order",
        "place",
        "--customer",
        "1",
        "--item",
        "A:2",
        "--item",
        "A:2",
    ]);
    assert_eq!(items(&o), [("A".to_string(), 4)], "summed into one line");
    assert_eq!(s(&o, "total"), "4.00");
    assert_eq!(db.stock("A"), (5, 4, 1));
    db.assert_verifies();
}

// ---- list and show -------------------------------------------------------

#[test]
fn list_filters() {
    let db = shop();
    db.add_customer("Dave Smith", "dave@example.com");
    db.add_product("WIDGET", "1.00", 5);
    let o1 = db.place("carol@example.com", &["A:1"]);
    let o2 = db.place("dave@example.com", &["B:1"]);
    let o3 = db.place("carol@example.com", &["A:1", "WIDGET:1"]);
    let o4 = db.place("dave@example.com", &["A:2"]);
    db.ok(&["order", "pay", &o2.to_string()]);
    db.ok(&["order", "cancel", &o4.to_string()]);

    assert_eq!(db.ids(&["order", "list"]), [o1, o2, o3, o4]);
    assert_eq!(db.ids(&["order", "list", "--status", "pending"]), [o1, o3]);
    assert_eq!(db.ids(&["order", "list", "--status", "PAID"]), [o2]);
    assert_eq!(db.ids(&["order", "list", "--status", "cancelled"]), [o4]);
    assert_eq!(
        db.ids(&["order", "list", "--customer", "dave@example.com"]),
        [o2, o4]
    );
    assert_eq!(db.ids(&["order", "list", "--customer", "1"]), [o1, o3]);
    assert_eq!(
        db.ids(&[
            "order",
            "list",
            "--customer",
            "1",
            "--status",
            "pending",
            "--search",
            "widget"
        ]),
        [o3]
    );
    assert_eq!(db.ids(&["order", "list", "--search", "smith"]), [o2, o4]);
    assert_eq!(db.ids(&["order", "list", "--limit", "2"]), [o1, o2]);
    assert_eq!(
        db.ids(&["order", "list", "--after", &o2.to_string(), "--limit", "1"]),
        [o3]
    );
    assert_eq!(
        db.ids(&["order", "list", "--after", &o4.to_string()]),
        Vec::<i64>::new()
    );

    let tracking = s(&db.order(o3), "tracking_code").to_string();
    assert_eq!(db.ids(&["order", "list", "--search", &tracking]), [o3]);

    let list = db.json(&["order", "list", "--status", "paid"]);
    let list = list.as_array().expect("a list is a JSON array");
    assert_eq!(list.len(), 1);
    assert_eq!(s(&list[0], "status"), "PAID");
    assert_eq!(items(&list[0]), [("B".to_string(), 1)]);

    db.fails(
        &["order", "list", "--customer", "nobody@example.com"],
        NOT_FOUND,
    );
    db.usage_error(&["order", "list", "--status", "shipped"]);
}

#[test]
fn list_since_and_until() {
    let db = shop();
    let old = db.place("1", &["A:1"]);
    let new = db.place("1", &["A:1"]);
    // Backdate the first order to 2020-01-01T00:00:00Z (milliseconds).
    db.sql(&format!(
        "UPDATE orders SET created_at = 1577836800000 WHERE id = {old}"
    ));
    assert_eq!(s(&db.order(old), "created_at"), "2020-01-01T00:00:00.000Z");
    assert_eq!(db.ids(&["order", "list", "--since", "2021-01-01"]), [new]);
    assert_eq!(db.ids(&["order", "list", "--until", "2021-01-01"]), [old]);
    assert_eq!(
        db.ids(&[
            "order",
            "list",
            "--since",
            "2019-12-31T23:59:59Z",
            "--until",
            "2020-01-01T00:00:01Z"
        ]),
        [old]
    );
    assert_eq!(
        db.ids(&["order", "list", "--since", "2019-01-01"]),
        [old, new]
    );
    db.usage_error(&["order", "list", "--since", "yesterday"]);
}

#[test]
fn show_unknown_order_is_not_found() {
    let db = shop();
    let err = db.fails(&["order", "show", "42"], NOT_FOUND);
    assert!(err.contains("42"), "{err}");
    db.usage_error(&["order", "show", "abc"]);
}

// ---- edit ------------------------------------------------------------------

#[test]
fn edit_pending_order_reserves_the_difference() {
    let db = shop();
    let id = db.place("1", &["A:2", "B:1"]);
    let o = db.json(&["order", "edit", &id.to_string(), "--item", "A:5"]);
    assert_eq!(items(&o), [("A".to_string(), 5)]);
    assert_eq!(s(&o, "total"), "7.50");
    assert!(n(&o, "version") > 1, "version moves on: {o}");
    assert_eq!(db.stock("A"), (10, 5, 5));
    assert_eq!(db.stock("B"), (5, 0, 5), "dropped line released");
    db.assert_verifies();
}

#[test]
fn edit_beyond_stock_is_a_conflict_and_changes_nothing() {
    let db = shop();
    let id = db.place("1", &["A:2"]);
    let before = db.order(id);
    db.fails(
        &["order", "edit", &id.to_string(), "--item", "A:11"],
        CONFLICT,
    );
    assert_eq!(db.order(id), before);
    assert_eq!(db.stock("A"), (10, 2, 8));
}

#[test]
fn edit_is_for_pending_orders_only() {
    let db = shop();
    let id = db.place("1", &["A:2"]);
    db.ok(&["order", "pay", &id.to_string()]);
    let err = db.fails(
        &["order", "edit", &id.to_string(), "--item", "A:1"],
        CONFLICT,
    );
    assert!(err.contains("PENDING"), "{err}");
    assert_eq!(items(&db.order(id)), [("A".to_string(), 2)]);
    assert_eq!(db.stock("A"), (10, 2, 8));
    db.fails(&["order", "edit", "99", "--item", "A:1"], NOT_FOUND);
}

// ---- status machine --------------------------------------------------------

#[test]
fn pay_then_fulfill_ships_the_stock() {
    let db = shop();
    let id = db.place("1", &["A:3"]).to_string();
    let paid = db.json(&["order", "pay", &id]);
    assert_eq!(s(&paid, "status"), "PAID");
    assert_eq!(db.stock("A"), (10, 3, 7), "paying moves no stock");
    let shipped = db.json(&["order", "fulfill", &id]);
    assert_eq!(s(&shipped, "status"), "FULFILLED");
    assert_eq!(db.stock("A"), (7, 0, 7), "on hand and reserved both drop");
    db.assert_verifies();
}

#[test]
fn status_command_takes_any_case() {
    let db = shop();
    let id = db.place("1", &["A:1"]).to_string();
    assert_eq!(
        s(&db.json(&["order", "status", &id, "Paid"]), "status"),
        "PAID"
    );
    assert_eq!(
        s(&db.json(&["order", "status", &id, "FULFILLED"]), "status"),
        "FULFILLED"
    );
    db.usage_error(&["order", "status", &id, "bogus"]);
    db.usage_error(&["order", "status", &id, "pending"]);
    assert_eq!(status(&db, id.parse().expect("id")), "FULFILLED");
}

#[test]
fn invalid_transition_is_a_conflict_naming_the_allowed_states() {
    let db = shop();
    let id = db.place("1", &["A:1"]);
    let err = db.fails(&["order", "fulfill", &id.to_string()], CONFLICT);
    assert!(
        err.contains("PAID") && err.contains("CANCELLED"),
        "names the allowed next states: {err}"
    );
    assert_eq!(status(&db, id), "PENDING");
    assert_eq!(db.stock("A"), (10, 1, 9));

    db.ok(&["order", "pay", &id.to_string()]);
    // Moving to the status it already has is a successful no-op.
    let run = db.run(&["order", "status", &id.to_string(), "paid", "-q"]);
    assert_eq!((run.code, run.stdout.trim()), (0, id.to_string().as_str()));
    assert_eq!(db.stock("A"), (10, 1, 9));

    db.ok(&["order", "fulfill", &id.to_string()]);
    let err = db.fails(&["order", "cancel", &id.to_string()], CONFLICT);
    assert!(err.contains("terminal"), "{err}");
    assert_eq!(db.stock("A"), (9, 0, 9));
}

#[test]
fn cancelled_is_terminal() {
    let db = shop();
    let id = db.place("1", &["A:1"]).to_string();
    db.ok(&["order", "cancel", &id]);
    db.fails(&["order", "pay", &id], CONFLICT);
    db.fails(&["order", "fulfill", &id], CONFLICT);
    assert_eq!(status(&db, id.parse().expect("id")), "CANCELLED");
}

#[test]
fn cancel_releases_once_and_repeating_it_is_a_no_op() {
    let db = shop();
    let keep = db.place("1", &["A:3"]);
    let id = db.place("1", &["A:2"]).to_string();
    assert_eq!(db.stock("A"), (10, 5, 5));

    let first = db.json(&["order", "cancel", &id]);
    assert_eq!(s(&first, "status"), "CANCELLED");
    assert_eq!(db.stock("A"), (10, 3, 7));
    let changes = db.change_count();

    let second = db.json(&["order", "cancel", &id]);
    assert_eq!(s(&second, "status"), "CANCELLED");
    assert_eq!(second["version"], first["version"], "nothing written");
    assert_eq!(db.stock("A"), (10, 3, 7), "not released twice");
    assert_eq!(db.change_count(), changes);
    db.ok(&["order", "status", &id, "cancelled"]);
    assert_eq!(db.stock("A"), (10, 3, 7));
    assert_eq!(status(&db, keep), "PENDING");
    db.assert_verifies();
}

#[test]
fn cancel_of_a_paid_order_releases() {
    let db = shop();
    let id = db.place("1", &["B:2"]).to_string();
    db.ok(&["order", "pay", &id]);
    db.ok(&["order", "cancel", &id]);
    assert_eq!(db.stock("B"), (5, 0, 5));
    db.assert_verifies();
}

#[test]
fn status_of_unknown_order_is_not_found() {
    let db = shop();
    db.fails(&["order", "pay", "7"], NOT_FOUND);
    db.fails(&["order", "cancel", "7"], NOT_FOUND);
    db.fails(&["order", "status", "7", "paid"], NOT_FOUND);
}

// ---- remove ------------------------------------------------------------------

#[test]
fn remove_pending_order_releases_its_stock() {
    let db = shop();
    let id = db.place("1", &["A:4"]);
    let out = db.ok(&["order", "remove", &id.to_string(), "-q"]);
    assert_eq!(out.trim(), id.to_string());
    db.fails(&["order", "show", &id.to_string()], NOT_FOUND);
    assert_eq!(db.stock("A"), (10, 0, 10));
    db.fails(&["order", "remove", &id.to_string()], NOT_FOUND);
    db.assert_verifies();
}

#[test]
fn remove_paid_order_is_a_conflict() {
    let db = shop();
    let id = db.place("1", &["A:4"]).to_string();
    db.ok(&["order", "pay", &id]);
    db.fails(&["order", "remove", &id], CONFLICT);
    assert_eq!(status(&db, id.parse().expect("id")), "PAID");
    assert_eq!(db.stock("A"), (10, 4, 6));
}

// ---- expire --------------------------------------------------------------------

#[test]
fn expire_older_than_zero_cancels_pending_and_releases() {
    let db = shop();
    let pending = db.place("1", &["A:2"]);
    let paid = db.place("1", &["B:1"]);
    db.ok(&["order", "pay", &paid.to_string()]);
    assert_eq!(db.stock("A"), (10, 2, 8));

    let out = db.ok(&["order", "expire", "--older-than", "0s"]);
    assert_eq!(
        crate::support::ids(&out),
        [pending],
        "prints the cancelled ids"
    );
    assert_eq!(status(&db, pending), "CANCELLED");
    assert_eq!(status(&db, paid), "PAID", "only PENDING orders expire");
    assert_eq!(db.stock("A"), (10, 0, 10));
    assert_eq!(db.stock("B"), (5, 1, 4));
    db.assert_verifies();
}

#[test]
fn expire_only_touches_orders_older_than_the_limit() {
    let db = shop();
    let old = db.place("1", &["A:1"]);
    let new = db.place("1", &["A:2"]);
    db.sql(&format!(
        "UPDATE orders SET created_at = 1577836800000 WHERE id = {old}"
    ));

    // --dry-run reports and writes nothing.
    let out = db.ok(&["order", "expire", "--older-than", "24h", "--dry-run"]);
    assert_eq!(crate::support::ids(&out), [old]);
    assert_eq!(status(&db, old), "PENDING");

    let out = db.ok(&["order", "expire", "--older-than", "24h"]);
    assert_eq!(crate::support::ids(&out), [old]);
    assert_eq!(status(&db, old), "CANCELLED");
    assert_eq!(status(&db, new), "PENDING");
    assert_eq!(db.stock("A"), (10, 2, 8));

    // Nothing left to expire.
    assert_eq!(db.ok(&["order", "expire", "--older-than", "24h"]), "");
    db.usage_error(&["order", "expire", "--older-than", "soon"]);
    db.assert_verifies();
}

// ---- idempotency ---------------------------------------------------------------

fn place_with_key(db: &Db, key: &str, items: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "order",
        "place",
        "--customer",
        "1",
        "--idempotency-key",
        key,
        "-q",
    ];
    for item in items {
        args.extend(["--item", item]);
    }
    db.run(&args)
}

#[test]
fn same_idempotency_key_replays_the_original_order() {
    let db = shop();
    let first = place_with_key(&db, "key-1", &["A:2"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let changes = db.change_count();

    let again = place_with_key(&db, "key-1", &["A:2"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, first.stdout, "same id printed");
    assert_eq!(db.change_count(), changes, "nothing written");
    assert_eq!(db.ids(&["order", "list"]).len(), 1);
    assert_eq!(db.stock("A"), (10, 2, 8), "reserved once");

    let id: i64 = first.stdout.trim().parse().expect("id");
    assert_eq!(s(&db.order(id), "idempotency_key"), "key-1");
}

#[test]
fn same_idempotency_key_with_other_contents_is_a_conflict() {
    let db = shop();
    assert_eq!(place_with_key(&db, "key-1", &["A:2"]).code, 0);
    let changes = db.change_count();
    for items in [&["A:3"][..], &["B:2"], &["A:2", "B:1"]] {
        let run = place_with_key(&db, "key-1", items);
        assert_eq!(run.code, CONFLICT, "{items:?}: {}", run.stderr);
        assert!(run.stderr.contains("key-1"), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    db.add_customer("Other", "other@example.com");
    let changes = changes + 1;
    let run = db.run(&[
        "order",
        "place",
        "--customer",
        "other@example.com",
        "--item",
        "A:2",
        "--idempotency-key",
        "key-1",
    ]);
    assert_eq!(run.code, CONFLICT, "another customer: {}", run.stderr);
    assert_eq!(db.change_count(), changes);
    assert_eq!(db.stock("A"), (10, 2, 8));
}

#[test]
fn same_idempotency_key_with_and_without_paid_is_a_conflict() {
    let db = shop();
    assert_eq!(place_with_key(&db, "key-1", &["A:1"]).code, 0);
    let run = db.run(&[
        "order",
        "place",
        "--customer",
        "1",
        "--item",
        "A:1",
        "--idempotency-key",
        "key-1",
        "--paid",
    ]);
    assert_eq!(
        run.code, CONFLICT,
        "payment_collected differs, so the contents differ; got stdout {} stderr {}",
        run.stdout, run.stderr
    );
}

// ---- import --------------------------------------------------------------------

const ORDERS_CSV: &str = "order_ref,customer_email,sku,quantity,status
r-1,carol@example.com,A,1,
r-1,carol@example.com,B,2,
r-2,carol@example.com,A,3,PAID
r-3,carol@example.com,B,1,CANCELLED
";

#[test]
fn import_places_each_order_once() {
    let db = shop();
    let file = db.file("orders.csv", ORDERS_CSV);
    let first = db.json(&["order", "import", &file]);
    assert_eq!(n(&first, "rows"), 3, "rows with one ref form one order");
    assert_eq!(n(&first, "created"), 3);
    let ids = db.ids(&["order", "list"]);
    assert_eq!(ids.len(), 3);

    let o1 = db.order(ids[0]);
    assert_eq!(s(&o1, "idempotency_key"), "r-1", "the ref is the key");
    assert_eq!(s(&o1, "status"), "PENDING");
    assert_eq!(items(&o1), [("A".to_string(), 1), ("B".to_string(), 2)]);
    assert_eq!(status(&db, ids[1]), "PAID");
    assert_eq!(status(&db, ids[2]), "CANCELLED");
    assert_eq!(db.stock("A"), (10, 4, 6));
    assert_eq!(
        db.stock("B"),
        (5, 2, 3),
        "a cancelled order reserves nothing"
    );

    let changes = db.change_count();
    let second = db.json(&["order", "import", &file]);
    assert_eq!(n(&second, "created"), 0);
    assert_eq!(n(&second, "unchanged"), 3);
    assert_eq!(db.ids(&["order", "list"]), ids, "no duplicates");
    assert_eq!(db.stock("A"), (10, 4, 6));
    assert_eq!(db.change_count(), changes);
    db.assert_verifies();
}

#[test]
fn import_dry_run_writes_nothing() {
    let db = shop();
    let file = db.file("orders.csv", ORDERS_CSV);
    let changes = db.change_count();
    let summary = db.json(&["order", "import", "--dry-run", &file]);
    assert_eq!(n(&summary, "created"), 3);
    assert_eq!(summary["dry_run"], true);
    assert!(db.ids(&["order", "list"]).is_empty());
    assert_eq!(db.stock("A"), (10, 0, 10));
    assert_eq!(db.change_count(), changes);
}

#[test]
fn import_bad_row_fails_the_whole_file() {
    let db = shop();
    let csv = "order_ref,customer_email,sku,quantity
r-1,carol@example.com,A,1
r-2,carol@example.com,B,1
r-3,carol@example.com,A,many
";
    let changes = db.change_count();
    let err = db.fails_stdin(&["order", "import", "-"], csv, INVALID);
    assert!(err.contains("line 4"), "{err}");
    assert!(
        db.ids(&["order", "list"]).is_empty(),
        "earlier rows rolled back"
    );
    assert_eq!(db.stock("A"), (10, 0, 10));
    assert_eq!(db.change_count(), changes);
}

#[test]
fn import_stock_failure_names_the_line_and_writes_nothing() {
    let db = shop();
    let csv = "order_ref,customer_email,sku,quantity
r-1,carol@example.com,A,1
r-2,carol@example.com,B,6
";
    let err = db.fails_stdin(&["order", "import", "-"], csv, CONFLICT);
    assert!(err.contains("line 3"), "{err}");
    assert!(db.ids(&["order", "list"]).is_empty());
    assert_eq!(db.stock("A"), (10, 0, 10));
}
