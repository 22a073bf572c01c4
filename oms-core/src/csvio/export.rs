//! Exports: products, customers and orders (one row per item, or one per
//! order) written as CSV, streaming.

use std::io::Write;

use crate::{Customer, OrderExportRow, OrderFilter, Product, Reader, Result};

use super::format::*;

/// The cells of a product row, in [`PRODUCT_COLUMNS`] order.
pub fn product_cells(p: &Product) -> Vec<String> {
    vec![
        p.id.to_string(),
        p.sku.to_string(),
        p.name.clone(),
        p.price.to_string(),
        p.stock_on_hand.to_string(),
        p.stock_reserved.to_string(),
        p.stock_available.to_string(),
        p.active.to_string(),
        p.created_at.to_string(),
        p.updated_at.to_string(),
    ]
}

/// The cells of a customer row, in [`CUSTOMER_COLUMNS`] order.
pub fn customer_cells(c: &Customer) -> Vec<String> {
    vec![
        c.id.to_string(),
        c.name.clone(),
        c.email.clone(),
        c.phone.clone().unwrap_or_default(),
        c.created_at.to_string(),
        c.updated_at.to_string(),
    ]
}

/// Writes one item row in [`ORDER_COLUMNS`] order, formatting numbers
/// without a `String` per cell (the export writes millions of rows).
/// `created_at` is the row's creation time, formatted once per order.
pub fn write_order_row<W: Write>(
    w: &mut CsvWriter<W>,
    r: &OrderExportRow,
    created_at: &str,
) -> Result<()> {
    w.field_int(r.order_id.get())?;
    w.field(&r.order_ref)?;
    w.field(created_at)?;
    w.field(r.status.as_str())?;
    w.field_int(r.customer_id.get())?;
    w.field(&r.customer_email)?;
    w.field(&r.customer_name)?;
    w.field(&r.sku)?;
    w.field(&r.product_name)?;
    w.field_int(r.quantity)?;
    w.field_display(r.unit_price)?;
    w.field_display(r.line_total)?;
    w.field_display(r.order_total)?;
    w.field(r.currency.code())?;
    w.end_row()
}

/// The `items` cell of a by-order row: `SKU*QTY;SKU*QTY`.
pub fn items_cell<'a>(items: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    items
        .into_iter()
        .map(|(sku, qty)| format!("{sku}*{qty}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Writes every product. Returns the number of rows.
pub fn export_products<W: Write>(store: &Reader, out: W) -> Result<u64> {
    let mut w = CsvWriter::new(out, &PRODUCT_COLUMNS)?;
    let mut n = 0;
    store.for_each_product(&Default::default(), &mut |p| {
        n += 1;
        w.row(product_cells(&p).iter().map(String::as_str))
    })?;
    w.flush()?;
    Ok(n)
}

/// Writes every customer. Returns the number of rows.
pub fn export_customers<W: Write>(store: &Reader, out: W) -> Result<u64> {
    let mut w = CsvWriter::new(out, &CUSTOMER_COLUMNS)?;
    let mut n = 0;
    store.for_each_customer(&Default::default(), &mut |c| {
        n += 1;
        w.row(customer_cells(&c).iter().map(String::as_str))
    })?;
    w.flush()?;
    Ok(n)
}

/// Writes the orders matching `filter`, one row per item or (`by_order`)
/// one per order. Returns the number of orders.
pub fn export_orders<W: Write>(
    store: &Reader,
    filter: &OrderFilter,
    by_order: bool,
    out: W,
) -> Result<u64> {
    let mut orders = 0u64;
    if !by_order {
        let mut w = CsvWriter::new(out, &ORDER_COLUMNS)?;
        let mut last = None;
        // An order's rows share its creation time: format it once per order.
        let mut created_at = String::new();
        store.for_each_export_row(filter, &mut |r| {
            if last != Some(r.order_id) {
                orders += 1;
                last = Some(r.order_id);
                created_at = r.created_at.to_string();
            }
            write_order_row(&mut w, &r, &created_at)
        })?;
        w.flush()?;
        return Ok(orders);
    }
    let mut w = CsvWriter::new(out, &ORDER_BY_ORDER_COLUMNS)?;
    // Rows arrive grouped by order: keep one order's lines, flush on change.
    let mut current: Option<(OrderExportRow, Vec<(String, i64)>)> = None;
    let flush = |w: &mut CsvWriter<W>, done: (OrderExportRow, Vec<(String, i64)>)| -> Result<()> {
        let (r, items) = done;
        let cells = [
            r.order_id.to_string(),
            r.order_ref,
            r.created_at.to_string(),
            r.status.to_string(),
            r.customer_id.to_string(),
            r.customer_email,
            r.customer_name,
            items_cell(items.iter().map(|(s, q)| (s.as_str(), *q))),
            r.order_total.to_string(),
            r.currency.to_string(),
        ];
        w.row(cells.iter().map(String::as_str))
    };
    store.for_each_export_row(filter, &mut |row| {
        match &mut current {
            Some((head, items)) if head.order_id == row.order_id => {
                items.push((row.sku.clone(), row.quantity));
            }
            _ => {
                let line = (row.sku.clone(), row.quantity);
                if let Some(done) = current.replace((row, vec![line])) {
                    orders += 1;
                    flush(&mut w, done)?;
                }
            }
        }
        Ok(())
    })?;
    if let Some(done) = current.take() {
        orders += 1;
        flush(&mut w, done)?;
    }
    w.flush()?;
    Ok(orders)
}
