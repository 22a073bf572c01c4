//! Orders: placement, edits, status changes, removal, expiry, listing and
//! the streaming export, as the SQLite backend's `orders` (one file each):
//!
//! - `query`: reads (one order, a filtered page, the export in batches);
//! - `placement`: placing an order, all lines or none;
//! - `lifecycle`: edits, the status machine's moves, removal, expiry.
//!
//! An order and its items are always read by one statement, so they come
//! from one snapshot even outside a transaction.

mod lifecycle;
mod placement;
mod query;

use postgres::Row;

use super::Tx;
use super::session::Session;
use crate::store::{ExpireOutcome, OrderWrites, PlaceOutcome};
use crate::{
    Currency, CustomerId, Error, ItemRequest, NewOrder, Order, OrderId, OrderItem, ProductId,
    Result, Sku, Status, Timestamp,
};

/// The order columns, at 0..=10 of every order query.
const ORDER_COLUMNS: &str = "o.id, o.customer_id, o.status, o.total, o.currency, \
     o.payment_collected, o.tracking_code, o.idempotency_key, o.version, o.created_at, o.updated_at";

/// The item columns after them, at 11..=15 (NULL for an order without
/// items, which only a broken database has).
const ITEM_COLUMNS: &str = "i.product_id, i.sku, i.name, i.unit_price, i.quantity";

fn parse_status(text: &str) -> Result<Status> {
    text.parse()
}

fn order_from_row(r: &Row) -> Result<Order> {
    let currency_code: String = r.try_get(4).map_err(column)?;
    let currency = Currency::parse(&currency_code).unwrap_or(Currency::USD);
    Ok(Order {
        id: OrderId(r.try_get(0).map_err(column)?),
        customer_id: CustomerId(r.try_get(1).map_err(column)?),
        status: parse_status(&r.try_get::<_, String>(2).map_err(column)?)?,
        items: Vec::new(),
        total: currency.from_minor(r.try_get(3).map_err(column)?),
        currency,
        payment_collected: r.try_get(5).map_err(column)?,
        tracking_code: r.try_get(6).map_err(column)?,
        idempotency_key: r.try_get(7).map_err(column)?,
        version: r.try_get(8).map_err(column)?,
        created_at: Timestamp::from_millis(r.try_get(9).map_err(column)?),
        updated_at: Timestamp::from_millis(r.try_get(10).map_err(column)?),
    })
}

/// The item at columns 11..=15 of a row, if the row has one.
fn item_from_row(r: &Row, currency: Currency) -> Result<Option<OrderItem>> {
    let Some(product_id) = r.try_get::<_, Option<i64>>(11).map_err(column)? else {
        return Ok(None);
    };
    let unit_price = currency.from_minor(r.try_get(14).map_err(column)?);
    let quantity: i64 = r.try_get(15).map_err(column)?;
    Ok(Some(OrderItem {
        product_id: ProductId(product_id),
        sku: Sku::from_stored(r.try_get(12).map_err(column)?),
        name: r.try_get(13).map_err(column)?,
        unit_price,
        quantity,
        line_total: currency.from_minor(unit_price.minor().saturating_mul(quantity)),
    }))
}

fn column(e: postgres::Error) -> Error {
    Error::Database(format!("unexpected column in an order row: {e}"))
}

/// Orders with their items from rows of `ORDER_COLUMNS, ITEM_COLUMNS`,
/// ordered by order (then line).
fn orders_from_rows(rows: &[Row]) -> Result<Vec<Order>> {
    let mut orders: Vec<Order> = Vec::new();
    for r in rows {
        let id: i64 = r.try_get(0).map_err(column)?;
        if orders.last().is_none_or(|o| o.id.get() != id) {
            orders.push(order_from_row(r)?);
        }
        if let Some(order) = orders.last_mut()
            && let Some(item) = item_from_row(r, order.currency)?
        {
            order.items.push(item);
        }
    }
    Ok(orders)
}

pub(super) fn find_order(s: &mut Session, id: OrderId) -> Result<Option<Order>> {
    let rows = s.query(
        &format!(
            "SELECT {ORDER_COLUMNS}, {ITEM_COLUMNS} FROM orders o
             LEFT JOIN order_items i ON i.order_id = o.id
             WHERE o.id = $1 ORDER BY i.line"
        ),
        &[&id.get()],
    )?;
    Ok(orders_from_rows(&rows)?.pop())
}

fn get_order(s: &mut Session, id: OrderId) -> Result<Order> {
    find_order(s, id)?.ok_or_else(|| Error::not_found("order", id))
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
