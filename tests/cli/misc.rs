//! Everything that is not one entity: init, changes, verify, backup,
//! completions, output formats, usage errors, broken pipes, schema checks.

use std::process::Command;

use crate::support::{
    CONFLICT, Db, INTERNAL, INVALID, OK, csv_records, first_line, json_lines, n, oms_bin, s,
};

// ---- help and usage ----------------------------------------------------------

#[test]
fn help_lists_commands_and_exit_codes() {
    let db = Db::empty();
    let out = db.ok(&["--help"]);
    for command in [
        "init",
        "user",
        "customer",
        "product",
        "order",
        "changes",
        "verify",
        "backup",
        "completions",
    ] {
        assert!(out.contains(command), "{command} missing from --help");
    }
    assert!(out.contains("Exit codes"), "{out}");
    for code in [
        "0  ok",
        "2  usage",
        "3  not found",
        "4  conflict",
        "5  invalid",
    ] {
        assert!(out.contains(code), "{code:?} missing from --help");
    }
    assert!(!db.is_created(), "--help touches no database");
}

#[test]
fn usage_errors_exit_2() {
    let db = Db::new();
    db.usage_error(&["frobnicate"]);
    db.usage_error(&[]);
    db.usage_error(&["order", "place", "--customer", "1"]);
    db.usage_error(&["product", "add", "--sku", "A", "--name", "A"]);
    db.usage_error(&["--format", "xml", "product", "list"]);
    db.usage_error(&["product", "list", "--limit", "many"]);
}

#[test]
fn oms_db_environment_variable_selects_the_database() {
    let db = Db::new();
    db.add_product("ENV", "1.00", 1);
    let out = assert_cmd::Command::new(oms_bin())
        .current_dir(db.dir())
        .env("OMS_DB", db.location())
        .args(["product", "list", "-q"])
        .output()
        .expect("run oms");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
}

