//! The change log: one row per state change, appended in the same
//! transaction as the change itself, numbered from the counter row the
//! transaction holds (see the module documentation of the backend), so
//! seqs become visible in seq order with no gap.

use postgres::Row;

use super::session::Session;
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
        let seq = self.turn.next_seq(&mut self.session())?;
        self.session().execute(
            "INSERT INTO changes (seq, at, type, entity, entity_id, actor, customer_id, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &seq,
                &self.now.millis(),
                &kind,
                &entity,
                &entity_id,
                &self.actor.label(),
                &customer_id.map(CustomerId::get),
                &data,
            ],
        )?;
        Ok(Seq(seq))
    }
}

fn change_from_row(r: &Row) -> Change {
    let data: String = r.get(6);
    Change {
        seq: Seq(r.get(0)),
        at: Timestamp::from_millis(r.get(1)),
        kind: r.get(2),
        entity: r.get(3),
        entity_id: r.get(4),
        actor: r.get(5),
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
        customer_id: r.get::<_, Option<i64>>(7).map(CustomerId),
    }
}

fn changes_after(
    s: &mut Session,
    after: Seq,
    limit: u64,
    customer: Option<CustomerId>,
    entity: Option<&EntityFilter>,
) -> Result<Vec<Change>> {
    let limit = super::count(limit);
    let rows = s.query(
        "SELECT seq, at, type, entity, entity_id, actor, data, customer_id FROM changes
         WHERE seq > $1
           AND ($3::bigint IS NULL OR customer_id = $3)
           AND ($4::text IS NULL OR entity = $4)
           AND ($5::bigint IS NULL OR entity_id = $5)
         ORDER BY seq LIMIT $2",
        &[
            &after.get(),
            &limit,
            &customer.map(CustomerId::get),
            &entity.map(|f| f.entity.as_str()),
            &entity.and_then(|f| f.entity_id),
        ],
    )?;
    Ok(rows.iter().map(change_from_row).collect())
}

for_conn_and_tx!(ChangeReads {
    fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Result<Vec<Change>> {
        changes_after(&mut self.session(), after, limit, customer, None)
    }

    fn entity_changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
        entity: &EntityFilter,
    ) -> Result<Vec<Change>> {
        changes_after(&mut self.session(), after, limit, customer, Some(entity))
    }

    fn last_seq(&self) -> Result<Seq> {
        let row = self
            .session()
            .query_one("SELECT COALESCE(max(seq), 0) FROM changes", &[])?;
        Ok(Seq(row.get(0)))
    }
});
