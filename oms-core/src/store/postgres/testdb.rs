//! Test support: a fresh database per test on the server `OMS_TEST_PG`
//! names (`postgres://.../postgres`, see scripts/pg), dropped
//! at the end. Tests return early, saying why, when it is unset.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use super::session::Target;
use super::{Conn, Turn, Tx};
use crate::{Actor, Db, Location, Result, Timestamp};

/// Two customers (1 "C", 2 "D"), product A (12.50, 10 on hand, 2
/// reserved), orders 1 PENDING and 2 PAID (one A each, customer 1) and 3
/// CANCELLED (two A, customer 2), with the stock ledger that explains them
/// (so `verify` is clean), all created at time 0.
pub(super) const SHOP: &str = "
INSERT INTO customers (id, name, email, created_at, updated_at) VALUES
    (1, 'C', 'c@example.com', 0, 0), (2, 'D', 'd@example.com', 0, 0);
INSERT INTO products (id, sku, name, price, stock_on_hand, stock_reserved, created_at, updated_at)
    VALUES (1, 'A', 'Product A', 1250, 10, 2, 0, 0);
INSERT INTO orders (id, customer_id, status, total, currency, tracking_code, created_at, updated_at)
    VALUES (1, 1, 'PENDING', 1250, 'USD', 'T-1', 0, 0), (2, 1, 'PAID', 1250, 'USD', 'T-2', 0, 0),
           (3, 2, 'CANCELLED', 2500, 'USD', 'T-3', 0, 0);
INSERT INTO order_items (order_id, line, product_id, sku, name, unit_price, quantity) VALUES
    (1, 1, 1, 'A', 'Product A', 1250, 1), (2, 1, 1, 'A', 'Product A', 1250, 1),
    (3, 1, 1, 'A', 'Product A', 1250, 2);
INSERT INTO stock_movements (product_id, delta_on_hand, delta_reserved, reason, order_id, at)
    VALUES (1, 10, 0, 'create', NULL, 0), (1, 0, 1, 'reserve', 1, 0), (1, 0, 1, 'reserve', 2, 0),
           (1, 0, 2, 'reserve', 3, 0), (1, 0, -2, 'release', 3, 0);
";

pub(super) struct TestDb {
    admin: String,
    name: String,
    pub(super) url: String,
}

impl TestDb {
    /// A new empty database, or `None` (with a note on stderr) when
    /// `OMS_TEST_PG` is unset.
    pub(super) fn create(test: &str) -> Option<TestDb> {
        let Ok(admin) = std::env::var("OMS_TEST_PG") else {
            eprintln!("{test}: skipped, OMS_TEST_PG is not set (no PostgreSQL server to test on)");
            return None;
        };
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let name = format!("oms_unit_{:016x}", h.finish());
        let (base, query) = match admin.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin.as_str(), String::new()),
        };
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = format!("{server}/{name}{query}");
        let db = TestDb {
            admin: admin.clone(),
            name,
            url,
        };
        let create = format!("CREATE DATABASE {}", db.name);
        if let Err(e) = db.admin_sql(&create) {
            panic!("{create} on OMS_TEST_PG: {}", shown(&e));
        }
        Some(db)
    }

    fn admin_sql(&self, sql: &str) -> std::result::Result<(), postgres::Error> {
        postgres::Client::connect(&self.admin, postgres::NoTls)?.batch_execute(sql)
    }

    /// The shop, migrated.
    pub(super) fn open(&self) -> Db {
        Db::open(&Location::Postgres(self.url.clone())).expect("open the test database")
    }

    /// Runs plain SQL on the test database (fixtures, inspection).
    pub(super) fn sql(&self, sql: &str) {
        let mut client =
            postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test db");
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", shown(&e)));
    }

    /// The first column of the first row of `sql`, as `i64`.
    pub(super) fn number(&self, sql: &str) -> i64 {
        let mut client =
            postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to test db");
        client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {}", shown(&e)))
            .get(0)
    }

    /// Runs `f` in one turn on this backend's own [`Tx`] (for its
    /// crate-internal methods, which `Db::write` does not expose) and
    /// commits when it succeeded.
    pub(super) fn with_tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let target = Arc::new(Target::parse(&self.url, self.name.clone())?);
        let conn = Conn::new(target.connect()?, true)?;
        let turn = Turn::begin(&conn.session)?;
        let actor = Actor::cli();
        let result = {
            let tx = Tx {
                turn: &turn,
                actor: &actor,
                now: Timestamp::now(),
                currency: conn.currency.get(),
                new_currency: Cell::new(None),
                in_job: false,
                failed: Cell::new(false),
            };
            f(&tx)
        };
        match result {
            Ok(value) => turn.commit().map(|()| value),
            Err(e) => {
                let _ = turn.rollback();
                Err(e)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds.
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self.admin_sql(&drop) {
            eprintln!("{drop}: {}", shown(&e));
        }
    }
}

/// A client error with the server's message (its `Display` says only
/// "db error").
fn shown(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string())
}
