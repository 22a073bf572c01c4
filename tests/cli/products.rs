//! `oms product ...`: the catalogue and stock adjustments.

use crate::support::{CONFLICT, Db, INVALID, NOT_FOUND, csv_records, first_line, n, s};

const PRODUCT_HEADER: &str =
    "id,sku,name,price,stock_on_hand,stock_reserved,stock_available,active,created_at,updated_at";

#[test]
fn add_prints_the_product_with_design_field_names() {
    let db = Db::new();
    let p = db.json(&[
        "product",
        "add",
        "--sku",
        "LAPTOP-13",
        "--name",
        "Laptop 13",
        "--price",
        "1299.50",
        "--stock",
        "7",
    ]);
    assert!(n(&p, "id") > 0);
    assert_eq!(s(&p, "sku"), "LAPTOP-13");
    assert_eq!(s(&p, "name"), "Laptop 13");
    assert_eq!(s(&p, "price"), "1299.50", "money is a decimal string");
    assert_eq!(n(&p, "stock_on_hand"), 7);
    assert_eq!(n(&p, "stock_reserved"), 0);
    assert_eq!(n(&p, "stock_available"), 7);
    assert_eq!(p["active"], true);
    assert!(s(&p, "created_at").ends_with('Z'), "UTC RFC 3339: {p}");
    assert!(s(&p, "updated_at").ends_with('Z'), "UTC RFC 3339: {p}");
}

#[test]
fn show_by_sku_and_by_id_agree_and_list_contains_it() {
    let db = Db::new();
    let id = db.add_product("MOUSE", "24.99", 3);
    db.add_product("KEYB", "89.90", 1);
    let by_sku = db.json(&["product", "show", "MOUSE"]);
    let by_id = db.json(&["product", "show", &id.to_string()]);
    assert_eq!(by_sku, by_id);
    assert_eq!(s(&by_sku, "price"), "24.99");

    let list = db.json(&["product", "list"]);
    let skus: Vec<&str> = list
        .as_array()
        .expect("a JSON array for a list")
        .iter()
        .map(|p| s(p, "sku"))
        .collect();
    assert_eq!(skus, ["MOUSE", "KEYB"], "listed by id");
}

#[test]
fn show_unknown_product_is_not_found() {
    let db = Db::new();
    let err = db.fails(&["product", "show", "NOPE"], NOT_FOUND);
    assert!(err.contains("NOPE"), "{err}");
    db.fails(&["product", "show", "42"], NOT_FOUND);
}

#[test]
fn duplicate_sku_is_a_conflict_and_writes_nothing() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    let before = db.change_count();
    let err = db.fails(
        &[
            "product", "add", "--sku", "A", "--name", "Other", "--price", "2.00",
        ],
        CONFLICT,
    );
    assert!(err.contains("\"A\"") || err.contains(" A "), "{err}");
    assert_eq!(db.ids(&["product", "list"]).len(), 1);
    assert_eq!(s(&db.product("A"), "name"), "A");
    assert_eq!(db.change_count(), before);
}

#[test]
fn bad_prices_are_invalid_input() {
    let db = Db::new();
    for price in ["1.999", "abc", "-1.00", ""] {
        let price = format!("--price={price}");
        let err = db.fails(
            &["product", "add", "--sku", "X", "--name", "X", &price],
            INVALID,
        );
        assert!(err.contains("amount") || err.contains("price"), "{err}");
    }
    assert!(db.ids(&["product", "list"]).is_empty(), "nothing written");
}

#[test]
fn update_changes_name_price_and_active() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    let p = db.json(&[
        "product", "update", "A", "--name", "Apple", "--price", "2.50", "--active", "false",
    ]);
    assert_eq!(s(&p, "name"), "Apple");
    assert_eq!(s(&p, "price"), "2.50");
    assert_eq!(p["active"], false);
    assert_eq!(db.product("A"), p, "the change is stored");

    let renamed = db.json(&["product", "update", "A", "--sku", "APPLE"]);
    assert_eq!(s(&renamed, "sku"), "APPLE");
    db.fails(&["product", "show", "A"], NOT_FOUND);
}

#[test]
fn update_errors() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    db.add_product("B", "1.00", 1);
    db.fails(&["product", "update", "NOPE", "--name", "x"], NOT_FOUND);
    db.fails(&["product", "update", "A", "--sku", "B"], CONFLICT);
    db.fails(&["product", "update", "A", "--price", "1.234"], INVALID);
    let a = db.product("A");
    assert_eq!(s(&a, "price"), "1.00");
    assert_eq!(s(&a, "sku"), "A");
}

