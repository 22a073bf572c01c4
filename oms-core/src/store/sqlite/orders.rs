//! Orders: placement, edits, status changes, removal, expiry, listing and
//! the streaming export.
//!
//! Placement is all-or-nothing: every line is checked and reserved inside
//! one SAVEPOINT of a `BEGIN IMMEDIATE` transaction, and any failure rolls
//! all of them back and reports every failing line. The order, its items,
//! the reservations and their ledger rows, the change-log row and the
//! notification outbox row commit together or not at all.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use serde_json::json;

use super::inventory::Reason;
use super::{Access, Tx, customers, like_pattern, products};
use crate::status::{StockEffect, Transition};
use crate::store::{EXPORT_BATCH, ExpireOutcome, MAX_LINES, OrderReads, OrderWrites, PlaceOutcome};
use crate::{
    Currency, CustomerId, Error, ItemRequest, LineFailure, NewOrder, Order, OrderExportRow,
    OrderFilter, OrderId, OrderItem, Product, ProductId, ProductRef, Result, Sku, Status,
    Timestamp,
};

const ORDER_COLUMNS: &str = "o.id, o.customer_id, o.status, o.total, o.currency, \
     o.payment_collected, o.tracking_code, o.idempotency_key, o.version, o.created_at, o.updated_at";

fn parse_status(text: &str) -> rusqlite::Result<Status> {
    text.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn order_from_row(r: &Row<'_>) -> rusqlite::Result<Order> {
    let currency_code: String = r.get(4)?;
    let currency = Currency::parse(&currency_code).unwrap_or(Currency::USD);
    Ok(Order {
        id: OrderId(r.get(0)?),
        customer_id: CustomerId(r.get(1)?),
        status: parse_status(&r.get::<_, String>(2)?)?,
        items: Vec::new(),
        total: currency.from_minor(r.get(3)?),
        currency,
        payment_collected: r.get(5)?,
        tracking_code: r.get(6)?,
        idempotency_key: r.get(7)?,
        version: r.get(8)?,
        created_at: Timestamp::from_millis(r.get(9)?),
        updated_at: Timestamp::from_millis(r.get(10)?),
    })
}

/// An item from `product_id, sku, name, unit_price, quantity` at `first`.
fn item_from_row(r: &Row<'_>, first: usize, currency: Currency) -> rusqlite::Result<OrderItem> {
    let unit_price = currency.from_minor(r.get(first + 3)?);
    let quantity: i64 = r.get(first + 4)?;
    Ok(OrderItem {
        product_id: ProductId(r.get(first)?),
        sku: Sku::from_stored(r.get(first + 1)?),
        name: r.get(first + 2)?,
        unit_price,
        quantity,
        line_total: currency.from_minor(unit_price.minor().saturating_mul(quantity)),
    })
}

const ITEMS_OF_ORDER: &str = "SELECT product_id, sku, name, unit_price, quantity FROM order_items
     WHERE order_id = ?1 ORDER BY line";

fn load_items(conn: &Connection, order: &mut Order) -> Result<()> {
    let mut stmt = conn.prepare_cached(ITEMS_OF_ORDER)?;
    let currency = order.currency;
    let items = stmt.query_map([order.id.get()], |r| item_from_row(r, 0, currency))?;
    order.items = items.collect::<rusqlite::Result<_>>()?;
    Ok(())
}

/// Loads the items of a page of orders with one statement.
fn load_page_items(conn: &Connection, orders: &mut [Order]) -> Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let index: HashMap<i64, usize> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.get(), i))
        .collect();
    let ids = serde_json::to_string(&index.keys().collect::<Vec<_>>())
        .map_err(|e| Error::Database(format!("cannot encode order ids: {e}")))?;
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, product_id, sku, name, unit_price, quantity FROM order_items
         WHERE order_id IN (SELECT value FROM json_each(?1)) ORDER BY order_id, line",
    )?;
    let mut rows = stmt.query([ids])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if let Some(&i) = index.get(&id) {
            let currency = orders[i].currency;
            orders[i].items.push(item_from_row(r, 1, currency)?);
        }
    }
    Ok(())
}

