//! Copying a whole shop between backends (`oms db copy`, and `oms backup`
//! on PostgreSQL): every table, row for row, ids and change seqs included.
//!
//! Both schemas have the same tables and columns (the SQLite one after its
//! migration 8, the PostgreSQL one after its migration 1); [`TABLES`] lists
//! them in an order that satisfies every foreign key, with each column's
//! kind, so each backend reads and writes a [`Value`] as its engine stores
//! it (a flag is 0/1 in SQLite and a `boolean` in PostgreSQL). The source
//! is read in one snapshot; the target is written in one transaction, which
//! first checks that the target holds no shop data: a copy is all of the
//! shop or nothing, and never merges two shops.

use crate::Result;

/// How a column stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Bool,
}

/// One value of a copied row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

/// One table of the shop.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [(&'static str, Kind)],
    /// The `ORDER BY` that reads it in key order.
    pub(crate) order_by: &'static str,
    /// Its generated id column, if any (re-seeded after a copy).
    pub(crate) generated_id: Option<&'static str>,
}

impl Table {
    /// The column names, comma-separated.
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use Kind::{Bool, Int, Text};

/// Every table of a shop, parents before children.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "settings",
        columns: &[("key", Text), ("value", Text)],
        order_by: "key",
        generated_id: None,
    },
    Table {
        name: "customers",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("phone", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "users",
        columns: &[
            ("id", Int),
            ("email", Text),
            ("name", Text),
            ("role", Text),
            ("customer_id", Int),
            ("password_hash", Text),
            ("created_at", Int),
            ("token_generation", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "products",
        columns: &[
            ("id", Int),
            ("sku", Text),
            ("name", Text),
            ("price", Int),
            ("stock_on_hand", Int),
            ("stock_reserved", Int),
            ("active", Bool),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "orders",
        columns: &[
            ("id", Int),
            ("customer_id", Int),
            ("status", Text),
            ("total", Int),
            ("currency", Text),
            ("payment_collected", Bool),
            ("tracking_code", Text),
            ("idempotency_scope", Text),
            ("idempotency_key", Text),
            ("request_fingerprint", Text),
            ("placed_status", Text),
            ("version", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "order_items",
        columns: &[
            ("order_id", Int),
            ("line", Int),
            ("product_id", Int),
            ("sku", Text),
            ("name", Text),
            ("unit_price", Int),
            ("quantity", Int),
        ],
        order_by: "order_id, line",
        generated_id: None,
    },
    Table {
        name: "first_answers",
        columns: &[("order_id", Int), ("answer", Text)],
        order_by: "order_id",
        generated_id: None,
    },
    Table {
        name: "stock_movements",
        columns: &[
            ("id", Int),
            ("product_id", Int),
            ("delta_on_hand", Int),
            ("delta_reserved", Int),
            ("reason", Text),
            ("order_id", Int),
            ("at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "changes",
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("type", Text),
            ("entity", Text),
            ("entity_id", Int),
            ("actor", Text),
            ("customer_id", Int),
            ("data", Text),
        ],
        order_by: "seq",
        generated_id: None,
    },
    Table {
        name: "payments",
        columns: &[
            ("id", Int),
            ("order_id", Int),
            ("provider", Text),
            ("provider_payment_id", Text),
            ("event_id", Text),
            ("amount", Int),
            ("currency", Text),
            ("status", Text),
            ("outcome", Text),
            ("refunded_amount", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
    Table {
        name: "payment_refunds",
        columns: &[
            ("provider", Text),
            ("provider_refund_id", Text),
            ("provider_payment_id", Text),
            ("amount", Int),
            ("event_id", Text),
            ("created_at", Int),
        ],
        order_by: "provider, provider_refund_id",
        generated_id: None,
    },
    Table {
        name: "webhook_events",
        columns: &[
            ("provider", Text),
            ("event_id", Text),
            ("event", Text),
            ("received_at", Int),
        ],
        order_by: "provider, event_id",
        generated_id: None,
    },
    Table {
        name: "notifications",
        columns: &[
            ("id", Int),
            ("order_id", Int),
            ("customer_id", Int),
            ("recipient", Text),
            ("kind", Text),
            ("reason", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("message_id", Text),
            ("lease_owner", Text),
            ("lease_until", Int),
            ("created_at", Int),
            ("sent_at", Int),
        ],
        order_by: "id",
        generated_id: Some("id"),
    },
];

/// What reads a shop: told the size of every table first, then given every
/// row, table by table in [`TABLES`] order.
pub(crate) trait CopyVisitor {
    fn sizes(&mut self, sizes: &[(&'static Table, u64)]) -> Result<()>;
    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()>;
}

/// Where a copy stands, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyProgress {
    /// Rows copied so far.
    pub rows: u64,
    /// Rows the source holds.
    pub total: u64,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopySummary {
    /// Rows copied per table, in copy order.
    pub tables: Vec<(String, u64)>,
    /// Rows copied in all.
    pub rows: u64,
}

/// Why a target cannot take a copy: it already holds shop data (settings
/// alone do not count: every new database has them).
pub(crate) fn not_empty(target: &str, counts: &[(&str, i64)]) -> Option<crate::Error> {
    let held: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} {table}"))
        .collect();
    if held.is_empty() {
        return None;
    }
    Some(crate::Error::Conflict(format!(
        "{target} is not empty (it holds {}); copy into a new, empty database",
        held.join(", ")
    )))
}

/// Counts what a target wrote, reports progress (at most every 100 ms, and
/// once at the end), and sums it up.
pub(crate) struct Tally<'a> {
    progress: &'a mut dyn FnMut(CopyProgress),
    total: u64,
    summary: CopySummary,
    reported: Option<std::time::Instant>,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(progress: &'a mut dyn FnMut(CopyProgress)) -> Tally<'a> {
        Tally {
            progress,
            total: 0,
            summary: CopySummary::default(),
            reported: None,
        }
    }

    pub(crate) fn sizes(&mut self, sizes: &[(&'static Table, u64)]) {
        self.total = sizes.iter().map(|(_, n)| n).sum();
        self.summary.tables = sizes.iter().map(|(t, _)| (t.name.to_string(), 0)).collect();
        (self.progress)(CopyProgress {
            rows: 0,
            total: self.total,
        });
        self.reported = Some(std::time::Instant::now());
    }

    /// One row of `table` written.
    pub(crate) fn row(&mut self, table: &Table) {
        self.summary.rows += 1;
        if let Some(entry) = self
            .summary
            .tables
            .iter_mut()
            .find(|(t, _)| t == table.name)
        {
            entry.1 += 1;
        }
        let due = self
            .reported
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_millis(100));
        if due {
            (self.progress)(CopyProgress {
                rows: self.summary.rows,
                total: self.total.max(self.summary.rows),
            });
            self.reported = Some(std::time::Instant::now());
        }
    }

    pub(crate) fn finish(self) -> CopySummary {
        (self.progress)(CopyProgress {
            rows: self.summary.rows,
            total: self.total.max(self.summary.rows),
        });
        self.summary
    }
}