#[test]
fn unopenable_database_is_an_io_error() {
    let db = Db::empty();
    // A file in a directory that does not exist; a server nobody runs.
    let unopenable = if db.is_postgres() {
        "postgres://postgres@127.0.0.1:1/oms".to_string()
    } else {
        let missing_dir = db.dir().join("no/such/dir/oms.db");
        missing_dir.to_str().expect("UTF-8 temp path").to_string()
    };
    let run = assert_cmd::Command::new(oms_bin())
        .env_remove("OMS_DB")
        .arg("--db")
        .arg(&unopenable)
        .arg("verify")
        .output()
        .expect("run oms");
    assert_eq!(run.status.code(), Some(INTERNAL));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

// ---- init --------------------------------------------------------------------------

#[test]
fn database_is_created_on_first_use() {
    let db = Db::empty();
    assert!(!db.is_created());
    assert_eq!(db.ok(&["product", "list", "-q"]), "");
    assert!(db.is_created());
}

#[test]
fn init_sets_the_currency() {
    let db = Db::empty();
    let run = db.run(&["init", "--currency", "EUR"]);
    assert_eq!(run.code, OK, "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "messages go to stderr: {}",
        run.stdout
    );
    db.add_product("A", "2.50", 5);
    db.add_customer("C", "c@example.com");
    let o = db.json(&["order", "place", "--customer", "1", "--item", "A:2"]);
    assert_eq!(s(&o, "currency"), "EUR");
    assert_eq!(s(&o, "total"), "5.00");

    // Re-running with the same currency is fine; switching is refused.
    db.ok(&["init", "--currency", "EUR"]);
    db.fails(&["init", "--currency", "GBP"], CONFLICT);
    assert_eq!(s(&db.order(1), "currency"), "EUR");
}

#[test]
fn currency_exponent_decides_the_decimals() {
    let db = Db::empty();
    db.ok(&["init", "--currency", "JPY"]);
    db.fails(
        &[
            "product", "add", "--sku", "A", "--name", "A", "--price", "1.5",
        ],
        INVALID,
    );
    let p = db.json(&[
        "product", "add", "--sku", "A", "--name", "A", "--price", "150",
    ]);
    assert_eq!(s(&p, "price"), "150");
}

#[test]
fn init_rejects_a_malformed_currency() {
    let db = Db::empty();
    db.fails(&["init", "--currency", "dollars"], INVALID);
}

#[test]
fn init_demo_loads_products_customers_and_orders() {
    let db = Db::demo();
    assert_eq!(db.ids(&["product", "list"]).len(), 12);
    assert_eq!(db.ids(&["customer", "list"]).len(), 8);
    let orders = db.json(&["order", "list"]);
    let orders = orders.as_array().expect("array");
    // Enough orders in every status for the dashboard's demo.
    assert_eq!(orders.len(), 30);
    let statuses: Vec<&str> = orders.iter().take(6).map(|o| s(o, "status")).collect();
    assert_eq!(
        statuses,
        [
            "FULFILLED",
            "PAID",
            "PENDING",
            "PENDING",
            "CANCELLED",
            "PAID"
        ]
    );
    for status in ["PENDING", "PAID", "FULFILLED", "CANCELLED"] {
        let count = orders.iter().filter(|o| s(o, "status") == status).count();
        assert!(count >= 5, "{count} {status} demo orders");
    }
    let keys: Vec<&str> = orders
        .iter()
        .take(6)
        .map(|o| s(o, "idempotency_key"))
        .collect();
    assert_eq!(
        keys,
        [
            "demo-1001",
            "demo-1002",
            "demo-1003",
            "demo-1004",
            "demo-1005",
            "demo-1006"
        ]
    );
    assert_eq!(s(&orders[0], "total"), "1323.99");
    // Open orders hold stock: MON-27 ×2 in the PAID demo-1002.
    assert_eq!(db.stock("MON-27"), (20, 2, 18));
    // The FULFILLED order shipped its laptop.
    assert_eq!(db.stock("LAPTOP-13"), (11, 0, 11));
    let users = db.json(&["user", "list"]);
    assert_eq!(s(&users[0], "email"), "admin@example.com");
    assert_eq!(s(&users[0], "role"), "admin");
    db.assert_verifies();
}

#[test]
fn init_demo_twice_creates_no_duplicates() {
    let db = Db::demo();
    let orders = db.ids(&["order", "list"]);
    let run = db.run(&["init", "--demo"]);
    assert_eq!(run.code, OK, "{}", run.stderr);
    assert!(run.stderr.contains("0 new"), "{}", run.stderr);
    assert_eq!(db.ids(&["order", "list"]), orders, "no duplicate orders");
    assert_eq!(db.ids(&["product", "list"]).len(), 12);
    assert_eq!(db.ids(&["customer", "list"]).len(), 8);
    assert_eq!(
        db.json(&["user", "list"]).as_array().expect("array").len(),
        1
    );
    assert_eq!(db.stock("MON-27"), (20, 2, 18), "reserved once");
    db.assert_verifies();
}

#[test]
fn init_demo_twice_keeps_stock_shipped_by_demo_orders() {
    // Regression: the second run re-imported the catalogue and reset
    // LAPTOP-13 from 11 (one shipped by a FULFILLED demo order) to 12.
    let db = Db::demo();
    assert_eq!(db.stock("LAPTOP-13"), (11, 0, 11));
    db.ok(&["init", "--demo"]);
    assert_eq!(db.stock("LAPTOP-13"), (11, 0, 11));
    db.assert_verifies();
}

#[test]
fn init_without_currency_keeps_the_existing_one() {
    // Regression: `oms init` on a EUR database with products asked to switch
    // to the USD default and failed with exit 4.
    let db = Db::empty();
    db.ok(&["init", "--currency", "EUR"]);
    db.add_product("A", "1.00", 3);
    let run = db.run(&["init"]);
    assert_eq!(run.code, OK, "{}", run.stderr);
    assert!(run.stderr.contains("EUR"), "{}", run.stderr);
    db.fails(&["init", "--currency", "USD"], CONFLICT);
}

// ---- output formats and -q --------------------------------------------------------------

fn two_products() -> Db {
    let db = Db::new();
    db.add_product("A", "1.00", 3);
    db.add_product("B", "2.00", 4);
    db
}

#[test]
fn quiet_prints_only_ids() {
    let db = two_products();
    assert_eq!(db.ok(&["product", "list", "-q"]), "1\n2\n");
    assert_eq!(db.ok(&["--quiet", "product", "show", "B"]), "2\n");
    assert_eq!(
        db.ok(&[
            "product", "add", "--sku", "C", "--name", "C", "--price", "1", "-q"
        ]),
        "3\n"
    );
    // -q wins over --format.
    assert_eq!(
        db.ok(&["product", "list", "-q", "--format", "json"]),
        "1\n2\n3\n"
    );
}

#[test]
fn json_is_an_object_for_one_and_an_array_for_a_list() {
    let db = two_products();
    let one = db.json(&["product", "show", "A"]);
    assert!(one.is_object(), "{one}");
    let list = db.json(&["product", "list"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0], one);
    let empty = db.json(&["customer", "list"]);
    assert_eq!(empty, serde_json::json!([]));
}

#[test]
fn jsonl_is_one_object_per_line() {
    let db = two_products();
    let out = db.ok(&["product", "list", "--format", "jsonl"]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(s(&lines[1], "sku"), "B");
    assert_eq!(lines[1], db.product("B"));
}

#[test]
fn csv_format_has_a_header_and_one_row_per_entity() {
    let db = two_products();
    let out = db.ok(&["product", "list", "--format", "csv"]);
    assert_eq!(
        first_line(&out),
        "id,sku,name,price,stock_on_hand,stock_reserved,stock_available,active,created_at,updated_at"
    );
    let rows = csv_records(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["sku"], "B");
    assert_eq!(rows[1]["price"], "2.00");
    let one = csv_records(&db.ok(&["product", "show", "A", "--format", "csv"]));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["stock_on_hand"], "3");
}

#[test]
fn table_format_is_the_default() {
    let db = two_products();
    let out = db.ok(&["product", "list"]);
    assert_eq!(out, db.ok(&["product", "list", "--format", "table"]));
    let header = out.lines().nth(1).expect("header row");
    for column in ["id", "sku", "name", "price", "stock_available", "active"] {
        assert!(header.contains(column), "{column} missing: {out}");
    }
    assert!(
        out.lines().any(|l| l.contains(" B ") && l.contains("2.00")),
        "{out}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_err());
}

// ---- changes -----------------------------------------------------------------------------

#[test]
fn changes_are_json_lines_with_increasing_seq() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    let order = db.place("1", &["A:2"]);
    db.ok(&["order", "pay", &order.to_string()]);

    let out = db.ok(&["changes"]);
    let changes = json_lines(&out);
    assert!(changes.len() >= 4, "{out}");
    let seqs: Vec<i64> = changes.iter().map(|c| n(c, "seq")).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {seqs:?}"
    );
    for c in &changes {
        for field in ["seq", "at", "type", "entity", "entity_id", "actor", "data"] {
            assert!(c.get(field).is_some(), "{field} missing in {c}");
        }
    }
    let types: Vec<&str> = changes.iter().map(|c| s(c, "type")).collect();
    for expected in [
        "product.created",
        "customer.created",
        "order.placed",
        "order.status_changed",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    let placed = changes
        .iter()
        .find(|c| s(c, "type") == "order.placed")
        .expect("order.placed");
    assert_eq!(s(placed, "entity"), "order");
    assert_eq!(n(placed, "entity_id"), order);
}

#[test]
fn changes_after_and_limit() {
    let db = Db::new();
    for sku in ["A", "B", "C", "D"] {
        db.add_product(sku, "1.00", 1);
    }
    let all: Vec<i64> = db.changes().iter().map(|c| n(c, "seq")).collect();
    assert!(all.len() >= 4);
    let after = all[1].to_string();
    let rest: Vec<i64> = json_lines(&db.ok(&["changes", "--after", &after]))
        .iter()
        .map(|c| n(c, "seq"))
        .collect();
    assert_eq!(rest, all[2..]);
    let limited: Vec<i64> = json_lines(&db.ok(&["changes", "--after", &after, "--limit", "1"]))
        .iter()
        .map(|c| n(c, "seq"))
        .collect();
    assert_eq!(limited, [all[2]]);
    let last = all.last().expect("a change").to_string();
    assert_eq!(db.ok(&["changes", "--after", &last]), "");

    // --format json gives one array.
    let array = db.json(&["changes", "--limit", "2"]);
    assert_eq!(array.as_array().expect("array").len(), 2);
    assert_eq!(
        db.ok(&["changes", "-q"]),
        all.iter().map(|s| format!("{s}\n")).collect::<String>()
    );
}

// ---- verify ----------------------------------------------------------------------------

#[test]
fn verify_passes_on_a_clean_database() {
    let db = Db::demo();
    let out = db.ok(&["verify"]);
    assert!(!out.contains("DRIFT"), "{out}");
    let report = db.json(&["verify"]);
    assert_eq!(s(&report, "integrity"), "ok");
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(n(&report, "products_checked"), 12);
    assert_eq!(n(&report, "orders_checked"), 30);
}

#[test]
fn verify_reports_on_hand_drift() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_product("B", "1.00", 5);
    db.assert_verifies();
    db.sql("UPDATE products SET stock_on_hand = stock_on_hand + 1 WHERE sku = 'A'");
    let run = db.run(&["verify"]);
    assert_eq!(run.code, CONFLICT, "{}\n{}", run.stdout, run.stderr);
    let drift: Vec<&str> = run.stdout.lines().filter(|l| l.contains("DRIFT")).collect();
    assert_eq!(drift.len(), 1, "{}", run.stdout);
    assert!(
        drift[0].contains('A') && drift[0].contains("on hand"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);

    let json = db.run(&["verify", "--format", "json"]);
    assert_eq!(json.code, CONFLICT);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON report");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].as_str().expect("text").contains('A'));
}

#[test]
fn verify_reports_reserved_drift() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    db.place("1", &["A:2"]);
    db.assert_verifies();
    db.sql("UPDATE products SET stock_reserved = 1");
    let run = db.run(&["verify"]);
    assert_eq!(run.code, CONFLICT, "{}", run.stdout);
    assert!(run.stdout.contains("reserved"), "{}", run.stdout);
}