pub(super) fn find_order(conn: &Connection, id: OrderId) -> Result<Option<Order>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = ?1"
    ))?;
    let Some(mut order) = stmt.query_row([id.get()], order_from_row).optional()? else {
        return Ok(None);
    };
    load_items(conn, &mut order)?;
    Ok(Some(order))
}

fn get_order(conn: &Connection, id: OrderId) -> Result<Order> {
    find_order(conn, id)?.ok_or_else(|| Error::not_found("order", id))
}

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

/// A requested line resolved to a product, quantities of repeated products
/// summed (so two lines of one SKU are checked against their sum).
struct Line {
    product: Product,
    quantity: i64,
}

impl Tx<'_> {
    /// Resolves and merges requested lines. Unknown products become
    /// failures; the caller decides what else fails.
    fn resolve_lines(&self, items: &[ItemRequest]) -> Result<(Vec<Line>, Vec<LineFailure>)> {
        if items.is_empty() {
            return Err(Error::invalid("an order needs at least one item"));
        }
        if items.len() > MAX_LINES {
            return Err(Error::invalid(format!(
                "an order may have at most {MAX_LINES} lines"
            )));
        }
        let mut lines: Vec<Line> = Vec::new();
        let mut index: HashMap<ProductId, usize> = HashMap::new();
        let mut failures: Vec<LineFailure> = Vec::new();
        for item in items {
            match products::find(self.conn, &item.product, self.currency)? {
                None => failures.push(LineFailure {
                    product: item.product.to_string(),
                    requested: item.quantity.get(),
                    reason: "unknown product".to_string(),
                }),
                Some(product) => match index.get(&product.id) {
                    Some(&i) => {
                        lines[i].quantity = lines[i]
                            .quantity
                            .checked_add(item.quantity.get())
                            .ok_or_else(|| Error::invalid("quantity too large"))?;
                    }
                    None => {
                        index.insert(product.id, lines.len());
                        lines.push(Line {
                            product,
                            quantity: item.quantity.get(),
                        });
                    }
                },
            }
        }
        Ok((lines, failures))
    }

    fn place_as(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.atomic(|| {
            if let Some(key) = &new.idempotency_key {
                check_idempotency_key(key)?;
            }
            let customer = customers::get(self.conn, &new.customer)?;
            let (lines, mut failures) = self.resolve_lines(&new.items)?;
            let fingerprint = fingerprint(customer.id, new.paid, &lines, &failures);

            if let Some(key) = &new.idempotency_key {
                let existing: Option<(i64, String, String)> = self
                    .conn
                    .prepare_cached(
                        "SELECT order_id, fingerprint, answer FROM idempotency_keys
                         WHERE scope = ?1 AND key = ?2",
                    )?
                    .query_row(params![self.actor.label(), key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?;
                if let Some((order_id, stored, answer)) = existing {
                    if stored == fingerprint {
                        let order = get_order(self.conn, OrderId(order_id))?;
                        // Keys copied from before answers were kept may
                        // have none: the order as it is stands in.
                        let placed_json = if answer.is_empty() {
                            to_json(&order)?
                        } else {
                            answer
                        };
                        return Ok(PlaceOutcome {
                            order,
                            replayed: true,
                            placed_json,
                        });
                    }
                    return Err(Error::IdempotencyMismatch {
                        key: key.clone(),
                        order_id,
                    });
                }
            }

            // Compute line totals before touching stock.
            let mut total = self.currency.from_minor(0);
            for line in &lines {
                let line_total = line
                    .product
                    .price
                    .checked_mul(line.quantity)
                    .ok_or_else(|| Error::invalid("order total is too large"))?;
                total = total
                    .checked_add(line_total)
                    .ok_or_else(|| Error::invalid("order total is too large"))?;
            }

            let (order_id, tracking_code) = self.insert_order(customer.id, status, total, new)?;
            let reserve = status != Status::Cancelled;
            for line in &lines {
                if reserve
                    && !self.try_reserve(
                        line.product.id,
                        line.quantity,
                        order_id,
                        Reason::Reserve,
                    )?
                {
                    failures.push(self.stock_failure(&line.product, line.quantity)?);
                }
            }
            if !failures.is_empty() {
                return Err(Error::InsufficientStock { lines: failures });
            }
            self.insert_items(order_id, &lines, &HashMap::new())?;
            if status == Status::Fulfilled {
                for line in &lines {
                    self.ship(line.product.id, line.quantity, order_id)?;
                }
            }
            // Built from what was just written rather than read back: this
            // is the hot path of the daemon.
            let order = Order {
                id: order_id,
                customer_id: customer.id,
                status,
                items: lines
                    .iter()
                    .map(|l| OrderItem {
                        product_id: l.product.id,
                        sku: l.product.sku.clone(),
                        name: l.product.name.clone(),
                        unit_price: l.product.price,
                        quantity: l.quantity,
                        line_total: self
                            .currency
                            .from_minor(l.product.price.minor().saturating_mul(l.quantity)),
                    })
                    .collect(),
                total,
                currency: self.currency,
                payment_collected: matches!(status, Status::Paid | Status::Fulfilled),
                tracking_code,
                idempotency_key: new.idempotency_key.clone(),
                version: 1,
                created_at: self.now,
                updated_at: self.now,
            };
            let placed_json = to_json(&order)?;
            self.log_change_json(
                "order.placed",
                "order",
                order_id.get(),
                Some(customer.id),
                &placed_json,
            )?;
            self.enqueue_notification(&order, Some(&customer.email), None)?;
            if let Some(key) = &new.idempotency_key {
                self.conn
                    .prepare_cached(
                        "INSERT INTO idempotency_keys (scope, key, order_id, fingerprint, answer)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        self.actor.label(),
                        key,
                        order_id.get(),
                        fingerprint,
                        placed_json
                    ])?;
            }
            Ok(PlaceOutcome {
                order,
                replayed: false,
                placed_json,
            })
        })
    }

    fn insert_order(
        &self,
        customer: CustomerId,
        status: Status,
        total: crate::Money,
        new: &NewOrder,
    ) -> Result<(OrderId, String)> {
        let paid = matches!(status, Status::Paid | Status::Fulfilled);
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO orders (customer_id, status, total, currency, payment_collected,
                     tracking_code, idempotency_key, version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         printf('TRK%010X%s', (SELECT COALESCE(MAX(id), 0) + 1 FROM orders),
                                upper(hex(randomblob(8)))),
                         ?6, 1, ?7, ?7)
                 RETURNING id, tracking_code",
            )?
            .query_row(
                params![
                    customer.get(),
                    status.as_str(),
                    total.minor(),
                    self.currency.code(),
                    paid,
                    new.idempotency_key,
                    self.now.millis()
                ],
                |r| Ok((OrderId(r.get(0)?), r.get(1)?)),
            )?)
    }

    /// Writes the lines; `kept_prices` keeps the snapshot price of products
    /// already on the order (edits), others take the current price.
    fn insert_items(
        &self,
        order: OrderId,
        lines: &[Line],
        kept_prices: &HashMap<ProductId, i64>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO order_items (order_id, line, product_id, sku, name, unit_price, quantity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (i, line) in lines.iter().enumerate() {
            let price = kept_prices
                .get(&line.product.id)
                .copied()
                .unwrap_or(line.product.price.minor());
            stmt.execute(params![
                order.get(),
                i as i64 + 1,
                line.product.id.get(),
                line.product.sku.as_str(),
                line.product.name,
                price,
                line.quantity
            ])?;
        }
        Ok(())
    }

    fn stock_failure(&self, product: &Product, requested: i64) -> Result<LineFailure> {
        let now = products::get(self.conn, &ProductRef::Id(product.id), self.currency)?;
        let reason = if !now.active {
            "product is inactive".to_string()
        } else {
            format!("only {} available", now.stock_available)
        };
        Ok(LineFailure {
            product: product.sku.to_string(),
            requested,
            reason,
        })
    }

    fn transition(
        &self,
        id: OrderId,
        to: Status,
        expected_version: Option<i64>,
        reason: Option<&str>,
    ) -> Result<Order> {
        self.atomic(|| {
            let before = get_order(self.conn, id)?;
            check_version(&before, expected_version)?;
            let effect = match before.status.transition(to)? {
                Transition::NoOp => return Ok(before),
                Transition::Move(effect) => effect,
            };
            for item in &before.items {
                match effect {
                    StockEffect::None => {}
                    StockEffect::Release => {
                        self.release(item.product_id, item.quantity, id, Reason::Release)?
                    }
                    StockEffect::Ship => self.ship(item.product_id, item.quantity, id)?,
                }
            }
            let changed = self
                .conn
                .prepare_cached(
                    "UPDATE orders SET status = ?2, version = version + 1, updated_at = ?3,
                         payment_collected = CASE WHEN ?2 = 'PAID' THEN 1 ELSE payment_collected END
                     WHERE id = ?1 AND version = ?4",
                )?
                .execute(params![
                    id.get(),
                    to.as_str(),
                    self.now.millis(),
                    before.version
                ])?;
            if changed != 1 {
                return Err(Error::Database(format!(
                    "order {id} changed under a write lock"
                )));
            }
            let order = get_order(self.conn, id)?;
            let mut data = json!({
                "from": before.status,
                "to": order.status,
                "version": order.version,
                "customer_id": order.customer_id,
            });
            if let Some(reason) = reason {
                data["reason"] = json!(reason);
            }
            self.log_change(
                "order.status_changed",
                "order",
                id.get(),
                Some(order.customer_id),
                &data,
            )?;
            self.enqueue_notification(&order, None, reason)?;
            Ok(order)
        })
    }
}

