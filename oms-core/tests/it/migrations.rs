//! The schema version contract (STYLE: "data that outlives a release"):
//! opening twice is a no-op that keeps the data, and a database from a newer
//! oms is refused with a message that names the fix, on either backend.
//! Each engine keeps the version its own way (SQLite's `PRAGMA
//! user_version`, PostgreSQL's `oms_schema` table): the tests read and
//! forge it there, behind oms's back.

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

/// The schema version stored in the database.
fn stored_version(db: &TestDb) -> i64 {
    match db.sqlite_path() {
        Some(path) => user_version(path),
        None => db.pg_number("SELECT max(version) FROM oms_schema").unwrap(),
    }
}

/// Stores `version` as the schema version, as a newer oms would have.
fn forge_version(db: &TestDb, version: i64) {
    match db.sqlite_path() {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .pragma_update(None, "user_version", version)
            .unwrap(),
        None => db
            .pg_execute(&format!("UPDATE oms_schema SET version = {version}"))
            .unwrap(),
    }
}

/// The schema version this build writes on `db`'s backend: on SQLite
/// [`SCHEMA_VERSION`] (documented as the embedded engine's); PostgreSQL's
/// migrations are numbered on their own and oms-core does not export that
/// number, so it is what a fresh database of the run's backend gets.
fn current_version(db: &TestDb) -> i64 {
    if !db.is_postgres() {
        return SCHEMA_VERSION;
    }
    let fresh = TestDb::from_env();
    drop(fresh.open().unwrap());
    let version = stored_version(&fresh);
    assert!(version >= 1, "a migrated database has version {version}");
    version
}

/// The number of products, read behind oms's back.
fn stored_products(db: &TestDb) -> i64 {
    let sql = "SELECT count(*) FROM products";
    match db.sqlite_path() {
        Some(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
        None => db.pg_number(sql).unwrap(),
    }
}

#[test]
fn a_fresh_database_gets_the_current_schema_and_reopens_unchanged() {
    let db = TestDb::from_env();
    let before = {
        let mut store = db.open().unwrap();
        add_product(&mut store, "A", "1.00", 3);
        add_customer(&mut store, "Ada", "ada@example.com");
        store
            .write(&Actor::cli(), |tx| {
                tx.place_order(&order_for("ada@example.com", &[("A", 1)]))
            })
            .unwrap();
        snapshot(&store)
    };
    let current = current_version(&db);
    assert_eq!(stored_version(&db), current);
    for _ in 0..2 {
        let store = db.open().unwrap();
        assert_eq!(snapshot(&store), before);
        assert_invariants(&store);
    }
    assert_eq!(stored_version(&db), current);
    // Two connections open at once are fine too.
    let a = db.open().unwrap();
    let b = db.open().unwrap();
    assert_eq!(last_seq(&a), last_seq(&b));
    assert_eq!(all_products(&a).len(), 1);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let db = TestDb::from_env();
    {
        let mut store = db.open().unwrap();
        add_product(&mut store, "A", "1.00", 3);
    }
    let current = current_version(&db);
    assert_eq!(stored_version(&db), current);
    let newer = current + 1;
    forge_version(&db, newer);

    let err = match db.open() {
        Ok(_) => panic!("a schema {newer} database was opened"),
        Err(err) => err,
    };
    match &err {
        Error::SchemaTooNew { found, supported } => {
            assert_eq!((*found, *supported), (newer, current));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Internal);
    let text = err.to_string();
    assert!(text.contains("upgrade oms"), "{text}");
    assert!(
        text.contains(&format!("schema {newer}")) && text.contains(&current.to_string()),
        "{text}"
    );
    // Refusing did not touch the database.
    assert_eq!(stored_version(&db), newer);
    assert_eq!(stored_products(&db), 1);
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
