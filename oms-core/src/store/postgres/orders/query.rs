//! Order reads: one order, a filtered list, and the export's rows read in
//! batches (each batch by one statement, so a slow consumer never holds a
//! snapshot open), as the SQLite backend's.

use postgres::types::ToSql;

use super::{ITEM_COLUMNS, ORDER_COLUMNS, column, get_order, orders_from_rows, parse_status};
use crate::search::like_pattern;
use crate::store::postgres::session::Session;
use crate::store::postgres::{Access, customers};
use crate::store::{EXPORT_BATCH, OrderReads};
use crate::{
    Currency, CustomerId, Error, Order, OrderExportRow, OrderFilter, OrderId, Result, Timestamp,
};

/// Query parameters built along with the SQL that numbers them.
#[derive(Default)]
struct Params {
    values: Vec<Box<dyn ToSql + Sync>>,
}

impl Params {
    /// Adds a value and returns its placeholder (`$n`).
    fn push(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values.iter().map(|v| v.as_ref()).collect()
    }
}

/// Builds the `WHERE` clause of a filter over `orders o`.
fn filter_clause(s: &mut Session, filter: &OrderFilter, params: &mut Params) -> Result<String> {
    let mut clauses: Vec<String> = Vec::new();
    if let Some(status) = filter.status {
        clauses.push(format!("o.status = {}", params.push(status.as_str())));
    }
    if let Some(customer) = &filter.customer {
        let id = customers::get(s, customer)?.id;
        clauses.push(format!("o.customer_id = {}", params.push(id.get())));
    }
    if let Some(since) = filter.since {
        clauses.push(format!("o.created_at >= {}", params.push(since.millis())));
    }
    if let Some(until) = filter.until {
        clauses.push(format!("o.created_at < {}", params.push(until.millis())));
    }
    if let Some(after) = filter.after {
        let op = if filter.newest_first { "<" } else { ">" };
        clauses.push(format!("o.id {op} {}", params.push(after.get())));
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let p = params.push(like_pattern(search.trim()));
        clauses.push(format!(
            "(oms_fold(o.idempotency_key) LIKE {p} ESCAPE '\\'
              OR oms_fold(o.tracking_code) LIKE {p} ESCAPE '\\'
              OR EXISTS (SELECT 1 FROM customers c2 WHERE c2.id = o.customer_id
                         AND (oms_fold(c2.name) LIKE {p} ESCAPE '\\'
                              OR oms_fold(c2.email) LIKE {p} ESCAPE '\\'))
              OR EXISTS (SELECT 1 FROM order_items i2 WHERE i2.order_id = o.id
                         AND (oms_fold(i2.sku) LIKE {p} ESCAPE '\\'
                              OR oms_fold(i2.name) LIKE {p} ESCAPE '\\')))"
        ));
    }
    Ok(if clauses.is_empty() {
        "true".to_string()
    } else {
        clauses.join(" AND ")
    })
}

