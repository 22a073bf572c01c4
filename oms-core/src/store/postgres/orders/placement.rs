//! Placing an order: every line reserved or none, the idempotency key's
//! promise kept, the first answer recorded (as the SQLite backend's).

use std::collections::HashMap;

use super::get_order;
use crate::store::order_rules as rules;
use crate::store::postgres::{Access, Tx, customers, products};
use crate::store::{PlaceOutcome, Reason};
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
            products::find(&mut self.session(), product, self.currency)
        })
    }

    /// Reserves `(line index, product, quantity)` in product-id order (so
    /// two multi-line orders never wait for each other's rows in opposite
    /// orders), and returns the stock failures in line order.
    pub(super) fn reserve_lines(
        &self,
        wanted: &mut [(usize, &Product, i64)],
        order: OrderId,
        reason: Reason,
    ) -> Result<Vec<LineFailure>> {
        wanted.sort_by_key(|(_, product, _)| product.id);
        let mut failed: Vec<(usize, LineFailure)> = Vec::new();
        for &(line, product, quantity) in wanted.iter() {
            if !self.try_reserve(product.id, quantity, order, reason)? {
                failed.push((line, self.stock_failure(product, quantity)?));
            }
        }
        failed.sort_by_key(|(line, _)| *line);
        Ok(failed.into_iter().map(|(_, f)| f).collect())
    }

    pub(super) fn place_as(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.atomic(|| {
            if let Some(key) = &new.idempotency_key {
                rules::check_idempotency_key(key)?;
            }
            let customer = customers::get(&mut self.session(), &new.customer)?;
            let (lines, mut failures) = self.resolve_lines(&new.items)?;
            let fingerprint = rules::fingerprint(customer.id, new.paid, &lines, &failures);

            if let Some(key) = &new.idempotency_key {
                let existing = self.session().query_opt(
                    "SELECT id, request_fingerprint FROM orders
                     WHERE idempotency_scope = $1 AND idempotency_key = $2",
                    &[&self.actor.label(), key],
                )?;
                if let Some(row) = existing {
                    let (order_id, stored): (i64, Option<String>) = (row.get(0), row.get(1));
                    if stored.as_deref() == Some(fingerprint.as_str()) {
                        let order = get_order(&mut self.session(), OrderId(order_id))?;
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
            if status != Status::Cancelled {
                let mut wanted: Vec<(usize, &Product, i64)> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i, &l.product, l.quantity))
                    .collect();
                failures.extend(self.reserve_lines(&mut wanted, order_id, Reason::Reserve)?);
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
    /// with the status it was placed in, version 1 and its placement time.
    pub(super) fn first_answer(&self, order: &Order) -> Result<String> {
        let row = self.session().query_one(
            "SELECT o.placed_status, a.answer
             FROM orders o LEFT JOIN first_answers a ON a.order_id = o.id
             WHERE o.id = $1",
            &[&order.id.get()],
        )?;
        let (placed_status, kept): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        rules::first_answer(order, placed_status, kept)
    }

    /// Inserts the order row. Its tracking code is `TRK`, the order id in
    /// hex (so the unique index grows at its end) and 64 random bits (from
    /// a version-4 UUID, skipping its fixed version and variant bits).
    fn insert_order(
        &self,
        customer: CustomerId,
        status: Status,
        total: crate::Money,
        new: &NewOrder,
        fingerprint: &str,
    ) -> Result<(OrderId, String)> {
        let paid = matches!(status, Status::Paid | Status::Fulfilled);
        let row = self.session().query_one(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('orders', 'id')) AS id,
                               replace(gen_random_uuid()::text, '-', '') AS r)
             INSERT INTO orders (id, customer_id, status, total, currency, payment_collected,
                 tracking_code, idempotency_scope, idempotency_key, request_fingerprint,
                 placed_status, version, created_at, updated_at)
             SELECT n.id, $1, $2, $3, $4, $5,
                    'TRK' || lpad(upper(to_hex(n.id)), 10, '0')
                          || upper(substr(n.r, 1, 12) || substr(n.r, 18, 4)),
                    $6, $7, $8, CASE WHEN $7::text IS NULL THEN NULL ELSE $2 END, 1, $9, $9
             FROM n
             RETURNING id, tracking_code",
            &[
                &customer.get(),
                &status.as_str(),
                &total.minor(),
                &self.currency.code(),
                &paid,
                &self.actor.label(),
                &new.idempotency_key,
                &fingerprint,
                &self.now.millis(),
            ],
        )?;
        Ok((OrderId(row.get(0)), row.get(1)))
    }

    /// Writes the lines; `kept_prices` keeps the snapshot price of products
    /// already on the order (edits), others take the current price.
    pub(super) fn insert_items(
        &self,
        order: OrderId,
        lines: &[Line],
        kept_prices: &HashMap<ProductId, i64>,
    ) -> Result<()> {
        // All lines in one statement (one round trip), as arrays.
        let mut product_ids = Vec::with_capacity(lines.len());
        let mut skus = Vec::with_capacity(lines.len());
        let mut names = Vec::with_capacity(lines.len());
        let mut prices = Vec::with_capacity(lines.len());
        let mut quantities = Vec::with_capacity(lines.len());
        for line in lines {
            product_ids.push(line.product.id.get());
            skus.push(line.product.sku.as_str());
            names.push(line.product.name.as_str());
            prices.push(
                kept_prices
                    .get(&line.product.id)
                    .copied()
                    .unwrap_or(line.product.price.minor()),
            );
            quantities.push(line.quantity);
        }
        self.session().execute(
            "INSERT INTO order_items (order_id, line, product_id, sku, name, unit_price, quantity)
             SELECT $1, l.line, l.product_id, l.sku, l.name, l.unit_price, l.quantity
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
                  WITH ORDINALITY AS l(product_id, sku, name, unit_price, quantity, line)",
            &[
                &order.get(),
                &product_ids,
                &skus,
                &names,
                &prices,
                &quantities,
            ],
        )?;
        Ok(())
    }

    pub(super) fn stock_failure(&self, product: &Product, requested: i64) -> Result<LineFailure> {
        let now = products::get(
            &mut self.session(),
            &ProductRef::Id(product.id),
            self.currency,
        )?;
        Ok(rules::stock_failure(product, &now, requested))
    }
}
