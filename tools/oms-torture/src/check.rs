//! Audits of a database (a file or a PostgreSQL URL): the stock invariants
//! recomputed from the orders, `Db::verify` (integrity check, ledger,
//! change log), orders without items, and every order by its idempotency
//! key.
//!
//! An audit reads products and orders in separate statements, so it runs
//! only on a database nobody writes: a snapshot from `oms backup` taken
//! under load, or the live database once the load has stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use oms_core::prelude::*;
use oms_core::{Db, Location, OrderFilter, ProductQuery, Status};

use crate::Result;

/// What an audit found.
#[derive(Debug, Default)]
pub struct Audit {
    pub orders: usize,
    /// Orders by idempotency key: (id, status).
    pub by_key: HashMap<String, (i64, Status)>,
    /// Units promised beyond the initial stock, summed over products.
    pub oversold: i64,
    /// Orders with no item (a half-written placement).
    pub partial: usize,
    /// Stock per SKU: (on_hand, reserved).
    pub stock: BTreeMap<String, (i64, i64)>,
    pub problems: Vec<String>,
}

/// Audits `db`. With `initial` (stock per SKU at the start, never
/// restocked), also checks `on_hand + shipped = initial` and counts
/// oversold units.
pub fn audit(db: &Path, initial: Option<&BTreeMap<String, i64>>) -> Result<Audit> {
    // A file, or a `postgres://` URL (`Oms::db` holds either).
    let location: Location = crate::oms::path_str(db)?.parse()?;
    let store = Db::open(&location)?;
    let mut audit = Audit::default();
    let report = store.verify()?;
    if report.integrity != "ok" {
        audit
            .problems
            .push(format!("integrity_check: {}", report.integrity));
    }
    for p in &report.problems {
        audit.problems.push(format!("oms verify: {p}"));
    }

    let orders = store.orders(&OrderFilter::default())?;
    audit.orders = orders.len();
    // Per SKU: units in open (PENDING, PAID) orders and shipped units.
    let mut open: HashMap<String, i64> = HashMap::new();
    let mut shipped: HashMap<String, i64> = HashMap::new();
    for order in &orders {
        if order.items.is_empty() {
            audit.partial += 1;
            audit
                .problems
                .push(format!("order {} has no items", order.id));
        }
        if let Some(key) = &order.idempotency_key
            && let Some((other, _)) = audit
                .by_key
                .insert(key.clone(), (order.id.get(), order.status))
        {
            audit.problems.push(format!(
                "idempotency key {key} placed twice: orders {other} and {}",
                order.id
            ));
        }
        let bucket = match order.status {
            Status::Pending | Status::Paid => &mut open,
            Status::Fulfilled => &mut shipped,
            Status::Cancelled => continue,
        };
        for item in &order.items {
            *bucket.entry(item.sku.to_string()).or_default() += item.quantity;
        }
    }

    for p in store.products(&ProductQuery::default())? {
        let sku = p.sku.to_string();
        let (on_hand, reserved) = (p.stock_on_hand, p.stock_reserved);
        audit.stock.insert(sku.clone(), (on_hand, reserved));
        let open_qty = open.get(&sku).copied().unwrap_or(0);
        let shipped_qty = shipped.get(&sku).copied().unwrap_or(0);
        if on_hand < 0 || reserved < 0 || reserved > on_hand {
            audit.problems.push(format!(
                "{sku}: on_hand {on_hand}, reserved {reserved}: outside 0 <= reserved <= on_hand"
            ));
        }
        if reserved != open_qty {
            audit.problems.push(format!(
                "{sku}: reserved {reserved} but open orders hold {open_qty}"
            ));
        }
        if let Some(&start) = initial.and_then(|m| m.get(&sku)) {
            if on_hand + shipped_qty != start {
                audit.problems.push(format!(
                    "{sku}: on_hand {on_hand} + shipped {shipped_qty} != initial {start}"
                ));
            }
            let over = open_qty + shipped_qty - start;
            if over > 0 {
                audit.oversold += over;
                audit.problems.push(format!(
                    "{sku}: oversold by {over} (open {open_qty} + shipped {shipped_qty} > initial {start})"
                ));
            }
        }
    }
    Ok(audit)
}

/// Runs [`audit`] off the async runtime.
pub async fn audit_async(
    db: std::path::PathBuf,
    initial: Option<BTreeMap<String, i64>>,
) -> Result<Audit> {
    tokio::task::spawn_blocking(move || audit(&db, initial.as_ref()))
        .await
        .map_err(|e| format!("audit task failed: {e}"))?
}
