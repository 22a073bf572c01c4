//! The schema version contract (STYLE: "data that outlives a release"):
//! opening twice is a no-op that keeps the data, and a database from a newer
//! oms is refused with a message that names the fix. Reading and forging
//! the version (`PRAGMA user_version`) is SQLite's: those checks run on
//! SQLite only.

use oms_core::{Actor, Error, ErrorKind, SCHEMA_VERSION};

use crate::{
    TestDb, add_customer, add_product, all_products, assert_invariants, last_seq, order_for,
    snapshot,
};

fn user_version(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_fresh_database_gets_the_current_schema_and_reopens_unchanged() {
    let db = TestDb::from_env();
    let schema_version = || db.sqlite_path().map(user_version);
    let before = {
        let mut store = db.open().unwrap();
        add_product(&mut store, "A", "1.00", 3);
        add_customer(&mut store, "Ada", "ada@example.com");
        store
            .write(&Actor::cli(), |tx| {
                tx.place_order(&order_for("ada@example.com", &[("A", 2)]))
            })
            .unwrap();
        snapshot(&store)
    };
    let current = db.sqlite_path().map(|_| SCHEMA_VERSION);
    assert_eq!(schema_version(), current);
    for _ in 0..2 {
        let store = db.open().unwrap();
        assert_eq!(snapshot(&store), before);
        assert_invariants(&store);
    }
    assert_eq!(schema_version(), current);
    // Two connections open at once are fine too.
    let a = db.open().unwrap();
    let b = db.open().unwrap();
    assert_eq!(last_seq(&a), last_seq(&b));
    assert_eq!(all_products(&a).len(), 1);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    if !oms_testdb::sqlite_only("forges the schema version with PRAGMA user_version") {
        return;
    }
    let db = TestDb::sqlite();
    let path = db.sqlite_path().unwrap();
    {
        let mut store = db.open().unwrap();
        add_product(&mut store, "A", "1.00", 3);
    }
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();

    let err = match db.open() {
        Ok(_) => panic!("a schema {newer} database was opened"),
        Err(err) => err,
    };
    match &err {
        Error::SchemaTooNew { found, supported } => {
            assert_eq!((*found, *supported), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Internal);
    let text = err.to_string();
    assert!(text.contains("upgrade oms"), "{text}");
    assert!(
        text.contains(&format!("schema {newer}")) && text.contains(&SCHEMA_VERSION.to_string()),
        "{text}"
    );
    // Refusing did not touch the file.
    assert_eq!(user_version(path), newer);
    let conn = rusqlite::Connection::open(path).unwrap();
    let skus: i64 = conn
        .query_row("SELECT count(*) FROM products", [], |r| r.get(0))
        .unwrap();
    assert_eq!(skus, 1);
}

#[test]
fn an_empty_file_from_elsewhere_is_migrated() {
    // A zero-length file (e.g. `touch oms.db`) is an empty SQLite database.
    if !oms_testdb::sqlite_only("a zero-length file is a SQLite notion") {
        return;
    }
    let db = TestDb::sqlite();
    let path = db.sqlite_path().unwrap();
    std::fs::write(path, b"").unwrap();
    let store = db.open().unwrap();
    assert_eq!(user_version(path), SCHEMA_VERSION);
    assert!(store.verify().unwrap().is_clean());
}
