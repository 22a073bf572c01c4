//! Inventory: reservations, releases, shipments and the stock ledger.
//!
//! Every stock change is a guarded `UPDATE` (the `WHERE` clause re-checks the
//! condition against the row as it is now, inside the write transaction)
//! followed by a check that exactly one row changed, and is written to the
//! append-only `stock_movements` ledger in the same transaction. Nothing
//! reads stock and then writes it back, so nothing can oversell.

use rusqlite::params;

use super::Tx;
pub(crate) use crate::store::Reason;
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
        let mut stmt = self.conn.prepare_cached(
            "UPDATE products SET stock_reserved = stock_reserved + ?1, updated_at = ?3
             WHERE id = ?2 AND active = 1 AND stock_on_hand - stock_reserved >= ?1",
        )?;
        let changed = stmt.execute(params![qty, product.get(), self.now.millis()])?;
        if changed != 1 {
            return Ok(false);
        }
        self.ledger(product, 0, qty, reason, Some(order))?;
        Ok(true)
    }

    /// NEGATIVE CONTROL, used only in a `--features broken-stock-guard`
    /// build (docs/reliability.md): the seed projects' bug. Reads the available
    /// stock on another connection (the last committed state, which misses
    /// the uncommitted jobs of the same group commit), then writes back an
    /// absolute value computed from that stale read: a lost update.
    fn broken_reserve(
        &self,
        product: ProductId,
        qty: i64,
        order: OrderId,
        reason: Reason,
    ) -> Result<bool> {
        let path = self.conn.path().unwrap_or_default().to_string();
        let stale = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (on_hand, reserved, active): (i64, i64, bool) = stale.query_row(
            "SELECT stock_on_hand, stock_reserved, active FROM products WHERE id = ?1",
            [product.get()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if !active || on_hand - reserved < qty {
            return Ok(false);
        }
        self.conn.execute(
            "UPDATE products SET stock_reserved = ?1, updated_at = ?3 WHERE id = ?2",
            params![reserved + qty, product.get(), self.now.millis()],
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
        let mut stmt = self.conn.prepare_cached(
            "UPDATE products SET stock_reserved = stock_reserved - ?1, updated_at = ?3
             WHERE id = ?2 AND stock_reserved >= ?1",
        )?;
        let changed = stmt.execute(params![qty, product.get(), self.now.millis()])?;
        self.expect_one(changed, product, "release")?;
        self.ledger(product, 0, -qty, reason, Some(order))
    }

    /// Ships `qty` reserved units: they leave on hand and reserved together.
    pub(crate) fn ship(&self, product: ProductId, qty: i64, order: OrderId) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE products
             SET stock_on_hand = stock_on_hand - ?1, stock_reserved = stock_reserved - ?1,
                 updated_at = ?3
             WHERE id = ?2 AND stock_reserved >= ?1 AND stock_on_hand >= ?1",
        )?;
        let changed = stmt.execute(params![qty, product.get(), self.now.millis()])?;
        self.expect_one(changed, product, "ship")?;
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
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO stock_movements
                 (product_id, delta_on_hand, delta_reserved, reason, order_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(params![
            product.get(),
            delta_on_hand,
            delta_reserved,
            reason.as_str(),
            order.map(OrderId::get),
            self.now.millis()
        ])?;
        Ok(())
    }

    fn expect_one(&self, changed: usize, product: ProductId, what: &str) -> Result<()> {
        if changed == 1 {
            Ok(())
        } else {
            // Only reachable if the invariants were already broken on disk.
            Err(Error::Database(format!(
                "cannot {what} stock of product {product}: its reservation is smaller than the order; run `oms verify`"
            )))
        }
    }
}