#[test]
fn remove_unordered_product() {
    let db = Db::new();
    let id = db.add_product("A", "1.00", 1);
    db.add_product("B", "1.00", 1);
    assert_eq!(
        db.ok(&["product", "remove", "A", "-q"]).trim(),
        id.to_string()
    );
    db.fails(&["product", "show", "A"], NOT_FOUND);
    db.fails(&["product", "remove", "A"], NOT_FOUND);
    assert_eq!(db.ids(&["product", "list"]).len(), 1);
}

#[test]
fn remove_of_an_ordered_product_is_a_conflict() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    db.place("c@example.com", &["A:1"]);
    let err = db.fails(&["product", "remove", "A"], CONFLICT);
    assert!(err.contains('A'), "{err}");
    assert_eq!(db.stock("A"), (5, 1, 4), "still there, untouched");
}

#[test]
fn restock_add_and_set() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    let p = db.json(&["product", "restock", "A", "--add", "3"]);
    assert_eq!(n(&p, "stock_on_hand"), 8);
    let p = db.json(&["product", "restock", "A", "--add", "-2"]);
    assert_eq!(n(&p, "stock_on_hand"), 6);
    let p = db.json(&["product", "restock", "A", "--set", "20"]);
    assert_eq!(n(&p, "stock_on_hand"), 20);
    assert_eq!(n(&p, "stock_available"), 20);
    assert_eq!(db.stock("A"), (20, 0, 20));
    db.assert_verifies();
}

#[test]
fn restock_set_below_reserved_is_a_conflict() {
    let db = Db::new();
    db.add_product("A", "1.00", 10);
    db.add_customer("C", "c@example.com");
    db.place("c@example.com", &["A:4"]);
    let err = db.fails(&["product", "restock", "A", "--set", "3"], CONFLICT);
    assert!(err.contains("reserved"), "{err}");
    assert_eq!(db.stock("A"), (10, 4, 6), "unchanged");
    // Removing more than is free is refused too.
    db.fails(&["product", "restock", "A", "--add", "-7"], CONFLICT);
    assert_eq!(db.stock("A"), (10, 4, 6), "unchanged");
    // Setting exactly the reserved count is fine.
    db.ok(&["product", "restock", "A", "--set", "4"]);
    assert_eq!(db.stock("A"), (4, 4, 0));
    db.assert_verifies();
}

#[test]
fn restock_needs_exactly_one_of_add_or_set() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    db.usage_error(&["product", "restock", "A"]);
    db.usage_error(&["product", "restock", "A", "--add", "1", "--set", "2"]);
    db.fails(&["product", "restock", "NOPE", "--add", "1"], NOT_FOUND);
    assert_eq!(db.stock("A"), (1, 0, 1));
}

#[test]
fn list_search_limit_and_after() {
    let db = Db::new();
    let a = db.add_product("LAPTOP-13", "1.00", 1);
    let b = db.add_product("MOUSE", "1.00", 1);
    let c = db.add_product("LAPTOP-15", "1.00", 1);
    assert_eq!(db.ids(&["product", "list", "--search", "laptop"]), [a, c]);
    assert_eq!(db.ids(&["product", "list", "--limit", "2"]), [a, b]);
    assert_eq!(
        db.ids(&["product", "list", "--after", &a.to_string()]),
        [b, c]
    );
    assert_eq!(
        db.ids(&["product", "list", "--after", &a.to_string(), "--limit", "1"]),
        [b]
    );
}

#[test]
fn export_has_the_documented_columns() {
    let db = Db::new();
    db.add_product("A", "1.50", 4);
    db.add_customer("C", "c@example.com");
    db.place("c@example.com", &["A:1"]);
    let out = db.ok(&["product", "export"]);
    assert_eq!(first_line(&out), PRODUCT_HEADER);
    let rows = csv_records(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["sku"], "A");
    assert_eq!(rows[0]["price"], "1.50");
    assert_eq!(rows[0]["stock_on_hand"], "4");
    assert_eq!(rows[0]["stock_reserved"], "1");
    assert_eq!(rows[0]["stock_available"], "3");
    assert_eq!(rows[0]["active"], "true");
}

#[test]
fn import_upserts_by_sku() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    let file = db.file(
        "products.csv",
        "sku,name,price,stock_on_hand,active,extra\nA,Apple,2.00,9,true,ignored\nB,Banana,0.50,3,false,x\n",
    );
    let summary = db.json(&["product", "import", &file]);
    assert_eq!(n(&summary, "rows"), 2);
    assert_eq!(n(&summary, "created"), 1);
    assert_eq!(n(&summary, "updated"), 1);
    assert_eq!(summary["dry_run"], false);

    let a = db.product("A");
    assert_eq!(s(&a, "name"), "Apple");
    assert_eq!(s(&a, "price"), "2.00");
    assert_eq!(n(&a, "stock_on_hand"), 9);
    let b = db.product("B");
    assert_eq!(b["active"], false);
    assert_eq!(n(&b, "stock_on_hand"), 3);

    // The same file again changes nothing.
    let again = db.json(&["product", "import", &file]);
    assert_eq!(n(&again, "created"), 0);
    assert_eq!(n(&again, "updated"), 0);
    assert_eq!(n(&again, "unchanged"), 2);
    db.assert_verifies();
}