#[test]
fn verify_reports_an_order_changed_behind_its_back() {
    let db = Db::new();
    db.add_product("A", "1.00", 5);
    db.add_customer("C", "c@example.com");
    let id = db.place("1", &["A:2"]);
    db.sql(&format!(
        "UPDATE orders SET status = 'CANCELLED' WHERE id = {id}"
    ));
    let run = db.run(&["verify"]);
    assert_eq!(run.code, CONFLICT, "{}", run.stdout);
    assert!(run.stdout.contains("DRIFT"), "{}", run.stdout);
}

// ---- backup ------------------------------------------------------------------------------

#[test]
fn backup_makes_a_copy_that_verifies() {
    let db = Db::demo();
    let copy = db.dir().join("copy.db");
    let copy_str = copy.to_str().expect("utf-8");
    let run = db.run(&["backup", copy_str]);
    assert_eq!(run.code, OK, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(copy.exists());

    let verify = assert_cmd::Command::new(oms_bin())
        .env_remove("OMS_DB")
        .args(["--db", copy_str, "verify"])
        .output()
        .expect("run oms");
    assert!(verify.status.success(), "{verify:?}");
    let orders = assert_cmd::Command::new(oms_bin())
        .env_remove("OMS_DB")
        .args(["--db", copy_str, "order", "list", "-q"])
        .output()
        .expect("run oms");
    assert_eq!(
        String::from_utf8_lossy(&orders.stdout),
        db.ok(&["order", "list", "-q"]),
        "the copy holds the same orders"
    );

    // An existing target is refused and left alone.
    let before = std::fs::read(&copy).expect("read copy");
    let run = db.run(&["backup", copy_str]);
    assert!(
        run.code == CONFLICT || run.code == INVALID || run.code == INTERNAL,
        "an existing target is an error, got {run:?}"
    );
    assert!(
        run.stderr.starts_with("error: ") && run.stderr.contains("exists"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&copy).expect("read copy"), before);
}

// ---- completions -----------------------------------------------------------------------------

#[test]
fn completions_for_bash_zsh_and_fish() {
    let db = Db::empty();
    let bash = db.ok(&["completions", "bash"]);
    assert!(
        bash.contains("_oms()") && bash.contains("complete "),
        "bash script"
    );
    assert!(bash.contains("order") && bash.contains("--idempotency-key"));
    assert!(db.ok(&["completions", "zsh"]).starts_with("#compdef oms"));
    assert!(db.ok(&["completions", "fish"]).contains("complete -c oms"));
    db.usage_error(&["completions", "tcsh"]);
}

// ---- broken pipes ---------------------------------------------------------------------------

/// Runs `oms --db DB ARGS | head -1` in bash and returns oms's exit code
/// (PIPESTATUS[0]), so a panic or error on EPIPE cannot hide behind head's
/// success.
fn exit_code_into_head(db: &Db, args: &str) -> i32 {
    let script = format!(
        "'{}' --db '{}' {args} 2>/dev/null | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        oms_bin().display(),
        db.location()
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_remove("OMS_DB")
        .status()
        .expect("run bash");
    status.code().unwrap_or(-1)
}

/// A database whose order export is far larger than a pipe buffer (64 KiB),
/// so `head` really closes the pipe while oms is still writing.
fn big_db() -> Db {
    let db = Db::new();
    db.add_product("WIDGET-WITH-A-LONG-SKU", "1.00", 1_000_000);
    db.add_customer("A customer with a long name", "customer@example.com");
    let mut csv = String::from("order_ref,customer_email,sku,quantity\n");
    for i in 0..2000 {
        csv.push_str(&format!(
            "ref-{i},customer@example.com,WIDGET-WITH-A-LONG-SKU,1\n"
        ));
    }
    let file = db.file("big.csv", &csv);
    db.ok(&["order", "import", &file]);
    db
}

#[test]
fn broken_pipe_is_success() {
    let db = big_db();
    for args in [
        "order export",
        "order export --by-order",
        "order list --limit 0 --format jsonl",
        "order list --limit 0",
        "changes",
    ] {
        let full = db.ok(&args.split(' ').collect::<Vec<_>>());
        assert!(
            full.len() > 128 * 1024,
            "{args}: output must outgrow a pipe"
        );
        assert_eq!(exit_code_into_head(&db, args), OK, "oms {args} | head -1");
    }
}

#[test]
fn export_through_head_prints_the_header() {
    let db = Db::demo();
    let script = format!(
        "set -o pipefail; '{}' --db '{}' order export | head -1",
        oms_bin().display(),
        db.location()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_remove("OMS_DB")
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert_eq!(
        first_line(&stdout),
        "order_id,order_ref,created_at,status,customer_id,customer_email,customer_name,sku,product_name,quantity,unit_price,line_total,order_total,currency"
    );
}

#[test]
fn completions_into_a_closed_pipe_is_success() {
    let db = Db::empty();
    assert!(db.ok(&["completions", "bash"]).len() > 64 * 1024);
    assert_eq!(exit_code_into_head(&db, "completions bash"), OK);
}

// ---- schema version ---------------------------------------------------------------------------

#[test]
fn newer_schema_is_refused_with_upgrade_hint() {
    let db = Db::new();
    db.add_product("A", "1.00", 1);
    // Where each engine keeps the version (as a newer oms would leave it).
    let (forge, read) = if db.is_postgres() {
        (
            "UPDATE oms_schema SET version = 99",
            "SELECT max(version) FROM oms_schema",
        )
    } else {
        ("PRAGMA user_version = 99", "PRAGMA user_version")
    };
    db.sql(forge);
    for args in [&["product", "list"][..], &["verify"], &["init"]] {
        let err = db.fails(args, INTERNAL);
        assert!(err.contains("upgrade oms"), "{args:?}: {err}");
        assert!(err.contains("99"), "{args:?}: {err}");
    }
    assert_eq!(db.sql(read).trim(), "99", "left untouched");
}

/// ARCHITECTURE.md's invariant, checked: the CLI prints through
/// `oms-cli/src/output.rs` only (data to stdout, messages to stderr), so a
/// closed pipe or a format choice is handled in one place.
#[test]
fn only_output_rs_prints() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read the sources") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("output.rs") {
                let text = std::fs::read_to_string(&path).expect("read a source");
                for (n, line) in text.lines().enumerate() {
                    if ["println!", "eprintln!", "print!(", "eprint!("]
                        .iter()
                        .any(|m| line.contains(m))
                    {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    walk(&root.join("oms-cli").join("src"), &mut found);
    walk(&root.join("src"), &mut found);
    assert!(
        found.is_empty(),
        "printing outside output.rs:\n{}",
        found.join("\n")
    );
}
