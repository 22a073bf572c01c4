//! CSV contracts that cut across commands: formula-injection neutralising,
//! the order export columns, and exports that re-import cleanly.

use crate::support::{Db, csv_records, first_line, n, parse_csv, s};

const ORDER_HEADER: &str = "order_id,order_ref,created_at,status,customer_id,customer_email,customer_name,sku,product_name,quantity,unit_price,line_total,order_total,currency";
const ORDER_BY_ORDER_HEADER: &str = "order_id,order_ref,created_at,status,customer_id,customer_email,customer_name,items,order_total,currency";

#[test]
fn formula_customer_name_is_neutralised_and_reimports_unchanged() {
    let db = Db::new();
    let name = "=HYPERLINK(\"x\")";
    db.add_customer(name, "f@example.com");
    let export = db.ok(&["customer", "export"]);
    assert!(
        export.contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "the cell gets a leading apostrophe: {export}"
    );
    let rows = csv_records(&export);
    assert_eq!(rows[0]["name"], format!("'{name}"));

    let fresh = Db::new();
    let file = fresh.file("customers.csv", &export);
    fresh.ok(&["customer", "import", &file]);
    let c = fresh.json(&["customer", "show", "f@example.com"]);
    assert_eq!(s(&c, "name"), name, "re-imports unchanged");
}

#[test]
fn every_dangerous_leading_character_round_trips() {
    let db = Db::new();
    let names = ["+SUM(1)", "-2+3", "@cmd", "'quoted", "Plain name"];
    for (i, name) in names.iter().enumerate() {
        db.add_product(&format!("SKU-{i}"), "1.00", 1);
        // `--name=...` so a leading `-` is not taken for a flag.
        db.ok(&[
            "product",
            "update",
            &format!("SKU-{i}"),
            &format!("--name={name}"),
        ]);
    }
    let export = db.ok(&["product", "export"]);
    let rows = csv_records(&export);
    for (row, name) in rows.iter().zip(names) {
        if name == "Plain name" {
            assert_eq!(row["name"], name, "harmless cells are left alone");
        } else {
            assert_eq!(row["name"], format!("'{name}"), "neutralised");
        }
    }

    let fresh = Db::new();
    let file = fresh.file("products.csv", &export);
    fresh.ok(&["product", "import", &file]);
    for (i, name) in names.iter().enumerate() {
        let p = fresh.product(&format!("SKU-{i}"));
        assert_eq!(s(&p, "name"), *name);
    }
}

#[test]
fn phone_numbers_starting_with_plus_survive_a_round_trip() {
    let db = Db::new();
    db.ok(&[
        "customer",
        "add",
        "--name",
        "Ada",
        "--email",
        "ada@example.com",
        "--phone",
        "+44 20 7946 0018",
    ]);
    let export = db.ok(&["customer", "export"]);
    assert_eq!(csv_records(&export)[0]["phone"], "'+44 20 7946 0018");
    let fresh = Db::new();
    let file = fresh.file("c.csv", &export);
    fresh.ok(&["customer", "import", &file]);
    let c = fresh.json(&["customer", "show", "ada@example.com"]);
    assert_eq!(s(&c, "phone"), "+44 20 7946 0018");
}

/// Two customers, three products, two orders (one with two lines).
fn shop() -> Db {
    let db = Db::new();
    db.add_product("A", "1.50", 10);
    db.add_product("B", "2.00", 10);
    db.add_product("C", "3.00", 10);
    db.add_customer("Ada", "ada@example.com");
    db.add_customer("Grace", "grace@example.com");
    db.ok(&[
        "order",
        "place",
        "--customer",
        "ada@example.com",
        "--item",
        "A:2",
        "--item",
        "B:1",
        "--idempotency-key",
        "ref-1",
    ]);
    db.place("grace@example.com", &["C:3"]);
    db.ok(&["order", "pay", "2"]);
    db
}

#[test]
fn order_export_has_one_row_per_item_with_the_documented_header() {
    let db = shop();
    let out = db.ok(&["order", "export"]);
    assert_eq!(first_line(&out), ORDER_HEADER);
    let rows = csv_records(&out);
    assert_eq!(rows.len(), 3, "one row per order item");

    let first = &rows[0];
    assert_eq!(first["order_id"], "1");
    assert_eq!(first["order_ref"], "ref-1");
    assert_eq!(first["status"], "PENDING");
    assert_eq!(first["customer_email"], "ada@example.com");
    assert_eq!(first["customer_name"], "Ada");
    assert_eq!(first["sku"], "A");
    assert_eq!(first["quantity"], "2");
    assert_eq!(first["unit_price"], "1.50");
    assert_eq!(first["line_total"], "3.00");
    assert_eq!(first["order_total"], "5.00");
    assert_eq!(first["currency"], "USD");
    assert!(first["created_at"].ends_with('Z'));
    assert_eq!(rows[1]["sku"], "B");
    assert_eq!(rows[1]["order_id"], "1");

    assert_eq!(rows[2]["order_id"], "2");
    assert_eq!(rows[2]["order_ref"], "", "empty when placed without a key");
    assert_eq!(rows[2]["status"], "PAID");
    assert_eq!(rows[2]["line_total"], "9.00");
}

#[test]
fn order_export_by_order_has_an_items_column() {
    let db = shop();
    let out = db.ok(&["order", "export", "--by-order"]);
    assert_eq!(first_line(&out), ORDER_BY_ORDER_HEADER);
    let rows = csv_records(&out);
    assert_eq!(rows.len(), 2, "one row per order");
    assert_eq!(rows[0]["items"], "A*2;B*1");
    assert_eq!(rows[0]["order_total"], "5.00");
    assert_eq!(rows[1]["items"], "C*3");
}