#[test]
fn import_from_stdin() {
    let db = Db::new();
    let run = db.run_stdin(
        &["product", "import", "-"],
        "sku,name,price\nA,Apple,1.25\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("1 created"), "{}", run.stderr);
    assert_eq!(s(&db.product("A"), "price"), "1.25");
}

#[test]
fn import_bad_row_fails_the_whole_file() {
    let db = Db::new();
    let file = db.file(
        "bad.csv",
        "sku,name,price,stock_on_hand\nP1,One,1.00,5\nP2,Two,2.00,6\nP3,Three,1.999,1\n",
    );
    let err = db.fails(&["product", "import", &file], INVALID);
    assert!(err.contains("line 4"), "names the CSV line: {err}");
    assert!(db.ids(&["product", "list"]).is_empty(), "nothing written");
    assert_eq!(db.change_count(), 0);
}

#[test]
fn import_missing_required_column_is_invalid() {
    let db = Db::new();
    let file = db.file("bad.csv", "sku,name\nP1,One\n");
    let err = db.fails(&["product", "import", &file], INVALID);
    assert!(err.contains("price"), "{err}");
    assert!(db.ids(&["product", "list"]).is_empty());
}

#[test]
fn import_dry_run_writes_nothing() {
    let db = Db::new();
    let file = db.file("p.csv", "sku,name,price,stock_on_hand\nP1,One,1.00,5\n");
    let summary = db.json(&["product", "import", &file, "--dry-run"]);
    assert_eq!(n(&summary, "created"), 1);
    assert_eq!(summary["dry_run"], true);
    assert!(db.ids(&["product", "list"]).is_empty());
    assert_eq!(db.change_count(), 0);
}

#[test]
fn import_cannot_set_stock_below_reserved() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    db.place("c@example.com", &["A:3"]);
    let file = db.file("p.csv", "sku,name,price,stock_on_hand\nA,A,9.00,1\n");
    let err = db.fails(&["product", "import", &file], CONFLICT);
    assert!(err.contains("line 2"), "{err}");
    let a = db.product("A");
    assert_eq!(s(&a, "price"), "1.00", "nothing written");
    assert_eq!(db.stock("A"), (5, 3, 2));
}

#[test]
fn export_reimports_into_a_fresh_database() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.ok(&[
        "product",
        "add",
        "--sku",
        "B",
        "--name",
        "Cable, 2m \"long\"",
        "--price",
        "9.99",
        "--stock",
        "3",
        "--inactive",
    ]);
    let export = db.ok(&["product", "export"]);

    let fresh = Db::new();
    let file = fresh.file("export.csv", &export);
    fresh.ok(&["product", "import", &file]);
    for sku in ["A", "B"] {
        let (old, new) = (db.product(sku), fresh.product(sku));
        for field in ["sku", "name", "price", "stock_on_hand", "active"] {
            assert_eq!(old[field], new[field], "{sku}.{field}");
        }
    }
    fresh.assert_verifies();
}

/// `--search` folds case beyond ASCII, for products, customers and orders.
#[test]
fn search_finds_non_ascii_text_in_any_case() {
    let db = Db::new();
    db.ok(&[
        "product",
        "add",
        "--sku",
        "ZOE-1",
        "--name",
        "Zoë gadget",
        "--price",
        "5.00",
        "--stock",
        "3",
    ]);
    db.ok(&[
        "product", "add", "--sku", "OTHER", "--name", "Other", "--price", "1.00", "--stock", "3",
    ]);
    db.ok(&[
        "customer",
        "add",
        "--name",
        "Зоя Петрова",
        "--email",
        "zoya@example.com",
    ]);
    db.ok(&[
        "order",
        "place",
        "--customer",
        "zoya@example.com",
        "--item",
        "ZOE-1:1",
    ]);
    assert_eq!(
        db.ok(&["product", "list", "-q", "--search", "ZOË"]).trim(),
        "1"
    );
    assert_eq!(
        db.ok(&["customer", "list", "-q", "--search", "ПЕТРОВА"])
            .trim(),
        "1"
    );
    assert_eq!(
        db.ok(&["order", "list", "-q", "--search", "zoë"]).trim(),
        "1"
    );
    assert_eq!(
        db.ok(&["order", "list", "-q", "--search", "ЗОЯ"]).trim(),
        "1"
    );
}
