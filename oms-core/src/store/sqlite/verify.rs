//! `verify`: recomputes stock from the ledger and from open orders, checks
//! the invariants the schema cannot express, and runs SQLite's own checks.
//! Read-only; one statement per check.

use rusqlite::Connection;

use crate::Result;
use crate::store::DriftReport;

/// Checks every invariant of DESIGN §4 against the data on disk.
pub(super) fn verify(conn: &Connection) -> Result<DriftReport> {
    {
        let mut report = DriftReport::default();

        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        report.integrity = lines.join("; ");
        if report.integrity != "ok" {
            report
                .problems
                .push(format!("integrity_check: {}", report.integrity));
        }

        let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
        let fk: Vec<(String, i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (table, rowid, parent) in fk {
            report.problems.push(format!(
                "foreign key: {table} row {rowid} points to a missing {parent}"
            ));
        }

        // Per product: stored stock vs the ledger vs open orders.
        let mut stmt = conn.prepare(
            "SELECT p.sku, p.stock_on_hand, p.stock_reserved,
                    COALESCE(l.on_hand, 0), COALESCE(l.reserved, 0), COALESCE(o.open_qty, 0)
             FROM products p
             LEFT JOIN (SELECT product_id, SUM(delta_on_hand) AS on_hand,
                               SUM(delta_reserved) AS reserved
                        FROM stock_movements GROUP BY product_id) l ON l.product_id = p.id
             LEFT JOIN (SELECT i.product_id, SUM(i.quantity) AS open_qty
                        FROM order_items i JOIN orders ord ON ord.id = i.order_id
                        WHERE ord.status IN ('PENDING', 'PAID')
                        GROUP BY i.product_id) o ON o.product_id = p.id
             ORDER BY p.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            report.products_checked += 1;
            let sku: String = r.get(0)?;
            let (on_hand, reserved): (i64, i64) = (r.get(1)?, r.get(2)?);
            let (ledger_on_hand, ledger_reserved, open): (i64, i64, i64) =
                (r.get(3)?, r.get(4)?, r.get(5)?);
            if !(0 <= reserved && reserved <= on_hand) {
                report.problems.push(format!(
                    "{sku}: reserved {reserved} is outside 0..=on_hand {on_hand}"
                ));
            }
            if on_hand != ledger_on_hand {
                report.problems.push(format!(
                    "{sku}: on hand is {on_hand} but the ledger sums to {ledger_on_hand}"
                ));
            }
            if reserved != ledger_reserved {
                report.problems.push(format!(
                    "{sku}: reserved is {reserved} but the ledger sums to {ledger_reserved}"
                ));
            }
            if reserved != open {
                report.problems.push(format!(
                    "{sku}: reserved is {reserved} but PENDING and PAID orders hold {open}"
                ));
            }
        }

        // Per order: it has items and its total is the sum of its lines.
        let mut stmt = conn.prepare(
            "SELECT o.id, o.total, COUNT(i.line), COALESCE(SUM(i.unit_price * i.quantity), 0)
             FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
             GROUP BY o.id ORDER BY o.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            report.orders_checked += 1;
            let (id, total, lines, sum): (i64, i64, i64, i64) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            if lines == 0 {
                report.problems.push(format!("order {id} has no items"));
            } else if total != sum {
                report.problems.push(format!(
                    "order {id}: total {total} differs from the sum of its lines {sum}"
                ));
            }
        }

        // One line per product in an order.
        let mut stmt = conn.prepare(
            "SELECT order_id, product_id FROM order_items
             GROUP BY order_id, product_id HAVING COUNT(*) > 1",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (order, product): (i64, i64) = (r.get(0)?, r.get(1)?);
            report.problems.push(format!(
                "order {order} has product {product} on more than one line"
            ));
        }

        // The change log has no gaps.
        let (count, min, max): (i64, i64, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0) FROM changes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        report.changes_checked = count;
        if count != max - min + 1 && count != 0 {
            report.problems.push(format!(
                "change log has gaps: {count} rows between seq {min} and {max}"
            ));
        }
        Ok(report)
    }
}
