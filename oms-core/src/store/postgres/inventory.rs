//! Inventory: reservations, releases, shipments and the stock ledger, as
//! the SQLite backend's: every stock change is a guarded `UPDATE` whose
//! `WHERE` re-checks the condition (PostgreSQL re-evaluates it against the
//! newest row version under READ COMMITTED), then a check that exactly one
//! row changed, and a ledger row in the same transaction.

use super::{Access, Tx};
use crate::store::Reason;
use crate::{Error, OrderId, ProductId, Result};

impl Tx<'_> {
    /// Reserves `qty` units if that many are available and the product is
    /// active. Returns false (and changes nothing) otherwise.
    pub(crate) fn try_reserve(
        &self,
        product: ProductId,
        qty: i64,
        order: OrderId,
        reason: Reason,
    ) -> Result<bool> {
        if crate::controls::STOCK_GUARD {
            return self.broken_reserve(product, qty, order, reason);
        }
        // The guarded update and its ledger row in one statement (one round
        // trip): the row is written only when the guard let the update
        // through, so the count of ledger rows is the update's.
        let reserved = self.session().execute(
            "WITH reserved AS (
                 UPDATE products SET stock_reserved = stock_reserved + $1, updated_at = $3
                 WHERE id = $2 AND active AND stock_on_hand - stock_reserved >= $1
                 RETURNING id)
             INSERT INTO stock_movements
                 (product_id, delta_on_hand, delta_reserved, reason, order_id, at)
             SELECT id, 0, $1, $4, $5, $3 FROM reserved",
            &[
                &qty,
                &product.get(),
                &self.now.millis(),
                &reason.as_str(),
                &order.get(),
            ],
        )?;
        Ok(reserved == 1)
    }

    /// NEGATIVE CONTROL, used only in a `--features broken-stock-guard`
    /// build: reads the stock on another connection (the last committed
    /// state, missing the uncommitted jobs of the same group commit), then
    /// writes back an absolute value computed from that stale read.
    fn broken_reserve(
        &self,
        product: ProductId,
        qty: i64,
        order: OrderId,
        reason: Reason,
    ) -> Result<bool> {
        let mut stale = self.session().reconnect_elsewhere()?;
        let row = stale.query_one(
            "SELECT stock_on_hand, stock_reserved, active FROM products WHERE id = $1",
            &[&product.get()],
        )?;
        let (on_hand, reserved, active): (i64, i64, bool) = (row.get(0), row.get(1), row.get(2));
        if !active || on_hand - reserved < qty {
            return Ok(false);
        }
        self.session().execute(
            "UPDATE products SET stock_reserved = $1, updated_at = $3 WHERE id = $2",
            &[&(reserved + qty), &product.get(), &self.now.millis()],
        )?;
        self.ledger(product, 0, qty, reason, Some(order))?;
        Ok(true)
    }

    /// Gives `qty` reserved units back.
    pub(crate) fn release(
        &self,
        product: ProductId,
        qty: i64,
        order: OrderId,
        reason: Reason,
    ) -> Result<()> {
        let changed = self.session().execute(
            "UPDATE products SET stock_reserved = stock_reserved - $1, updated_at = $3
             WHERE id = $2 AND stock_reserved >= $1",
            &[&qty, &product.get(), &self.now.millis()],
        )?;
        expect_one(changed, product, "release")?;
        self.ledger(product, 0, -qty, reason, Some(order))
    }

    /// Ships `qty` reserved units: they leave on hand and reserved together.
    pub(crate) fn ship(&self, product: ProductId, qty: i64, order: OrderId) -> Result<()> {
        let changed = self.session().execute(
            "UPDATE products
             SET stock_on_hand = stock_on_hand - $1, stock_reserved = stock_reserved - $1,
                 updated_at = $3
             WHERE id = $2 AND stock_reserved >= $1 AND stock_on_hand >= $1",
            &[&qty, &product.get(), &self.now.millis()],
        )?;
        expect_one(changed, product, "ship")?;
        self.ledger(product, -qty, -qty, Reason::Ship, Some(order))
    }

    /// Appends a ledger row.
    pub(crate) fn ledger(
        &self,
        product: ProductId,
        delta_on_hand: i64,
        delta_reserved: i64,
        reason: Reason,
        order: Option<OrderId>,
    ) -> Result<()> {
        self.session().execute(
            "INSERT INTO stock_movements
                 (product_id, delta_on_hand, delta_reserved, reason, order_id, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &product.get(),
                &delta_on_hand,
                &delta_reserved,
                &reason.as_str(),
                &order.map(OrderId::get),
                &self.now.millis(),
            ],
        )?;
        Ok(())
    }
}

fn expect_one(changed: u64, product: ProductId, what: &str) -> Result<()> {
    if changed == 1 {
        Ok(())
    } else {
        // Only reachable if the invariants were already broken.
        Err(Error::Database(format!(
            "cannot {what} stock of product {product}: its reservation is smaller than the order; run `oms verify`"
        )))
    }
}
