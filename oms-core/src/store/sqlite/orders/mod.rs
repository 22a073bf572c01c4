//! Orders: placement, edits, status changes, removal, expiry, listing and
//! the streaming export, one file each:
//!
//! - `query`: reads (one order, a filtered page, the export in batches);
//! - `placement`: placing an order, all lines or none;
//! - `lifecycle`: edits, the status machine's moves, removal, expiry.
//!
//! The outbox row every status change writes is `notifications`' business.
//! Placement is all-or-nothing: every line is checked and reserved inside
//! the transaction (a group job's own SAVEPOINT, or a whole transaction),
//! and any failure rolls all of them back and reports every failing line.
//! The order, its items, the reservations and their ledger rows, the
//! change-log row, the idempotency record and the outbox row commit
//! together or not at all.

mod lifecycle;
mod placement;
mod query;

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row};

use super::Tx;
use crate::store::{ExpireOutcome, OrderWrites, PlaceOutcome};
use crate::{
    Currency, CustomerId, Error, ItemRequest, NewOrder, Order, OrderId, OrderItem, ProductId,
    Result, Sku, Status, Timestamp,
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

impl OrderWrites for Tx<'_> {
    fn place_order(&self, new: &NewOrder) -> Result<PlaceOutcome> {
        let initial = if new.paid {
            Status::Paid
        } else {
            Status::Pending
        };
        self.place_as(new, initial)
    }

    fn place_order_with_status(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome> {
        self.place_as(new, status)
    }

    fn edit_order(
        &self,
        id: OrderId,
        items: &[ItemRequest],
        expected_version: Option<i64>,
    ) -> Result<Order> {
        self.edit_items(id, items, expected_version)
    }

    fn set_status(&self, id: OrderId, to: Status, expected_version: Option<i64>) -> Result<Order> {
        self.transition(id, to, expected_version, None)
    }

    fn remove_order(&self, id: OrderId) -> Result<Order> {
        self.remove(id)
    }

    fn expire_pending(&self, cutoff: Timestamp) -> Result<ExpireOutcome> {
        self.expire(cutoff)
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
