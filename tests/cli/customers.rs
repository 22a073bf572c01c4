//! `oms customer ...`.

use crate::support::{CONFLICT, Db, INVALID, NOT_FOUND, csv_records, first_line, n, s};

const CUSTOMER_HEADER: &str = "id,name,email,phone,created_at,updated_at";

#[test]
fn add_show_and_list() {
    let db = Db::new();
    let c = db.json(&[
        "customer",
        "add",
        "--name",
        "Ada Lovelace",
        "--email",
        "ada@example.com",
        "--phone",
        "+44 20 7946 0018",
    ]);
    let id = n(&c, "id");
    assert_eq!(s(&c, "name"), "Ada Lovelace");
    assert_eq!(s(&c, "email"), "ada@example.com");
    assert_eq!(s(&c, "phone"), "+44 20 7946 0018");
    assert!(s(&c, "created_at").ends_with('Z'));
    assert!(s(&c, "updated_at").ends_with('Z'));

    let no_phone = db.json(&[
        "customer",
        "add",
        "--name",
        "Alan",
        "--email",
        "alan@example.com",
    ]);
    assert!(no_phone["phone"].is_null(), "{no_phone}");

    assert_eq!(db.json(&["customer", "show", &id.to_string()]), c);
    assert_eq!(db.json(&["customer", "show", "ada@example.com"]), c);
    assert_eq!(
        db.json(&["customer", "show", "ADA@Example.COM"]),
        c,
        "e-mail lookup is case-insensitive"
    );

    let list = db.json(&["customer", "list"]);
    let emails: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|c| s(c, "email"))
        .collect();
    assert_eq!(emails, ["ada@example.com", "alan@example.com"]);
    assert_eq!(
        db.ids(&["customer", "list", "--search", "ALAN"]),
        [n(&no_phone, "id")]
    );
    assert_eq!(db.ids(&["customer", "list", "--limit", "1"]), [id]);
    assert_eq!(
        db.ids(&["customer", "list", "--after", &id.to_string()]),
        [n(&no_phone, "id")]
    );
}

#[test]
fn show_unknown_customer_is_not_found() {
    let db = Db::new();
    let err = db.fails(&["customer", "show", "99"], NOT_FOUND);
    assert!(err.contains("99"), "{err}");
    let err = db.fails(&["customer", "show", "nobody@example.com"], NOT_FOUND);
    assert!(err.contains("nobody@example.com"), "{err}");
}

#[test]
fn invalid_email_is_invalid_input_and_writes_nothing() {
    let db = Db::new();
    let err = db.fails(
        &[
            "customer",
            "add",
            "--name",
            "Bob",
            "--email",
            "bob-at-example",
        ],
        INVALID,
    );
    assert!(err.contains("email"), "{err}");
    assert!(db.ids(&["customer", "list"]).is_empty());
    db.fails(
        &["customer", "add", "--name", "", "--email", "b@x.com"],
        INVALID,
    );
    assert!(db.ids(&["customer", "list"]).is_empty());
}

#[test]
fn duplicate_email_is_a_conflict_case_insensitively() {
    let db = Db::new();
    db.add_customer("Bob", "bob@example.com");
    db.fails(
        &[
            "customer",
            "add",
            "--name",
            "Bobby",
            "--email",
            "BOB@example.com",
        ],
        CONFLICT,
    );
    assert_eq!(db.ids(&["customer", "list"]).len(), 1);
    assert_eq!(
        s(&db.json(&["customer", "show", "bob@example.com"]), "name"),
        "Bob"
    );
}

#[test]
fn update_name_email_and_phone() {
    let db = Db::new();
    let id = db.add_customer("Bob", "bob@example.com");
    let c = db.json(&[
        "customer",
        "update",
        "bob@example.com",
        "--name",
        "Robert",
        "--email",
        "robert@example.com",
        "--phone",
        "555 0100",
    ]);
    assert_eq!(n(&c, "id"), id);
    assert_eq!(s(&c, "name"), "Robert");
    assert_eq!(s(&c, "email"), "robert@example.com");
    assert_eq!(s(&c, "phone"), "555 0100");
    assert_eq!(db.json(&["customer", "show", &id.to_string()]), c);
    db.fails(&["customer", "show", "bob@example.com"], NOT_FOUND);

    // An empty phone clears it.
    let c = db.json(&["customer", "update", &id.to_string(), "--phone", ""]);
    assert!(c["phone"].is_null(), "{c}");
}

