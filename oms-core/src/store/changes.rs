//! The change log: one row per state change, appended in the same
//! transaction as the change itself.
//!
//! Guarantees: `seq` is strictly increasing and gap-free (AUTOINCREMENT, no
//! deletes, writers serialised by the database lock), so a reader that
//! resumes after the last `seq` it saw sees every later change exactly once.

use rusqlite::{Connection, params};

use super::{Store, WriteTx};
use crate::{Change, CustomerId, Result, Seq, Timestamp};

impl WriteTx<'_> {
    /// Appends a change. `customer_id` marks changes a customer may see.
    pub(crate) fn log_change(
        &self,
        kind: &str,
        entity: &str,
        entity_id: i64,
        customer_id: Option<CustomerId>,
        data: &impl serde::Serialize,
    ) -> Result<Seq> {
        let data = serde_json::to_string(data)
            .map_err(|e| crate::Error::Database(format!("cannot encode change data: {e}")))?;
        self.log_change_json(kind, entity, entity_id, customer_id, &data)
    }

    /// Appends a change whose data is already JSON text.
    pub(crate) fn log_change_json(
        &self,
        kind: &str,
        entity: &str,
        entity_id: i64,
        customer_id: Option<CustomerId>,
        data: &str,
    ) -> Result<Seq> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO changes (at, type, entity, entity_id, actor, customer_id, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            self.now.millis(),
            kind,
            entity,
            entity_id,
            self.actor.label(),
            customer_id.map(CustomerId::get),
            data,
        ])?;
        Ok(Seq(self.conn.last_insert_rowid()))
    }
}

pub(crate) fn changes_after(
    conn: &Connection,
    after: Seq,
    limit: u64,
    customer: Option<CustomerId>,
) -> Result<Vec<Change>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let map = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(Change, String)> {
        Ok((
            Change {
                seq: Seq(r.get(0)?),
                at: Timestamp::from_millis(r.get(1)?),
                kind: r.get(2)?,
                entity: r.get(3)?,
                entity_id: r.get(4)?,
                actor: r.get(5)?,
                data: serde_json::Value::Null,
                customer_id: r.get::<_, Option<i64>>(7)?.map(CustomerId),
            },
            r.get(6)?,
        ))
    };
    let rows: Vec<(Change, String)> = match customer {
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, type, entity, entity_id, actor, data, customer_id FROM changes
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            stmt.query_map(params![after.get(), limit], map)?
                .collect::<rusqlite::Result<_>>()?
        }
        Some(customer) => {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, type, entity, entity_id, actor, data, customer_id FROM changes
                 WHERE customer_id = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            stmt.query_map(params![after.get(), limit, customer.get()], map)?
                .collect::<rusqlite::Result<_>>()?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(mut change, data)| {
            change.data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
            change
        })
        .collect())
}

impl Store {
    /// Changes with `seq > after`, oldest first, at most `limit`; only the
    /// given customer's when `customer` is set.
    pub fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Result<Vec<Change>> {
        changes_after(&self.conn, after, limit, customer)
    }

    /// The newest `seq`, or 0 for an empty log.
    pub fn last_seq(&self) -> Result<Seq> {
        Ok(Seq(self.conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM changes",
            [],
            |r| r.get(0),
        )?))
    }
}