// Tracking codes are `TRK`, a hex counter that grows with every order, and
// 64 random bits. The counter keeps the unique index appending at its end (a
// random code dirtied a random index page per order, which showed as WAL
// volume); the random part keeps codes unguessable.

fn to_json(order: &Order) -> Result<String> {
    serde_json::to_string(order)
        .map_err(|e| Error::Database(format!("cannot encode order {}: {e}", order.id)))
}

fn check_version(order: &Order, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(v) if v != order.version => Err(Error::StaleVersion {
            order_id: order.id.get(),
            expected: v,
            current: order.version,
        }),
        _ => Ok(()),
    }
}

/// Keys are refused, not trimmed, when they start or end with whitespace:
/// every face trims what it reads (the `Idempotency-Key` header, the CLI
/// flag, CSV cells), so a stored key with surrounding spaces could never be
/// matched again and an order export would re-import as new orders.
fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "idempotency key must be 1 to 255 printable characters",
        ));
    }
    if key.trim() != key {
        return Err(Error::invalid(
            "idempotency key must not start or end with whitespace",
        ));
    }
    Ok(())
}

/// What an idempotency key promises: the same customer, the same
/// quantities of the same products (order of lines does not matter) and the
/// same payment flag.
fn fingerprint(
    customer: CustomerId,
    paid: bool,
    lines: &[Line],
    failures: &[LineFailure],
) -> String {
    let mut parts: Vec<String> = lines
        .iter()
        .map(|l| format!("{}*{}", l.product.id, l.quantity))
        .collect();
    parts.extend(
        failures
            .iter()
            .map(|f| format!("?{}*{}", f.product, f.requested)),
    );
    parts.sort();
    let paid = if paid { ":paid" } else { "" };
    format!("c{customer}{paid}:{}", parts.join(","))
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

impl OrderWrites for Tx<'_> {
    /// Places an order: reserves every line or nothing. With an idempotency
    /// key already used by this actor, returns the original order when the
    /// contents match and refuses otherwise.
    fn place_order(&self, new: &NewOrder) -> Result<PlaceOutcome> {
        let initial = if new.paid {
            Status::Paid
        } else {
            Status::Pending
        };
        self.place_as(new, initial)
    }

    /// Places an order that ends in `status` (CSV import of history): a
    /// CANCELLED one reserves nothing, a FULFILLED one is shipped at once.
    fn place_order_with_status(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.place_as(new, status)
    }

    /// Replaces the items of a PENDING order, reserving or releasing only
    /// the difference. Prices of products already on the order are kept.
    fn edit_order(
        &self,
        id: OrderId,
        items: &[ItemRequest],
        expected_version: Option<i64>,
    ) -> Result<Order> {
        self.atomic(|| {
            let before = get_order(self.conn, id)?;
            check_version(&before, expected_version)?;
            if before.status != Status::Pending {
                return Err(Error::Conflict(format!(
                    "order {id} is {}; only PENDING orders can be edited",
                    before.status
                )));
            }
            let (lines, mut failures) = self.resolve_lines(items)?;
            let old: HashMap<ProductId, i64> =
                before.items.iter().map(|i| (i.product_id, i.quantity)).collect();
            let kept_prices: HashMap<ProductId, i64> =
                before.items.iter().map(|i| (i.product_id, i.unit_price.minor())).collect();
            for line in &lines {
                let delta = line.quantity - old.get(&line.product.id).copied().unwrap_or(0);
                if delta > 0 {
                    if !self.try_reserve(line.product.id, delta, id, Reason::Edit)? {
                        failures.push(self.stock_failure(&line.product, delta)?);
                    }
                } else if delta < 0 {
                    self.release(line.product.id, -delta, id, Reason::Edit)?;
                }
            }
            for item in &before.items {
                if !lines.iter().any(|l| l.product.id == item.product_id) {
                    self.release(item.product_id, item.quantity, id, Reason::Edit)?;
                }
            }
            if !failures.is_empty() {
                return Err(Error::InsufficientStock { lines: failures });
            }
            let mut total = self.currency.from_minor(0);
            for line in &lines {
                let price = kept_prices.get(&line.product.id).copied().unwrap_or(line.product.price.minor());
                total = self
                    .currency
                    .from_minor(price)
                    .checked_mul(line.quantity)
                    .and_then(|t| total.checked_add(t))
                    .ok_or_else(|| Error::invalid("order total is too large"))?;
            }
            self.conn
                .prepare_cached("DELETE FROM order_items WHERE order_id = ?1")?
                .execute([id.get()])?;
            self.insert_items(id, &lines, &kept_prices)?;
            self.conn
                .prepare_cached(
                    "UPDATE orders SET total = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id.get(), total.minor(), self.now.millis()])?;
            let order = get_order(self.conn, id)?;
            self.log_change("order.updated", "order", id.get(), Some(order.customer_id), &order)?;
            Ok(order)
        })
    }

    /// Moves an order to `to` following the status machine, applying its
    /// stock effect. Moving to the current status is a no-op success.
    fn set_status(&self, id: OrderId, to: Status, expected_version: Option<i64>) -> Result<Order> {
        self.transition(id, to, expected_version, None)
    }

    /// Deletes a PENDING (its stock is released) or CANCELLED order. Paid
    /// and fulfilled orders are records of money and are kept.
    fn remove_order(&self, id: OrderId) -> Result<Order> {
        self.atomic(|| {
            let order = get_order(self.conn, id)?;
            if super::payments::count_for_order(self.conn, id)? > 0 {
                return Err(Error::Conflict(format!(
                    "order {id} has payments (see `oms payment list --order {id}`) and is kept as a record of money; it cannot be removed"
                )));
            }
            match order.status {
                Status::Pending => {
                    for item in &order.items {
                        self.release(item.product_id, item.quantity, id, Reason::Release)?;
                    }
                }
                Status::Cancelled => {}
                Status::Paid => {
                    return Err(Error::Conflict(format!(
                        "order {id} is PAID and cannot be removed; cancel it first with `oms order cancel {id}`"
                    )));
                }
                Status::Fulfilled => {
                    return Err(Error::Conflict(format!(
                        "order {id} is FULFILLED and is kept as a record; it cannot be removed"
                    )));
                }
            }
            self.conn
                .prepare_cached("DELETE FROM orders WHERE id = ?1")?
                .execute([id.get()])?;
            self.log_change(
                "order.deleted",
                "order",
                id.get(),
                Some(order.customer_id),
                &json!({"status": order.status, "customer_id": order.customer_id}),
            )?;
            Ok(order)
        })
    }

    /// Cancels every PENDING order created before `cutoff`, releasing its
    /// stock.
    fn expire_pending(&self, cutoff: Timestamp) -> Result<ExpireOutcome> {
        self.atomic(|| {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached(
                    "SELECT id FROM orders WHERE status = 'PENDING' AND created_at < ?1 ORDER BY id",
                )?
                .query_map([cutoff.millis()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = ExpireOutcome::default();
            for id in ids {
                self.transition(OrderId(id), Status::Cancelled, None, Some("expired"))?;
                out.cancelled.push(OrderId(id));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::{
        Actor, CustomerRef, Db, Error, ItemRequest, NewCustomer, NewOrder, NewProduct, ProductRef,
        Quantity, Sku,
    };

    /// A shop with products A (1.25, 10 units) and B (3.00, 1 unit) and one
    /// customer, c@example.com.
    fn shop() -> Db {
        let store = Db::open_in_memory().unwrap();
        store
            .write(&Actor::cli(), |tx| {
                for (sku, price, stock) in [("A", "1.25", 10), ("B", "3.00", 1)] {
                    tx.add_product(&NewProduct {
                        sku: Sku::parse(sku)?,
                        name: format!("Product {sku}"),
                        price: tx.currency().parse_amount(price)?,
                        stock_on_hand: stock,
                        active: true,
                    })?;
                }
                tx.add_customer(&NewCustomer {
                    name: "C".into(),
                    email: "c@example.com".into(),
                    phone: None,
                })?;
                Ok(())
            })
            .unwrap();
        store
    }

    fn order(items: &[(&str, i64)], paid: bool) -> NewOrder {
        NewOrder {
            customer: CustomerRef::Email("c@example.com".into()),
            items: items
                .iter()
                .map(|&(sku, q)| ItemRequest {
                    product: ProductRef::parse(sku).unwrap(),
                    quantity: Quantity::new(q).unwrap(),
                })
                .collect(),
            paid,
            idempotency_key: Some(format!("{items:?}")),
        }
    }

    /// The order returned by placement is built in memory; it must be what
    /// reading it back gives.
    #[test]
    fn placed_order_equals_the_stored_one() {
        let store = shop();
        let new = order(&[("A", 2), ("B", 1), ("A", 1)], true);
        let placed = store
            .write(&Actor::cli(), |tx| tx.place_order(&new))
            .unwrap();
        assert_eq!(store.order(placed.order.id).unwrap(), placed.order);
        assert_eq!(
            placed.placed_json,
            serde_json::to_string(&placed.order).unwrap()
        );
        assert_eq!(placed.order.total.to_string(), "6.75");
    }

    /// A failed placement may have reserved some lines before it failed;
    /// a caller that ignores the error must not get that committed.
    #[test]
    fn an_ignored_failure_commits_nothing() {
        let store = shop();
        let before = store.last_seq().unwrap();
        let result = store.write(&Actor::cli(), |tx| {
            // A reserves, B fails: the placement fails after writing.
            let failed = tx.place_order(&order(&[("A", 1), ("B", 2)], false));
            assert!(matches!(failed, Err(Error::InsufficientStock { .. })));
            Ok(())
        });
        assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
        assert_eq!(store.last_seq().unwrap(), before);
        assert_eq!(
            store
                .product(&ProductRef::parse("A").unwrap())
                .unwrap()
                .stock_reserved,
            0
        );
        assert!(store.verify().unwrap().is_clean());
    }

    /// Reading orders one after another reuses the compiled items query;
    /// SQLite used to re-compile it for every new order id (see
    /// `Conn::setup`, query planner stability).
    #[test]
    fn reading_orders_does_not_recompile_the_items_query() {
        use crate::store::WriteConnection;
        use crate::store::sqlite::{Access, Conn};
        let mut conn = Conn::open_in_memory().unwrap();
        let mut ids = Vec::new();
        conn.transaction(&Actor::cli(), true, &mut |tx| {
            tx.add_product(&NewProduct {
                sku: Sku::parse("A")?,
                name: "Product A".into(),
                price: tx.currency().parse_amount("1.25")?,
                stock_on_hand: 10,
                active: true,
            })?;
            tx.add_customer(&NewCustomer {
                name: "C".into(),
                email: "c@example.com".into(),
                phone: None,
            })?;
            for n in 1..=3 {
                ids.push(tx.place_order(&order(&[("A", n)], false))?.order.id);
            }
            Ok(())
        })
        .unwrap();
        for id in &ids {
            assert_eq!(conn.order(*id).unwrap().id, *id);
        }
        let stmt = conn.sql().prepare_cached(super::ITEMS_OF_ORDER).unwrap();
        assert!(stmt.get_status(rusqlite::StatementStatus::Run) >= 3);
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
