//! An order after placement: item edits (re-reserving only the
//! difference), the status machine's moves with their stock effects,
//! removal, and expiry of stale PENDING orders.

use std::collections::HashMap;

use rusqlite::params;
use serde_json::json;

use super::get_order;
use crate::status::{StockEffect, Transition};
use crate::store::ExpireOutcome;
use crate::store::order_rules as rules;
use crate::store::sqlite::Tx;
use crate::store::sqlite::inventory::Reason;
use crate::{Error, ItemRequest, Order, OrderId, ProductId, Result, Status, Timestamp};

impl Tx<'_> {
    pub(super) fn transition(
        &self,
        id: OrderId,
        to: Status,
        expected_version: Option<i64>,
        reason: Option<&str>,
    ) -> Result<Order> {
        self.atomic(|| {
            let before = get_order(self.conn, id)?;
            rules::check_version(&before, expected_version)?;
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

    /// Replaces the items of a PENDING order, reserving or releasing only
    /// the difference. Prices of products already on the order are kept.
    pub(super) fn edit_items(
        &self,
        id: OrderId,
        items: &[ItemRequest],
        expected_version: Option<i64>,
    ) -> Result<Order> {
        self.atomic(|| {
            let before = get_order(self.conn, id)?;
            rules::check_version(&before, expected_version)?;
            if before.status != Status::Pending {
                return Err(Error::Conflict(format!(
                    "order {id} is {}; only PENDING orders can be edited",
                    before.status
                )));
            }
            if before.idempotency_key.is_some() {
                // A replay of the key must keep answering the order as it
                // was placed: keep that answer before the items change.
                let answer = self.first_answer(&before)?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO first_answers (order_id, answer) VALUES (?1, ?2)
                         ON CONFLICT (order_id) DO NOTHING",
                    )?
                    .execute(params![id.get(), answer])?;
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
            let total = rules::total(self.currency, &lines, &kept_prices)?;
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

    /// Deletes a PENDING (its stock is released) or CANCELLED order. Paid
    /// and fulfilled orders are records of money and are kept.
    pub(super) fn remove(&self, id: OrderId) -> Result<Order> {
        self.atomic(|| {
            let order = get_order(self.conn, id)?;
            if crate::store::sqlite::payments::count_for_order(self.conn, id)? > 0 {
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
    pub(super) fn expire(&self, cutoff: Timestamp) -> Result<ExpireOutcome> {
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
