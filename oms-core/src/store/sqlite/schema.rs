//! The schema as numbered, append-only migrations tracked in
//! `PRAGMA user_version`. Never edit a migration that has shipped: add one.
//!
//! Migrations run in one `BEGIN EXCLUSIVE` transaction, so two processes
//! opening a fresh file at once cannot both migrate it.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::{Error, Result};

/// One step of the schema's history.
enum Migration {
    /// A batch of SQL statements.
    Sql(&'static str),
    /// A step SQL alone cannot express.
    Code(fn(&Transaction<'_>) -> Result<()>),
}

use Migration::{Code, Sql};

/// Migration `i` (0-based) takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1: the data model of DESIGN §3.
    Sql(r#"
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT INTO settings (key, value) VALUES ('currency', 'USD');

CREATE TABLE customers (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL COLLATE NOCASE,
    phone      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX customers_email ON customers (email COLLATE NOCASE);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL COLLATE NOCASE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'customer')),
    customer_id   INTEGER REFERENCES customers (id),
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE);
CREATE INDEX users_customer ON users (customer_id);

CREATE TABLE products (
    id             INTEGER PRIMARY KEY,
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    price          INTEGER NOT NULL CHECK (price >= 0),
    stock_on_hand  INTEGER NOT NULL CHECK (stock_on_hand >= 0),
    stock_reserved INTEGER NOT NULL DEFAULT 0
                   CHECK (stock_reserved >= 0 AND stock_reserved <= stock_on_hand),
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX products_sku ON products (sku);
CREATE INDEX products_name ON products (name COLLATE NOCASE);

CREATE TABLE orders (
    id                  INTEGER PRIMARY KEY,
    customer_id         INTEGER NOT NULL REFERENCES customers (id),
    status              TEXT NOT NULL
                        CHECK (status IN ('PENDING', 'PAID', 'FULFILLED', 'CANCELLED')),
    total               INTEGER NOT NULL CHECK (total >= 0),
    currency            TEXT NOT NULL,
    payment_collected   INTEGER NOT NULL DEFAULT 0 CHECK (payment_collected IN (0, 1)),
    tracking_code       TEXT NOT NULL,
    idempotency_scope   TEXT NOT NULL DEFAULT '',
    idempotency_key     TEXT,
    request_fingerprint TEXT,
    version             INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX orders_customer ON orders (customer_id);
-- (status) is (status, rowid): serves `status = ? AND id > ? ORDER BY id`.
CREATE INDEX orders_status ON orders (status);
CREATE INDEX orders_status_created ON orders (status, created_at);
CREATE UNIQUE INDEX orders_tracking ON orders (tracking_code);
CREATE UNIQUE INDEX orders_idempotency ON orders (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE order_items (
    order_id   INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line       INTEGER NOT NULL CHECK (line >= 1),
    product_id INTEGER NOT NULL REFERENCES products (id),
    sku        TEXT NOT NULL,
    name       TEXT NOT NULL,
    unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    -- One line per product: placement merges repeated products (verify checks).
    PRIMARY KEY (order_id, line)
) STRICT, WITHOUT ROWID;
-- No index on product_id: only `product remove` and verify look items up by
-- product, and three random index pages per order would double the WAL.

-- Append-only: every change of stock, in the transaction that made it.
CREATE TABLE stock_movements (
    id             INTEGER PRIMARY KEY,
    product_id     INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    delta_on_hand  INTEGER NOT NULL,
    delta_reserved INTEGER NOT NULL,
    reason         TEXT NOT NULL
                   CHECK (reason IN ('create', 'reserve', 'release', 'ship', 'restock', 'import', 'edit')),
    order_id       INTEGER,
    at             INTEGER NOT NULL
) STRICT;
-- No index on product_id: the ledger is only ever aggregated whole (verify),
-- and every index is paid for on each of the hot path's inserts.
CREATE TRIGGER stock_movements_append_only BEFORE UPDATE ON stock_movements
BEGIN SELECT RAISE(ABORT, 'the stock ledger is append-only'); END;

-- Append-only, gap-free: AUTOINCREMENT never reuses a seq, and writers are
-- serialised by the database lock, so seqs commit in order.
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    customer_id INTEGER,
    data        TEXT NOT NULL
) STRICT;
CREATE INDEX changes_customer ON changes (customer_id, seq) WHERE customer_id IS NOT NULL;
CREATE TRIGGER changes_append_only_update BEFORE UPDATE ON changes
BEGIN SELECT RAISE(ABORT, 'the change log is append-only'); END;
CREATE TRIGGER changes_append_only_delete BEFORE DELETE ON changes
BEGIN SELECT RAISE(ABORT, 'the change log is append-only'); END;

CREATE TABLE payments (
    id                  INTEGER PRIMARY KEY,
    order_id            INTEGER NOT NULL REFERENCES orders (id),
    provider            TEXT NOT NULL,
    provider_payment_id TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    status              TEXT NOT NULL,
    created_at          INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX payments_provider_id ON payments (provider_payment_id);
CREATE INDEX payments_order ON payments (order_id);

-- Outbox of e-mail notifications, written with the status change.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    order_id        INTEGER,
    customer_id     INTEGER,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
) STRICT;
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
"#),
    // 2: find the answer an order was placed with (idempotent replays
    // return the first answer, not the order as it is now).
    Sql(r#"
CREATE INDEX changes_order_placed ON changes (entity_id) WHERE type = 'order.placed';
"#),
    // 3: CHECK constraints without constant IN lists (see `CHECK_REWRITES`).
    Code(rewrite_in_list_checks),
    // 4: a token generation per user. Every token carries it and is honoured
    // only while it matches: a password or role change draws a new one, so
    // every token issued before stops working at once. Random rather than
    // counted, so a user removed and added again (SQLite may reuse the id)
    // does not match the old user's tokens.
    Sql(r#"
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
UPDATE users SET token_generation = random();
"#),
    // 5: payments of DESIGN §7 (the webhook, `oms payment`). Migration 1's
    // `payments` table was never written; it is rebuilt: `order_id` may be
    // NULL (a payment for an order we cannot name) and has no foreign key
    // (a payment is a record of money and outlives its order), and the
    // provider payment id is unique per provider. Delivery ids and refund
    // ids are kept so replays are recognised in the transaction of their
    // effect. CHECKs are written with OR (see `CHECK_REWRITES`).
    Sql(PAYMENTS),
    // 6: one record's history from the change log (the dashboard's order
    // detail: `GET /api/changes?entity=order&entity_id=7`).
    Sql(r#"
CREATE INDEX changes_entity ON changes (entity, entity_id, seq);
"#),
    // 7: the notification outbox of DESIGN §7: a kind instead of a rendered
    // subject and body (mails are rendered when sent, so placement writes
    // only what the template needs), `dead` instead of `failed`, the
    // Message-ID and a lease for claiming. SQLite cannot change columns or
    // CHECKs in place, so the table is rebuilt. Old rows get the kind their
    // subject named; rows that were never sent become `dead` with a note:
    // they were queued before oms delivered mail at all, and sending months
    // of them on upgrade would surprise every customer (`oms notify retry`
    // sends one). `mail_shop_id` keeps Message-IDs of two shops apart.
    Sql(r#"
CREATE TABLE notifications_v2 (
    id              INTEGER PRIMARY KEY,
    order_id        INTEGER NOT NULL,
    customer_id     INTEGER,
    recipient       TEXT NOT NULL,
    kind            TEXT NOT NULL
                    CHECK (kind = 'order.placed' OR kind = 'order.paid'
                           OR kind = 'order.fulfilled' OR kind = 'order.cancelled'),
    -- 'expired' on the order.cancelled row an expiry writes; else NULL.
    reason          TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status = 'pending' OR status = 'sent' OR status = 'dead'),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Due time of a pending row; a claim moves it to the lease's end.
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    message_id      TEXT,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
) STRICT;
INSERT INTO notifications_v2
    (id, order_id, customer_id, recipient, kind, status, attempts, next_attempt_at,
     last_error, created_at, sent_at)
SELECT id, COALESCE(order_id, 0), customer_id, recipient,
       CASE WHEN subject LIKE '%: paid' THEN 'order.paid'
            WHEN subject LIKE '%: fulfilled' THEN 'order.fulfilled'
            WHEN subject LIKE '%: cancelled' THEN 'order.cancelled'
            ELSE 'order.placed' END,
       CASE WHEN status = 'sent' THEN 'sent' ELSE 'dead' END,
       attempts, next_attempt_at,
       CASE WHEN status = 'sent' THEN last_error
            ELSE COALESCE(last_error, 'queued before oms delivered e-mail; not sent on upgrade (oms notify retry ID sends it)')
       END,
       created_at, sent_at
FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_v2 RENAME TO notifications;
-- Only pending rows: the dispatcher's claim and the backlog read it in
-- next_attempt_at order; sent rows (nearly all) stay out of it.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_order ON notifications (order_id);
INSERT INTO settings (key, value) VALUES ('mail_shop_id', lower(hex(randomblob(8))))
    ON CONFLICT (key) DO NOTHING;
"#),
    // 8: an idempotent replay rebuilds the first answer from the order
    // instead of reading it back out of the change log (an `order.placed`
    // row, through an index of its own, kept on every placement): the
    // first answer is the order as it is, with the status it was placed in
    // (`placed_status`), version 1 and `updated_at` = `created_at`; only an
    // edit changes its items, so the first edit of a keyed order keeps the
    // first answer in `first_answers`. Existing orders get the same from
    // the change log, once, here; the index then goes.
    Sql(r#"
ALTER TABLE orders ADD COLUMN placed_status TEXT;
UPDATE orders SET placed_status = (
    SELECT json_extract(c.data, '$.status') FROM changes c
    WHERE c.type = 'order.placed' AND c.entity_id = orders.id ORDER BY c.seq LIMIT 1)
WHERE idempotency_key IS NOT NULL;
CREATE TABLE first_answers (
    order_id INTEGER PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    answer   TEXT NOT NULL
) STRICT;
INSERT INTO first_answers (order_id, answer)
SELECT o.id, c.data
FROM orders o JOIN changes c ON c.type = 'order.placed' AND c.entity_id = o.id
WHERE o.idempotency_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM changes u WHERE u.type = 'order.updated' AND u.entity_id = o.id)
  AND c.seq = (SELECT min(seq) FROM changes f WHERE f.type = 'order.placed' AND f.entity_id = o.id);
DROP INDEX changes_order_placed;
"#),
];

/// The payments migration (see `MIGRATIONS`).
const PAYMENTS: &str = r#"
CREATE TABLE payments_new (
    id                  INTEGER PRIMARY KEY,
    order_id            INTEGER,
    provider            TEXT NOT NULL CHECK (provider = 'razorpay' OR provider = 'manual'),
    provider_payment_id TEXT NOT NULL,
    event_id            TEXT,
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL
                        CHECK (status = 'captured' OR status = 'failed' OR status = 'refunded'),
    outcome             TEXT NOT NULL
                        CHECK (outcome = 'applied' OR outcome = 'amount_mismatch'
                               OR outcome = 'not_payable' OR outcome = 'unknown_order'
                               OR outcome = 'failed'),
    refunded_amount     INTEGER NOT NULL DEFAULT 0
                        CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
INSERT INTO payments_new (id, order_id, provider, provider_payment_id, amount, currency,
                          status, outcome, created_at, updated_at)
    SELECT p.id, p.order_id,
           CASE WHEN p.provider = 'manual' THEN 'manual' ELSE 'razorpay' END,
           p.provider_payment_id, p.amount,
           COALESCE((SELECT o.currency FROM orders o WHERE o.id = p.order_id),
                    (SELECT value FROM settings WHERE key = 'currency'), 'USD'),
           CASE WHEN p.status = 'failed' OR p.status = 'refunded' THEN p.status ELSE 'captured' END,
           CASE WHEN p.status = 'failed' THEN 'failed' ELSE 'applied' END,
           p.created_at, p.created_at
    FROM payments p;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE UNIQUE INDEX payments_provider_id ON payments (provider, provider_payment_id);
CREATE INDEX payments_order ON payments (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX payments_outcome ON payments (outcome);

-- Every refund once, by the provider's refund id. A refund whose payment
-- is not recorded yet (deliveries arrive in any order) waits here and is
-- counted when the payment arrives.
CREATE TABLE payment_refunds (
    provider            TEXT NOT NULL,
    provider_refund_id  TEXT NOT NULL,
    provider_payment_id TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount >= 0),
    event_id            TEXT,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (provider, provider_refund_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX payment_refunds_payment ON payment_refunds (provider, provider_payment_id);

-- Every webhook delivery that had an effect or was recognised, once, by
-- the provider's event id (`x-razorpay-event-id`).
CREATE TABLE webhook_events (
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, event_id)
) STRICT, WITHOUT ROWID;
"#;

/// `CHECK (x IN (a, b, c, ...))` with more than two constants makes SQLite
/// build a temporary b-tree of the list every time a statement that checks
/// it runs: a third of the cost of a stock ledger insert, paid on every
/// order line. The same test written with `OR` compiles to plain
/// comparisons. Each pair is (table, constraint as migration 1 wrote it,
/// the equivalent rewrite).
const CHECK_REWRITES: &[(&str, &str, &str)] = &[
    (
        "orders",
        "CHECK (status IN ('PENDING', 'PAID', 'FULFILLED', 'CANCELLED'))",
        "CHECK (status = 'PENDING' OR status = 'PAID' OR status = 'FULFILLED' OR status = 'CANCELLED')",
    ),
    (
        "stock_movements",
        "CHECK (reason IN ('create', 'reserve', 'release', 'ship', 'restock', 'import', 'edit'))",
        "CHECK (reason = 'create' OR reason = 'reserve' OR reason = 'release' OR reason = 'ship' \
         OR reason = 'restock' OR reason = 'import' OR reason = 'edit')",
    ),
    (
        "notifications",
        "CHECK (status IN ('pending', 'sent', 'failed'))",
        "CHECK (status = 'pending' OR status = 'sent' OR status = 'failed')",
    ),
];

/// Replaces each constraint of [`CHECK_REWRITES`] with its equivalent in the
/// stored `CREATE TABLE` text. This is SQLite's documented procedure for
/// changing a constraint without rebuilding the table (ALTER TABLE, "making
/// other kinds of table schema changes"); it is safe because every stored
/// row satisfies both forms. Bumping `schema_version` makes every open
/// connection reload the schema. A table whose text differs (not created by
/// oms) is left as it is: the old form is slower, not wrong.
fn rewrite_in_list_checks(tx: &Transaction<'_>) -> Result<()> {
    tx.pragma_update(None, "writable_schema", true)?;
    for (table, old, new) in CHECK_REWRITES {
        let sql: Option<String> = tx
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .optional()?;
        match sql {
            Some(sql) if sql.contains(old) => {
                tx.execute(
                    "UPDATE sqlite_schema SET sql = ?2 WHERE type = 'table' AND name = ?1",
                    (table, sql.replace(old, new)),
                )?;
            }
            _ => tracing::warn!(
                table,
                "CHECK constraint not in the expected form; left as is"
            ),
        }
    }
    let version: i64 = tx.pragma_query_value(None, "schema_version", |r| r.get(0))?;
    tx.pragma_update(None, "schema_version", version + 1)?;
    // RESET turns writable_schema off and makes this connection, too,
    // reparse the schema (it would otherwise keep the old constraints).
    tx.execute_batch("PRAGMA writable_schema = RESET")?;
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`]. A no-op when it is there
/// already; refuses a database from a newer oms.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    // Fast path without taking the write lock: most opens find the schema
    // current, and 30 concurrent CLI processes should not queue for it.
    let current = user_version(conn)?;
    check_not_newer(current)?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current = user_version(&tx)?;
    check_not_newer(current)?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let applied = match step {
            Sql(sql) => tx.execute_batch(sql).map_err(Error::from),
            Code(run) => run(&tx),
        };
        applied.map_err(|e| Error::Database(format!("migration {} failed: {e}", index + 1)))?;
        tracing::debug!(version = index + 1, "applied migration");
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

fn check_not_newer(found: i64) -> Result<()> {
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let before = table_names(&conn);
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ('probe', 'kept')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(table_names(&conn), before);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let kept: String = conn
            .query_row("SELECT value FROM settings WHERE key = 'probe'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, "kept");
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_message() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(matches!(err, Error::SchemaTooNew { .. }), "{err:?}");
        assert!(err.to_string().contains("upgrade oms"), "{err}");
    }

    /// Applies migrations 1 and 2 only, as an oms of schema version 2 did.
    fn version_2(conn: &mut Connection) {
        let tx = conn.transaction().unwrap();
        for step in &MIGRATIONS[..2] {
            let Sql(sql) = step else {
                panic!("migrations 1-2 are SQL")
            };
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 2).unwrap();
        tx.commit().unwrap();
    }

    fn ephemeral_tables(conn: &Connection, sql: &str) -> usize {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .filter(|op| op.as_ref().unwrap() == "OpenEphemeral")
            .count()
    }

    /// Applies the migrations before `upto` (0-based), as an older oms did.
    fn apply_up_to(conn: &mut Connection, upto: usize) {
        let tx = conn.transaction().unwrap();
        for step in &MIGRATIONS[..upto] {
            match step {
                Sql(sql) => tx.execute_batch(sql).unwrap(),
                Code(run) => run(&tx).unwrap(),
            }
        }
        tx.pragma_update(None, "user_version", upto as i64).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn the_outbox_migration_maps_old_rows_to_kinds_and_never_resends_them() {
        let outbox = MIGRATIONS
            .iter()
            .position(|m| matches!(m, Sql(sql) if sql.contains("CREATE TABLE notifications_v2")))
            .expect("the outbox migration");
        let mut conn = Connection::open_in_memory().unwrap();
        apply_up_to(&mut conn, outbox);
        // Rows as the placement and transitions of that oms wrote them.
        conn.execute_batch(
            "INSERT INTO notifications (id, order_id, customer_id, recipient, subject, body,
                 status, attempts, next_attempt_at, last_error, created_at, sent_at) VALUES
               (1, 7, 3, 'a@x.io', 'Order #7: received', 'b', 'pending', 0, 10, NULL, 10, NULL),
               (2, 7, 3, 'a@x.io', 'Order #7: paid', 'b', 'sent', 1, 11, NULL, 11, 12),
               (3, 7, 3, 'a@x.io', 'Order #7: fulfilled', 'b', 'failed', 3, 12, 'boom', 12, NULL),
               (4, 8, 3, 'a@x.io', 'Order #8: cancelled', 'b', 'pending', 0, 13, NULL, 13, NULL);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        /// id, order_id, kind, status, last_error, attempts, sent_at.
        type Row = (i64, i64, String, String, Option<String>, i64, Option<i64>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT id, order_id, kind, status, last_error, attempts, sent_at
                 FROM notifications ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let kinds: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "order.placed",
                "order.paid",
                "order.fulfilled",
                "order.cancelled"
            ]
        );
        let statuses: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(statuses, ["dead", "sent", "dead", "dead"]);
        assert!(rows[0].4.as_deref().unwrap().contains("oms notify retry"));
        assert_eq!(rows[1].4, None);
        assert_eq!(rows[2].4.as_deref(), Some("boom"));
        assert_eq!((rows[1].5, rows[1].6), (1, Some(12)));
        let shop: String = conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'mail_shop_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(shop.len(), 16, "{shop}");
        let refused = conn
            .execute(
                "INSERT INTO notifications (order_id, recipient, kind, next_attempt_at, created_at)
                 VALUES (1, 'a@x.io', 'order.shipped', 0, 0)",
                [],
            )
            .unwrap_err();
        assert!(refused.to_string().contains("CHECK"), "{refused}");
    }

    #[test]
    fn migration_3_rewrites_in_list_checks_without_losing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let mut conn = Connection::open(&path).unwrap();
        version_2(&mut conn);
        conn.execute_batch(
            "INSERT INTO products (id, sku, name, price, stock_on_hand, created_at, updated_at)
                 VALUES (1, 'A', 'a', 100, 5, 0, 0);
             INSERT INTO stock_movements (product_id, delta_on_hand, delta_reserved, reason, at)
                 VALUES (1, 5, 0, 'create', 0);",
        )
        .unwrap();
        let ledger_insert = "INSERT INTO stock_movements
            (product_id, delta_on_hand, delta_reserved, reason, at) VALUES (1, 1, 0, 'restock', 0)";
        assert_eq!(ephemeral_tables(&conn, ledger_insert), 1, "the old form");

        // A second connection opened before the migration must see it too.
        let other = Connection::open(&path).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        for c in [&conn, &other] {
            assert_eq!(ephemeral_tables(c, ledger_insert), 0, "{:?}", c.path());
            assert_eq!(
                ephemeral_tables(c, "UPDATE orders SET status = 'PAID' WHERE id = 1"),
                0
            );
            let refused = c
                .execute(
                    "INSERT INTO stock_movements
                         (product_id, delta_on_hand, delta_reserved, reason, at)
                     VALUES (1, 1, 0, 'stolen', 0)",
                    [],
                )
                .unwrap_err();
            assert!(refused.to_string().contains("CHECK"), "{refused}");
        }
        conn.execute(ledger_insert, []).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        drop((conn, other));
        // The rewrite is in the file, not only in one connection's memory.
        let reopened = Connection::open(&path).unwrap();
        assert_eq!(ephemeral_tables(&reopened, ledger_insert), 0);
    }

    /// The position of the payments migration in `MIGRATIONS` (found, not
    /// hard-coded: migrations of other work may land before it).
    fn payments_migration() -> usize {
        MIGRATIONS
            .iter()
            .position(|m| matches!(m, Sql(sql) if *sql == PAYMENTS))
            .expect("the payments migration is in MIGRATIONS")
    }

    #[test]
    fn the_payments_migration_keeps_old_rows_and_enforces_the_new_rules() {
        let mut conn = Connection::open_in_memory().unwrap();
        let before = payments_migration();
        {
            let tx = conn.transaction().unwrap();
            for step in &MIGRATIONS[..before] {
                match step {
                    Sql(sql) => tx.execute_batch(sql).unwrap(),
                    Code(run) => run(&tx).unwrap(),
                }
            }
            tx.pragma_update(None, "user_version", before as i64)
                .unwrap();
            tx.commit().unwrap();
        }
        // A row in migration 1's form (nothing wrote one, but the shape
        // allowed it).
        conn.execute_batch(
            "INSERT INTO customers (id, name, email, created_at, updated_at)
                 VALUES (1, 'C', 'c@example.com', 0, 0);
             INSERT INTO orders (id, customer_id, status, total, currency, tracking_code,
                                 created_at, updated_at)
                 VALUES (7, 1, 'PAID', 4999, 'EUR', 'TRK1', 0, 0);
             INSERT INTO payments (order_id, provider, provider_payment_id, amount, status, created_at)
                 VALUES (7, 'razorpay', 'pay_old', 4999, 'captured', 5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (i64, String, String, String, String, i64, i64) = conn
            .query_row(
                "SELECT order_id, provider, currency, status, outcome, refunded_amount, updated_at
                 FROM payments WHERE provider_payment_id = 'pay_old'",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            row,
            (
                7,
                "razorpay".into(),
                "EUR".into(),
                "captured".into(),
                "applied".into(),
                0,
                5
            )
        );
        // Unique per provider, not across providers.
        let insert = |provider: &str| {
            conn.execute(
                "INSERT INTO payments (provider, provider_payment_id, amount, currency, status,
                                       outcome, created_at, updated_at)
                 VALUES (?1, 'pay_old', 1, 'EUR', 'failed', 'failed', 0, 0)",
                [provider],
            )
        };
        assert!(insert("razorpay").is_err(), "duplicate provider payment id");
        insert("manual").unwrap();
        assert!(insert("paypal").is_err(), "unknown provider");
        let refused = conn.execute(
            "UPDATE payments SET refunded_amount = amount + 1 WHERE provider = 'manual'",
            [],
        );
        assert!(refused.is_err(), "refunded beyond the amount");
        // A payment does not hold its order: removing the order is up to
        // the store's rules, not a foreign key.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM orders WHERE id = 7")
            .unwrap();
    }

    #[test]
    fn the_replay_migration_keeps_what_rebuilds_each_keys_first_answer() {
        let keys = MIGRATIONS
            .iter()
            .position(|m| matches!(m, Sql(sql) if sql.contains("CREATE TABLE first_answers")))
            .expect("the replay migration");
        let mut conn = Connection::open_in_memory().unwrap();
        apply_up_to(&mut conn, keys);
        // Keyed orders 7 (placed PENDING, since paid) and 8 (placed, then
        // edited), and 9 without a key, as that oms wrote them.
        conn.execute_batch(
            "INSERT INTO customers (id, name, email, created_at, updated_at)
                 VALUES (3, 'C', 'c@x.io', 0, 0);
             INSERT INTO orders (id, customer_id, status, total, currency, tracking_code,
                 idempotency_scope, idempotency_key, request_fingerprint, created_at, updated_at)
             VALUES (7, 3, 'PAID', 100, 'USD', 'T7', 'user:1', 'k-7', 'c3:1*1', 0, 0),
                    (8, 3, 'PENDING', 100, 'USD', 'T8', 'cli', 'k-8', 'c3:1*1', 0, 0),
                    (9, 3, 'PENDING', 100, 'USD', 'T9', '', NULL, NULL, 0, 0);
             INSERT INTO changes (at, type, entity, entity_id, actor, customer_id, data)
             VALUES (0, 'order.placed', 'order', 7, 'user:1', 3, '{\"id\":7,\"status\":\"PENDING\"}'),
                    (0, 'order.status_changed', 'order', 7, 'user:1', 3, '{}'),
                    (0, 'order.placed', 'order', 8, 'cli', 3, '{\"id\":8,\"status\":\"PENDING\"}'),
                    (0, 'order.updated', 'order', 8, 'cli', 3, '{}'),
                    (0, 'order.placed', 'order', 9, 'cli', 3, '{\"id\":9,\"status\":\"PENDING\"}');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let placed: Vec<(i64, Option<String>)> = conn
            .prepare("SELECT id, placed_status FROM orders ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            placed,
            [
                (7, Some("PENDING".into())),
                (8, Some("PENDING".into())),
                (9, None)
            ]
        );
        let answers: Vec<(i64, String)> = conn
            .prepare("SELECT order_id, answer FROM first_answers")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(answers, [(8, r#"{"id":8,"status":"PENDING"}"#.to_string())]);
        // A removed order takes its kept answer with it.
        conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM orders WHERE id = 8;")
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM first_answers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
