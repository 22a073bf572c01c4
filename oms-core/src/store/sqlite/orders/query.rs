//! Order reads: one order, a filtered list, and the export's rows read in
//! batches (each batch in its own short read, so a slow consumer never
//! holds a snapshot open).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::{ORDER_COLUMNS, get_order, load_page_items, order_from_row, parse_status};
use crate::store::sqlite::{Access, customers, like_pattern};
use crate::store::{EXPORT_BATCH, OrderReads};
use crate::{
    Currency, CustomerId, Error, Order, OrderExportRow, OrderFilter, OrderId, Result, Timestamp,
};

/// Builds the `WHERE` clause of a filter over `orders o`.
fn filter_clause(conn: &Connection, filter: &OrderFilter) -> Result<(String, Vec<Value>)> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(status) = filter.status {
        clauses.push("o.status = ?");
        values.push(Value::Text(status.as_str().to_string()));
    }
    if let Some(customer) = &filter.customer {
        let id = customers::get(conn, customer)?.id;
        clauses.push("o.customer_id = ?");
        values.push(Value::Integer(id.get()));
    }
    if let Some(since) = filter.since {
        clauses.push("o.created_at >= ?");
        values.push(Value::Integer(since.millis()));
    }
    if let Some(until) = filter.until {
        clauses.push("o.created_at < ?");
        values.push(Value::Integer(until.millis()));
    }
    if let Some(after) = filter.after {
        clauses.push(if filter.newest_first {
            "o.id < ?"
        } else {
            "o.id > ?"
        });
        values.push(Value::Integer(after.get()));
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        clauses.push(
            "(oms_fold(o.idempotency_key) LIKE ? ESCAPE '\\'
              OR oms_fold(o.tracking_code) LIKE ? ESCAPE '\\'
              OR EXISTS (SELECT 1 FROM customers c2 WHERE c2.id = o.customer_id
                         AND (oms_fold(c2.name) LIKE ? ESCAPE '\\'
                              OR oms_fold(c2.email) LIKE ? ESCAPE '\\'))
              OR EXISTS (SELECT 1 FROM order_items i2 WHERE i2.order_id = o.id
                         AND (oms_fold(i2.sku) LIKE ? ESCAPE '\\'
                              OR oms_fold(i2.name) LIKE ? ESCAPE '\\')))",
        );
        let pattern = like_pattern(search.trim());
        for _ in 0..6 {
            values.push(Value::Text(pattern.clone()));
        }
    }
    let clause = if clauses.is_empty() {
        "1".to_string()
    } else {
        clauses.join(" AND ")
    };
    Ok((clause, values))
}

impl<S: Access + ?Sized> OrderReads for S {
    /// An order with its items.
    fn order(&self, id: OrderId) -> Result<Order> {
        get_order(self.sql(), id)
    }

    /// An order by its public tracking code.
    fn order_by_tracking_code(&self, code: &str) -> Result<Order> {
        let id: Option<i64> = self
            .sql()
            .prepare_cached("SELECT id FROM orders WHERE tracking_code = ?1")?
            .query_row([code], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => get_order(self.sql(), OrderId(id)),
            None => Err(Error::not_found("tracking code", code)),
        }
    }

    /// Orders matching the filter, ordered by id (the newest first when the
    /// filter says so), with their items.
    fn orders(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        // One read transaction: the orders and their items are one snapshot.
        let snapshot = self.sql().unchecked_transaction()?;
        let (clause, mut values) = filter_clause(&snapshot, filter)?;
        values.push(Value::Integer(
            filter
                .limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        ));
        let direction = if filter.newest_first { "DESC" } else { "ASC" };
        let mut orders: Vec<Order> = snapshot
            .prepare_cached(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders o WHERE {clause} ORDER BY o.id {direction} LIMIT ?"
            ))?
            .query_map(params_from_iter(values), order_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        // Pages are small (the daemon caps them); `oms order list --limit 0`
        // may list everything, so large lists load items in chunks.
        for page in orders.chunks_mut(500) {
            load_page_items(&snapshot, page)?;
        }
        Ok(orders)
    }

    /// Streams one row per order item for the CSV export, ordered by order id
    /// and line, in bounded memory.
    ///
    /// The orders are read in batches of [`EXPORT_BATCH`], each batch in its
    /// own short read (one statement, collected, then released) before its
    /// rows are handed to `f`. A slow consumer (a client reading the HTTP
    /// export slowly, a pipe into a slow program) therefore never holds a
    /// read snapshot open: a held snapshot keeps SQLite from reusing the WAL,
    /// which then grows with every commit. The export covers the orders that
    /// exist when it starts (ids up to the largest one then), each as it is
    /// when its batch is read.
    fn for_each_export_row(
        &self,
        filter: &OrderFilter,
        f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()> {
        let (clause, values) = filter_clause(self.sql(), filter)?;
        let last_id: i64 = self
            .sql()
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM orders")?
            .query_row([], |r| r.get(0))?;
        let mut stmt = self.sql().prepare(&format!(
            "SELECT o.id, COALESCE(o.idempotency_key, ''), o.created_at, o.status, o.customer_id,
                    c.email, c.name, i.sku, i.name, i.quantity, i.unit_price, o.total, o.currency
             FROM orders o
             JOIN customers c ON c.id = o.customer_id
             JOIN order_items i ON i.order_id = o.id
             WHERE o.id IN (SELECT o.id FROM orders o
                            WHERE {clause} AND o.id > ? AND o.id <= ?
                            ORDER BY o.id LIMIT ?)
             ORDER BY o.id, i.line"
        ))?;
        let mut remaining = filter.limit.unwrap_or(u64::MAX);
        let mut after = 0_i64;
        let mut currency = self.stored_currency();
        let mut batch: Vec<OrderExportRow> = Vec::new();
        while remaining > 0 {
            let take = remaining.min(EXPORT_BATCH);
            let mut params = values.clone();
            params.push(Value::Integer(after));
            params.push(Value::Integer(last_id));
            params.push(Value::Integer(i64::try_from(take).unwrap_or(i64::MAX)));
            {
                let mut rows = stmt.query(params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    let code: String = r.get(12)?;
                    if code != currency.code() {
                        currency = Currency::parse(&code)?;
                    }
                    let quantity: i64 = r.get(9)?;
                    let unit_price: i64 = r.get(10)?;
                    batch.push(OrderExportRow {
                        order_id: OrderId(r.get(0)?),
                        order_ref: r.get(1)?,
                        created_at: Timestamp::from_millis(r.get(2)?),
                        status: parse_status(&r.get::<_, String>(3)?)?,
                        customer_id: CustomerId(r.get(4)?),
                        customer_email: r.get(5)?,
                        customer_name: r.get(6)?,
                        sku: r.get(7)?,
                        product_name: r.get(8)?,
                        quantity,
                        unit_price: currency.from_minor(unit_price),
                        line_total: currency.from_minor(unit_price.saturating_mul(quantity)),
                        order_total: currency.from_minor(r.get(11)?),
                        currency,
                    });
                }
                // `rows` ends here: the statement is reset and the read
                // snapshot released before the consumer sees the batch.
            }
            let Some(last) = batch.last().map(|r| r.order_id.get()) else {
                break;
            };
            let mut orders = 0_u64;
            let mut previous = None;
            for row in batch.drain(..) {
                if previous != Some(row.order_id) {
                    orders += 1;
                    previous = Some(row.order_id);
                }
                f(row)?;
            }
            remaining = remaining.saturating_sub(orders);
            if orders < take {
                break;
            }
            after = last;
        }
        Ok(())
    }
}