for_conn_and_tx!(OrderReads {
    /// An order with its items.
    fn order(&self, id: OrderId) -> Result<Order> {
        get_order(&mut self.session(), id)
    }

    /// An order by its public tracking code.
    fn order_by_tracking_code(&self, code: &str) -> Result<Order> {
        let rows = self.session().query(
            &format!(
                "SELECT {ORDER_COLUMNS}, {ITEM_COLUMNS} FROM orders o
                 LEFT JOIN order_items i ON i.order_id = o.id
                 WHERE o.tracking_code = $1 ORDER BY i.line"
            ),
            &[&code],
        )?;
        orders_from_rows(&rows)?
            .pop()
            .ok_or_else(|| Error::not_found("tracking code", code))
    }

    /// Orders matching the filter, ordered by id (the newest first when the
    /// filter says so), with their items: one statement, one snapshot.
    fn orders(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        let mut s = self.session();
        let mut params = Params::default();
        let clause = filter_clause(&mut s, filter, &mut params)?;
        let limit = match filter.limit {
            Some(l) => params.push(crate::store::postgres::count(l)),
            None => "ALL".to_string(),
        };
        let direction = if filter.newest_first { "DESC" } else { "ASC" };
        let rows = s.query(
            &format!(
                "WITH page AS (SELECT * FROM orders o WHERE {clause}
                               ORDER BY o.id {direction} LIMIT {limit})
                 SELECT {ORDER_COLUMNS}, {ITEM_COLUMNS} FROM page o
                 LEFT JOIN order_items i ON i.order_id = o.id
                 ORDER BY o.id {direction}, i.line"
            ),
            &params.refs(),
        )?;
        orders_from_rows(&rows)
    }

    /// Streams one row per order item for the CSV export, ordered by order
    /// id and line, in bounded memory: batches of [`EXPORT_BATCH`] orders,
    /// each read by one statement before its rows are handed to `f`. The
    /// export covers the orders that exist when it starts.
    fn for_each_export_row(
        &self,
        filter: &OrderFilter,
        f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()> {
        let mut params = Params::default();
        let clause = filter_clause(&mut self.session(), filter, &mut params)?;
        let last_id: i64 = self
            .session()
            .query_one("SELECT COALESCE(MAX(id), 0) FROM orders", &[])?
            .get(0);
        let after_at = params.values.len() + 1;
        let sql = format!(
            "SELECT o.id, COALESCE(o.idempotency_key, ''), o.created_at, o.status, o.customer_id,
                    c.email, c.name, i.sku, i.name, i.quantity, i.unit_price, o.total, o.currency
             FROM orders o
             JOIN customers c ON c.id = o.customer_id
             JOIN order_items i ON i.order_id = o.id
             WHERE o.id IN (SELECT o.id FROM orders o
                            WHERE {clause} AND o.id > ${after_at} AND o.id <= ${}
                            ORDER BY o.id LIMIT ${})
             ORDER BY o.id, i.line",
            after_at + 1,
            after_at + 2
        );
        let mut remaining = filter.limit.unwrap_or(u64::MAX);
        let mut after = 0_i64;
        let mut currency = self.stored_currency();
        while remaining > 0 {
            let take = remaining.min(EXPORT_BATCH);
            let take_sql = crate::store::postgres::count(take);
            let mut refs = params.refs();
            refs.push(&after);
            refs.push(&last_id);
            refs.push(&take_sql);
            let rows = self.session().query(&sql, &refs)?;
            let mut batch: Vec<OrderExportRow> = Vec::with_capacity(rows.len());
            for r in &rows {
                let code: String = r.try_get(12).map_err(column)?;
                if code != currency.code() {
                    currency = Currency::parse(&code)?;
                }
                let quantity: i64 = r.try_get(9).map_err(column)?;
                let unit_price: i64 = r.try_get(10).map_err(column)?;
                batch.push(OrderExportRow {
                    order_id: OrderId(r.try_get(0).map_err(column)?),
                    order_ref: r.try_get(1).map_err(column)?,
                    created_at: Timestamp::from_millis(r.try_get(2).map_err(column)?),
                    status: parse_status(&r.try_get::<_, String>(3).map_err(column)?)?,
                    customer_id: CustomerId(r.try_get(4).map_err(column)?),
                    customer_email: r.try_get(5).map_err(column)?,
                    customer_name: r.try_get(6).map_err(column)?,
                    sku: r.try_get(7).map_err(column)?,
                    product_name: r.try_get(8).map_err(column)?,
                    quantity,
                    unit_price: currency.from_minor(unit_price),
                    line_total: currency.from_minor(unit_price.saturating_mul(quantity)),
                    order_total: currency.from_minor(r.try_get(11).map_err(column)?),
                    currency,
                });
            }
            drop(rows);
            let Some(last) = batch.last().map(|r| r.order_id.get()) else {
                break;
            };
            let mut orders = 0_u64;
            let mut previous = None;
            for row in batch {
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
});
