//! Placing an order: every line reserved or none, the idempotency key's
//! promise kept, the first answer recorded.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::get_order;
use crate::store::sqlite::inventory::Reason;
use crate::store::sqlite::{Tx, customers, products};
use crate::store::{MAX_LINES, PlaceOutcome};
use crate::{
    CustomerId, Error, ItemRequest, LineFailure, NewOrder, Order, OrderId, OrderItem, Product,
    ProductId, ProductRef, Result, Status,
};

/// A requested line resolved to a product, quantities of repeated products
/// summed (so two lines of one SKU are checked against their sum).
pub(super) struct Line {
    pub(super) product: Product,
    pub(super) quantity: i64,
}

impl Tx<'_> {
    /// Resolves and merges requested lines. Unknown products become
    /// failures; the caller decides what else fails.
    pub(super) fn resolve_lines(
        &self,
        items: &[ItemRequest],
    ) -> Result<(Vec<Line>, Vec<LineFailure>)> {
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

    pub(super) fn place_as(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.atomic(|| {
            if let Some(key) = &new.idempotency_key {
                check_idempotency_key(key)?;
            }
            let customer = customers::get(self.conn, &new.customer)?;
            let (lines, mut failures) = self.resolve_lines(&new.items)?;
            let fingerprint = fingerprint(customer.id, new.paid, &lines, &failures);

            if let Some(key) = &new.idempotency_key {
                let existing: Option<(i64, Option<String>)> = self
                    .conn
                    .prepare_cached(
                        "SELECT id, request_fingerprint FROM orders
                         WHERE idempotency_scope = ?1 AND idempotency_key = ?2",
                    )?
                    .query_row(params![self.actor.label(), key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                if let Some((order_id, stored)) = existing {
                    if stored.as_deref() == Some(fingerprint.as_str()) {
                        let order = get_order(self.conn, OrderId(order_id))?;
                        let placed_json = self.first_answer(&order)?;
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

            let (order_id, tracking_code) =
                self.insert_order(customer.id, status, total, new, &fingerprint)?;
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
            Ok(PlaceOutcome {
                order,
                replayed: false,
                placed_json,
            })
        })
    }

    /// The first answer to a keyed placement, for a replay: kept whole
    /// once the order's items were edited, otherwise the order as it is
    /// with the status it was placed in, version 1 and its placement time
    /// (nothing else of a placement's answer changes).
    pub(super) fn first_answer(&self, order: &Order) -> Result<String> {
        let (placed_status, kept): (Option<String>, Option<String>) = self
            .conn
            .prepare_cached(
                "SELECT o.placed_status, a.answer
                 FROM orders o LEFT JOIN first_answers a ON a.order_id = o.id
                 WHERE o.id = ?1",
            )?
            .query_row([order.id.get()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if let Some(answer) = kept {
            return Ok(answer);
        }
        let mut first = order.clone();
        if let Some(status) = placed_status {
            first.status = status.parse()?;
            first.payment_collected = matches!(first.status, Status::Paid | Status::Fulfilled);
        }
        first.version = 1;
        first.updated_at = first.created_at;
        to_json(&first)
    }

    fn insert_order(
        &self,
        customer: CustomerId,
        status: Status,
        total: crate::Money,
        new: &NewOrder,
        fingerprint: &str,
    ) -> Result<(OrderId, String)> {
        let paid = matches!(status, Status::Paid | Status::Fulfilled);
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO orders (customer_id, status, total, currency, payment_collected,
                     tracking_code, idempotency_scope, idempotency_key, request_fingerprint,
                     placed_status, version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5,
                         printf('TRK%010X%s', (SELECT COALESCE(MAX(id), 0) + 1 FROM orders),
                                upper(hex(randomblob(8)))),
                         ?6, ?7, ?8, CASE WHEN ?7 IS NULL THEN NULL ELSE ?2 END, 1, ?9, ?9)
                 RETURNING id, tracking_code",
            )?
            .query_row(
                params![
                    customer.get(),
                    status.as_str(),
                    total.minor(),
                    self.currency.code(),
                    paid,
                    self.actor.label(),
                    new.idempotency_key,
                    fingerprint,
                    self.now.millis()
                ],
                |r| Ok((OrderId(r.get(0)?), r.get(1)?)),
            )?)
    }

    /// Writes the lines; `kept_prices` keeps the snapshot price of products
    /// already on the order (edits), others take the current price.
    pub(super) fn insert_items(
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

    pub(super) fn stock_failure(&self, product: &Product, requested: i64) -> Result<LineFailure> {
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
}

// Tracking codes are `TRK`, a hex counter that grows with every order, and
// 64 random bits. The counter keeps the unique index appending at its end (a
// random code dirtied a random index page per order, which showed as WAL
// volume); the random part keeps codes unguessable.

fn to_json(order: &Order) -> Result<String> {
    serde_json::to_string(order)
        .map_err(|e| Error::Database(format!("cannot encode order {}: {e}", order.id)))
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