#[test]
fn order_export_takes_the_list_filters() {
    let db = shop();
    let paid = csv_records(&db.ok(&["order", "export", "--status", "paid"]));
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["order_id"], "2");
    let ada = csv_records(&db.ok(&["order", "export", "--customer", "ada@example.com"]));
    assert_eq!(ada.len(), 2);
    assert!(ada.iter().all(|r| r["order_id"] == "1"));
    // A filter that matches nothing still prints the header.
    let none = db.ok(&["order", "export", "--status", "cancelled"]);
    assert_eq!(
        parse_csv(&none),
        [ORDER_HEADER.split(',').collect::<Vec<_>>()]
    );
}

#[test]
fn order_export_reimports_into_a_fresh_database_once() {
    let db = shop();
    let export = db.ok(&["order", "export"]);

    let fresh = Db::new();
    let products = fresh.file("p.csv", &db.ok(&["product", "export"]));
    let customers = fresh.file("c.csv", &db.ok(&["customer", "export"]));
    let orders = fresh.file("o.csv", &export);
    fresh.ok(&["product", "import", &products]);
    fresh.ok(&["customer", "import", &customers]);
    let first = fresh.json(&["order", "import", &orders]);
    assert_eq!(n(&first, "created"), 2);
    let second = fresh.json(&["order", "import", &orders]);
    assert_eq!(
        n(&second, "created"),
        0,
        "importing twice places each order once"
    );
    assert_eq!(n(&second, "unchanged"), 2);

    let list = fresh.json(&["order", "list"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(s(&list[0], "status"), "PENDING");
    assert_eq!(s(&list[0], "total"), "5.00");
    assert_eq!(s(&list[1], "status"), "PAID");
    assert_eq!(s(&list[1], "total"), "9.00");
    // Stock reservations came along with the open orders.
    assert_eq!(fresh.stock("A"), (10, 2, 8));
    assert_eq!(fresh.stock("C"), (10, 3, 7));
    fresh.assert_verifies();
}

/// Formula payloads in every free-text customer cell, through the real
/// binary: `customer add` -> `customer export` -> `customer import` into a
/// fresh database -> `customer export` again gives the same name, email and
/// phone cells, and no exported cell starts with a character a spreadsheet
/// evaluates (the CSV safety property of oms-core, end to end).
#[test]
fn customer_csv_round_trip_through_the_binary_is_safe_and_exact() {
    let people: [(&str, &str, &str); 7] = [
        ("=cmd|' /C calc'!A0", "=evil@example.com", "=1+2"),
        ("+SUM(A1:A9)", "+plus@example.com", "+44 20 7946 0018"),
        ("-2+3", "-minus@example.com", "-5"),
        ("@SUM(1)", "at@example.com", "@1"),
        ("'already quoted", "'q@example.com", "'0123"),
        (
            "Comma, \"Quote\" Ünïcødé 🧾",
            "plain@example.com",
            "line1\r\n=line2",
        ),
        (
            "Tab\tinside",
            "tab@example.com",
            "\t=HYPERLINK(\"http://x\")",
        ),
    ];
    let db = Db::new();
    for (name, email, phone) in people {
        db.ok(&[
            "customer",
            "add",
            &format!("--name={name}"),
            &format!("--email={email}"),
            &format!("--phone={phone}"),
        ]);
    }
    let export = db.ok(&["customer", "export"]);
    let rows = parse_csv(&export);
    assert_eq!(rows.len(), people.len() + 1, "{export}");
    for cell in rows.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "unneutralised cell {cell:?} in\n{export}"
        );
    }

    let fresh = Db::new();
    let file = fresh.file("customers.csv", &export);
    fresh.ok(&["customer", "import", &file]);
    let again = fresh.ok(&["customer", "export"]);
    let portable = |text: &str| -> Vec<(String, String, String)> {
        csv_records(text)
            .into_iter()
            .map(|r| (r["name"].clone(), r["email"].clone(), r["phone"].clone()))
            .collect()
    };
    assert_eq!(portable(&again), portable(&export));
    // And the values themselves, as `customer list` prints them.
    let listed = fresh.json(&["customer", "list"]);
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), people.len());
    for ((name, email, phone), c) in people.iter().zip(listed) {
        assert_eq!(s(c, "email"), *email);
        assert_eq!(s(c, "name"), name.trim(), "the CLI trims");
        assert_eq!(s(c, "phone"), phone.trim(), "the CLI trims");
    }
}

/// Regression (found by the CSV safety property): a key given with spaces
/// is trimmed like the HTTP header and CSV cells, so the order export's
/// order_ref re-imports as the same order instead of a second one.
#[test]
fn order_idempotency_key_is_trimmed_so_the_export_re_imports_once() {
    let db = Db::new();
    db.add_product("A", "1.00", 10);
    db.add_customer("Ada", "ada@example.com");
    let placed = db.json(&[
        "order",
        "place",
        "--customer",
        "ada@example.com",
        "--item",
        "A:1",
        "--idempotency-key",
        "  =ref-1 ",
    ]);
    assert_eq!(s(&placed, "idempotency_key"), "=ref-1");
    let export = db.ok(&["order", "export"]);
    assert_eq!(csv_records(&export)[0]["order_ref"], "'=ref-1");
    let file = db.file("orders.csv", &export);
    db.ok(&["order", "import", &file]);
    assert_eq!(db.ids(&["order", "list"]).len(), 1, "imported twice");
}