#[test]
fn update_errors() {
    let db = Db::new();
    db.add_customer("A", "a@example.com");
    db.add_customer("B", "b@example.com");
    db.fails(
        &["customer", "update", "a@example.com", "--email", "bad"],
        INVALID,
    );
    db.fails(
        &[
            "customer",
            "update",
            "a@example.com",
            "--email",
            "B@EXAMPLE.COM",
        ],
        CONFLICT,
    );
    db.fails(&["customer", "update", "77", "--name", "x"], NOT_FOUND);
    assert_eq!(
        s(&db.json(&["customer", "show", "a@example.com"]), "name"),
        "A"
    );
}

#[test]
fn remove_customer_without_orders() {
    let db = Db::new();
    let id = db.add_customer("A", "a@example.com");
    let out = db.ok(&["customer", "remove", "a@example.com", "-q"]);
    assert_eq!(out.trim(), id.to_string());
    db.fails(&["customer", "show", &id.to_string()], NOT_FOUND);
    db.fails(&["customer", "remove", "a@example.com"], NOT_FOUND);
}

#[test]
fn remove_customer_with_orders_is_a_conflict() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    let id = db.add_customer("A", "a@example.com");
    db.place("a@example.com", &["A:1"]);
    db.fails(&["customer", "remove", &id.to_string()], CONFLICT);
    db.ok(&["customer", "show", &id.to_string()]);
}

#[test]
fn export_has_the_documented_columns() {
    let db = Db::new();
    db.add_customer("Pat, O'Brien", "pat@example.com");
    let out = db.ok(&["customer", "export"]);
    assert_eq!(first_line(&out), CUSTOMER_HEADER);
    let rows = csv_records(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "Pat, O'Brien");
    assert_eq!(rows[0]["email"], "pat@example.com");
    assert_eq!(rows[0]["phone"], "");
}

#[test]
fn import_upserts_by_email() {
    let db = Db::new();
    let ada = db.add_customer("Ada", "ada@example.com");
    // A BOM and CRLF line endings, as spreadsheets write them.
    let file = db.file(
        "c.csv",
        "\u{feff}name,email,phone\r\nAda L,ADA@EXAMPLE.COM,123\r\nNew,new@example.com,\r\n",
    );
    let summary = db.json(&["customer", "import", &file]);
    assert_eq!(n(&summary, "rows"), 2);
    assert_eq!(n(&summary, "created"), 1);
    assert_eq!(n(&summary, "updated"), 1);
    let a = db.json(&["customer", "show", &ada.to_string()]);
    assert_eq!(s(&a, "name"), "Ada L");
    assert_eq!(s(&a, "phone"), "123");
    assert_eq!(db.ids(&["customer", "list"]).len(), 2);

    let again = db.json(&["customer", "import", &file]);
    assert_eq!(n(&again, "unchanged"), 2);
    assert_eq!(db.ids(&["customer", "list"]).len(), 2);
}

#[test]
fn import_bad_row_fails_the_whole_file() {
    let db = Db::new();
    let err = db.fails_stdin(
        &["customer", "import", "-"],
        "name,email\nX,x@example.com\nY,not-an-email\n",
        INVALID,
    );
    assert!(err.contains("line 3"), "{err}");
    assert!(db.ids(&["customer", "list"]).is_empty(), "nothing written");
}

#[test]
fn import_dry_run_writes_nothing() {
    let db = Db::new();
    let file = db.file("c.csv", "name,email\nX,x@example.com\n");
    let summary = db.json(&["customer", "import", "--dry-run", &file]);
    assert_eq!(n(&summary, "created"), 1);
    assert_eq!(summary["dry_run"], true);
    assert!(db.ids(&["customer", "list"]).is_empty());
}

#[test]
fn import_of_a_missing_file_is_an_io_error() {
    let db = Db::new();
    let missing = db.dir().join("missing.csv");
    let err = db.fails(
        &["customer", "import", missing.to_str().expect("utf-8")],
        crate::support::INTERNAL,
    );
    assert!(err.contains("missing.csv"), "{err}");
}
