//! Placing an order: every line reserved or none, the idempotency key's
//! promise kept, the first answer recorded.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::get_order;
use crate::store::PlaceOutcome;
use crate::store::order_rules as rules;
use crate::store::sqlite::inventory::Reason;
use crate::store::sqlite::{Tx, customers, products};
use crate::{
    CustomerId, Error, ItemRequest, LineFailure, NewOrder, Order, OrderId, Product, ProductId,
    ProductRef, Result, Status,
};

pub(super) use crate::store::order_rules::Line;

impl Tx<'_> {
    /// Resolves and merges requested lines. Unknown products become
    /// failures; the caller decides what else fails.
    pub(super) fn resolve_lines(
        &self,
        items: &[ItemRequest],
    ) -> Result<(Vec<Line>, Vec<LineFailure>)> {
        rules::resolve_lines(items, |product| {
            products::find(self.conn, product, self.currency)
        })
    }

    pub(super) fn place_as(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.atomic(|| {
            if let Some(key) = &new.idempotency_key {
                rules::check_idempotency_key(key)?;
            }
            let customer = customers::get(self.conn, &new.customer)?;
            let (lines, mut failures) = self.resolve_lines(&new.items)?;
            let fingerprint = rules::fingerprint(customer.id, new.paid, &lines, &failures);

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
            let total = rules::total(self.currency, &lines, &HashMap::new())?;

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
            let order = rules::Placed {
                id: order_id,
                customer: customer.id,
                status,
                lines: &lines,
                total,
                currency: self.currency,
                tracking_code,
                idempotency_key: new.idempotency_key.clone(),
                at: self.now,
            }
            .into_order();
            let placed_json = rules::order_json(&order)?;
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
        rules::first_answer(order, placed_status, kept)
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
        Ok(rules::stock_failure(product, &now, requested))
    }
}

// Tracking codes are `TRK`, a hex counter that grows with every order, and
// 64 random bits. The counter keeps the unique index appending at its end (a
// random code dirtied a random index page per order, which showed as WAL
// volume); the random part keeps codes unguessable.
