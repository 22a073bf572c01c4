//! The change log: one row per state change, appended in the same
//! transaction as the change itself.
//!
//! Guarantees: `seq` is strictly increasing and gap-free (AUTOINCREMENT, no
//! deletes, writers serialised by the database lock), so a reader that
//! resumes after the last `seq` it saw sees every later change exactly once.

use rusqlite::{Connection, params};

use super::{Access, Tx};
use crate::store::ChangeReads;
use crate::{Change, CustomerId, EntityFilter, Result, Seq, Timestamp};

impl Tx<'_> {
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
    entity: Option<&EntityFilter>,
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
    // Parameters: ?1 after, ?2 limit, ?3 customer, ?4 entity, ?5 entity id.
    // Each combination is its own cached statement, so each keeps the plan
    // that uses its index (`changes_customer`, `changes_entity`).
    let mut clauses = vec!["seq > ?1"];
    if customer.is_some() {
        clauses.push("customer_id = ?3");
    }
    if let Some(filter) = entity {
        clauses.push("entity = ?4");
        if filter.entity_id.is_some() {
            clauses.push("entity_id = ?5");
        }
    }
    let sql = format!(
        "SELECT seq, at, type, entity, entity_id, actor, data, customer_id FROM changes
         WHERE {} ORDER BY seq LIMIT ?2",
        clauses.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut bind = |index: usize, value: &dyn rusqlite::ToSql| -> Result<()> {
        // Only the parameters the statement uses are bound.
        if stmt.parameter_index(&format!("?{index}"))?.is_some() {
            stmt.raw_bind_parameter(index, value)?;
        }
        Ok(())
    };
    bind(1, &after.get())?;
    bind(2, &limit)?;
    bind(3, &customer.map(CustomerId::get))?;
    bind(4, &entity.map(|f| f.entity.as_str()))?;
    bind(5, &entity.and_then(|f| f.entity_id))?;
    let rows: Vec<(Change, String)> = stmt
        .raw_query()
        .mapped(map)
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .map(|(mut change, data)| {
            change.data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
            change
        })
        .collect())
}

impl<S: Access + ?Sized> ChangeReads for S {
    /// Changes with `seq > after`, oldest first, at most `limit`; only the
    /// given customer's when `customer` is set.
    fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Result<Vec<Change>> {
        changes_after(self.sql(), after, limit, customer, None)
    }

    /// [`Store::changes_after`] narrowed to the changes about one entity
    /// (an order's history: `entity = "order"`, `entity_id = 7`).
    fn entity_changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
        entity: &EntityFilter,
    ) -> Result<Vec<Change>> {
        changes_after(self.sql(), after, limit, customer, Some(entity))
    }

    /// The newest `seq`, or 0 for an empty log.
    fn last_seq(&self) -> Result<Seq> {
        Ok(Seq(self.sql().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM changes",
            [],
            |r| r.get(0),
        )?))
    }
}
