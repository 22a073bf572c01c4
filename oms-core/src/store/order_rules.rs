//! What placing and changing an order means, independent of the engine:
//! both backends' order modules use these, so an idempotency key, a first
//! answer or a version check means the same thing on either.

use std::collections::HashMap;

use crate::{CustomerId, Error, ItemRequest, LineFailure, Order, Product, ProductId, ProductRef};
use crate::{Result, Status};

use super::MAX_LINES;

/// A requested line resolved to a product, quantities of repeated products
/// summed (so two lines of one SKU are checked against their sum).
pub(crate) struct Line {
    pub(crate) product: Product,
    pub(crate) quantity: i64,
}

/// Resolves and merges requested lines with `find` (a product by
/// reference, if it exists). Unknown products become failures; the caller
/// decides what else fails.
pub(crate) fn resolve_lines(
    items: &[ItemRequest],
    mut find: impl FnMut(&ProductRef) -> Result<Option<Product>>,
) -> Result<(Vec<Line>, Vec<LineFailure>)> {
    if items.is_empty() {
        return Err(Error::invalid("an order needs at least one item"));
    }
    if items.len() > MAX_LINES {
        return Err(Error::invalid(format!(
            "an order may have at most {MAX_LINES} lines"
        )));
    }
    let mut lines: Vec<Line> = Vec::new();
    let mut index: HashMap<ProductId, usize> = HashMap::new();
    let mut failures: Vec<LineFailure> = Vec::new();
    for item in items {
        match find(&item.product)? {
            None => failures.push(LineFailure {
                product: item.product.to_string(),
                requested: item.quantity.get(),
                reason: "unknown product".to_string(),
            }),
            Some(product) => match index.get(&product.id) {
                Some(&i) => {
                    lines[i].quantity = lines[i]
                        .quantity
                        .checked_add(item.quantity.get())
                        .ok_or_else(|| Error::invalid("quantity too large"))?;
                }
                None => {
                    index.insert(product.id, lines.len());
                    lines.push(Line {
                        product,
                        quantity: item.quantity.get(),
                    });
                }
            },
        }
    }
    Ok((lines, failures))
}

/// Why `product` could not be reserved, from how it is now.
pub(crate) fn stock_failure(product: &Product, now: &Product, requested: i64) -> LineFailure {
    let reason = if !now.active {
        "product is inactive".to_string()
    } else {
        format!("only {} available", now.stock_available)
    };
    LineFailure {
        product: product.sku.to_string(),
        requested,
        reason,
    }
}

/// An order as the JSON of its change-log row and of its first answer.
pub(crate) fn order_json(order: &Order) -> Result<String> {
    serde_json::to_string(order)
        .map_err(|e| Error::Database(format!("cannot encode order {}: {e}", order.id)))
}

/// The first answer to a keyed placement, for a replay: `kept` (stored
/// when the order's items were first edited) if there is one, otherwise
/// the order as it is with the status it was placed in, version 1 and its
/// placement time (nothing else of a placement's answer changes).
pub(crate) fn first_answer(
    order: &Order,
    placed_status: Option<String>,
    kept: Option<String>,
) -> Result<String> {
    if let Some(answer) = kept {
        return Ok(answer);
    }
    let mut first = order.clone();
    if let Some(status) = placed_status {
        first.status = status.parse()?;
        first.payment_collected = matches!(first.status, Status::Paid | Status::Fulfilled);
    }
    first.version = 1;
    first.updated_at = first.created_at;
    order_json(&first)
}

/// Keys are refused, not trimmed, when they start or end with whitespace:
/// every face trims what it reads (the `Idempotency-Key` header, the CLI
/// flag, CSV cells), so a stored key with surrounding spaces could never be
/// matched again and an order export would re-import as new orders.
pub(crate) fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "idempotency key must be 1 to 255 printable characters",
        ));
    }
    if key.trim() != key {
        return Err(Error::invalid(
            "idempotency key must not start or end with whitespace",
        ));
    }
    Ok(())
}

/// What an idempotency key promises: the same customer, the same
/// quantities of the same products (order of lines does not matter) and the
/// same payment flag.
pub(crate) fn fingerprint(
    customer: CustomerId,
    paid: bool,
    lines: &[Line],
    failures: &[LineFailure],
) -> String {
    let mut parts: Vec<String> = lines
        .iter()
        .map(|l| format!("{}*{}", l.product.id, l.quantity))
        .collect();
    parts.extend(
        failures
            .iter()
            .map(|f| format!("?{}*{}", f.product, f.requested)),
    );
    parts.sort();
    let paid = if paid { ":paid" } else { "" };
    format!("c{customer}{paid}:{}", parts.join(","))
}

/// Refuses a change made against an older version of the order.
pub(crate) fn check_version(order: &Order, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(v) if v != order.version => Err(Error::StaleVersion {
            order_id: order.id.get(),
            expected: v,
            current: order.version,
        }),
        _ => Ok(()),
    }
}

/// The total of `lines` at their prices (`kept_prices` for products
/// already on the order, the current price otherwise).
pub(crate) fn total(
    currency: crate::Currency,
    lines: &[Line],
    kept_prices: &HashMap<ProductId, i64>,
) -> Result<crate::Money> {
    let mut total = currency.from_minor(0);
    for line in lines {
        let price = kept_prices
            .get(&line.product.id)
            .copied()
            .unwrap_or(line.product.price.minor());
        total = currency
            .from_minor(price)
            .checked_mul(line.quantity)
            .and_then(|t| total.checked_add(t))
            .ok_or_else(|| Error::invalid("order total is too large"))?;
    }
    Ok(total)
}

/// The order a placement just wrote, built from what it wrote rather than
/// read back (the daemon's hot path).
pub(crate) struct Placed<'a> {
    pub(crate) id: crate::OrderId,
    pub(crate) customer: CustomerId,
    pub(crate) status: Status,
    pub(crate) lines: &'a [Line],
    pub(crate) total: crate::Money,
    pub(crate) currency: crate::Currency,
    pub(crate) tracking_code: String,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) at: crate::Timestamp,
}

impl Placed<'_> {
    pub(crate) fn into_order(self) -> Order {
        let currency = self.currency;
        Order {
            id: self.id,
            customer_id: self.customer,
            status: self.status,
            items: self
                .lines
                .iter()
                .map(|l| crate::OrderItem {
                    product_id: l.product.id,
                    sku: l.product.sku.clone(),
                    name: l.product.name.clone(),
                    unit_price: l.product.price,
                    quantity: l.quantity,
                    line_total: currency
                        .from_minor(l.product.price.minor().saturating_mul(l.quantity)),
                })
                .collect(),
            total: self.total,
            currency,
            payment_collected: matches!(self.status, Status::Paid | Status::Fulfilled),
            tracking_code: self.tracking_code,
            idempotency_key: self.idempotency_key,
            version: 1,
            created_at: self.at,
            updated_at: self.at,
        }
    }
}
