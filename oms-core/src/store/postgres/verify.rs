//! `verify`: recomputes stock from the ledger and from open orders, and
//! checks the invariants the schema cannot express. PostgreSQL checks its
//! own pages and enforces foreign keys at every statement, so the engine's
//! part of the report is "ok" once the server answers.

use super::session::Session;
use crate::Result;
use crate::store::DriftReport;

pub(super) fn verify(s: &mut Session) -> Result<DriftReport> {
    let mut report = DriftReport {
        integrity: "ok".to_string(),
        ..DriftReport::default()
    };

    // Per product: stored stock vs the ledger vs open orders.
    let rows = s.query(
        "SELECT p.sku, p.stock_on_hand, p.stock_reserved,
                COALESCE(l.on_hand, 0)::bigint, COALESCE(l.reserved, 0)::bigint,
                COALESCE(o.open_qty, 0)::bigint
         FROM products p
         LEFT JOIN (SELECT product_id, SUM(delta_on_hand) AS on_hand,
                           SUM(delta_reserved) AS reserved
                    FROM stock_movements GROUP BY product_id) l ON l.product_id = p.id
         LEFT JOIN (SELECT i.product_id, SUM(i.quantity) AS open_qty
                    FROM order_items i JOIN orders ord ON ord.id = i.order_id
                    WHERE ord.status IN ('PENDING', 'PAID')
                    GROUP BY i.product_id) o ON o.product_id = p.id
         ORDER BY p.id",
        &[],
    )?;
    for r in &rows {
        report.products_checked += 1;
        let sku: String = r.get(0);
        let (on_hand, reserved): (i64, i64) = (r.get(1), r.get(2));
        let (ledger_on_hand, ledger_reserved, open): (i64, i64, i64) =
            (r.get(3), r.get(4), r.get(5));
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
    let rows = s.query(
        "SELECT o.id, o.total, COUNT(i.line),
                COALESCE(SUM(i.unit_price * i.quantity), 0)::bigint
         FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
         GROUP BY o.id ORDER BY o.id",
        &[],
    )?;
    for r in &rows {
        report.orders_checked += 1;
        let (id, total, lines, sum): (i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if lines == 0 {
            report.problems.push(format!("order {id} has no items"));
        } else if total != sum {
            report.problems.push(format!(
                "order {id}: total {total} differs from the sum of its lines {sum}"
            ));
        }
    }

    // One line per product in an order.
    let rows = s.query(
        "SELECT order_id, product_id FROM order_items
         GROUP BY order_id, product_id HAVING COUNT(*) > 1",
        &[],
    )?;
    for r in &rows {
        let (order, product): (i64, i64) = (r.get(0), r.get(1));
        report.problems.push(format!(
            "order {order} has product {product} on more than one line"
        ));
    }

    // The change log has no gaps, and the counter is its newest seq.
    let r = s.query_one(
        "SELECT COUNT(*), COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0),
                (SELECT last FROM oms_change_counter)
         FROM changes",
        &[],
    )?;
    let (count, min, max, counter): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    report.changes_checked = count;
    if count != max - min + 1 && count != 0 {
        report.problems.push(format!(
            "change log has gaps: {count} rows between seq {min} and {max}"
        ));
    }
    if counter != max {
        report.problems.push(format!(
            "the change counter says {counter} but the newest change is {max}"
        ));
    }
    Ok(report)
}
