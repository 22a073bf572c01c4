//! Imports: a CSV file read row by row, each row checked and applied
//! through the caller's transaction; the first bad row fails the whole
//! file with its line number.

use std::collections::HashSet;
use std::io::Read;

use crate::{
    CustomerRef, Error, ImportSummary, ItemRequest, NewCustomer, NewOrder, ProductRef, Quantity,
    Result, Sku, Status, Upserted, WriteTx, parse_email, parse_name,
};

use super::format::*;

/// A parsed CSV file: header positions and records with line numbers.
struct Table<R: Read> {
    reader: csv::Reader<LineCounter<R>>,
    columns: Vec<String>,
}

impl<R: Read> Table<R> {
    fn open(input: R) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(LineCounter::new(input));
        let headers = reader.headers().map_err(|e| read_error(e, 1))?;
        let columns = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.trim_start_matches('\u{feff}')
                } else {
                    h
                };
                h.trim().to_ascii_lowercase()
            })
            .collect();
        Ok(Table { reader, columns })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    fn require(&self, name: &str) -> Result<usize> {
        self.index(name).ok_or_else(|| {
            Error::invalid(format!("missing required column {name:?} in the header")).at_line(1)
        })
    }

    /// The line on which a record starting at byte `position` begins.
    fn line_at(&mut self, position: Option<&csv::Position>, fallback: u64) -> u64 {
        position.map_or(fallback, |p| self.reader.get_mut().line_at(p.byte()))
    }

    /// Calls `f(line, record)` for every data row.
    fn each(&mut self, mut f: impl FnMut(u64, &csv::StringRecord) -> Result<()>) -> Result<()> {
        let mut record = csv::StringRecord::new();
        loop {
            let before = self.reader.position().byte();
            let fallback = self.reader.get_mut().line_at(before);
            match self.reader.read_record(&mut record) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    let line = self.line_at(record.position(), fallback);
                    f(line, &record).map_err(|e| e.at_line(line))?;
                }
                Err(e) => {
                    let line = self.line_at(e.position(), fallback);
                    return Err(read_error(e, line));
                }
            }
        }
    }
}

/// Counts lines for error messages. The csv crate's `Position::line` runs
/// one behind after a CRLF terminator (BurntSushi/rust-csv#395) or a blank
/// line (#208): a record's position is taken before the rest of the previous
/// terminator is skipped. Every file oms exports ends its lines with CRLF,
/// so this wrapper keeps the bytes from the current record on (bounded by
/// the reader's read-ahead and one record) and counts the newlines itself.
struct LineCounter<R> {
    inner: R,
    /// Bytes from offset `start` on, as the csv reader read them.
    window: std::collections::VecDeque<u8>,
    start: u64,
    /// Newlines before `start`.
    newlines: u64,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            window: std::collections::VecDeque::new(),
            start: 0,
            newlines: 0,
        }
    }

    /// The 1-based line of the first byte of the record whose position is
    /// `offset`, skipping the terminator bytes and blank lines the reader
    /// skips. Forgets everything before `offset`; offsets never go back.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.start < offset {
            match self.window.pop_front() {
                Some(byte) => {
                    self.newlines += u64::from(byte == b'\n');
                    self.start += 1;
                }
                None => break,
            }
        }
        let skipped = self
            .window
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .filter(|b| **b == b'\n')
            .count() as u64;
        1 + self.newlines + skipped
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.window.extend(&buf[..n]);
        Ok(n)
    }
}

fn read_error(e: csv::Error, line: u64) -> Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io("reading CSV", io),
        csv::ErrorKind::Utf8 { .. } => Error::invalid("not valid UTF-8").at_line(line),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Error::invalid(format!("expected {expected_len} fields, found {len}")).at_line(line),
        other => Error::invalid(format!("malformed CSV: {other:?}")).at_line(line),
    }
}

/// A cell by optional column index, restored and trimmed; `None` if the
/// column is absent or the cell empty.
fn cell(record: &csv::StringRecord, index: Option<usize>) -> Option<&str> {
    index
        .and_then(|i| record.get(i))
        .map(|c| restore(c).trim())
        .filter(|c| !c.is_empty())
}

fn required<'r>(record: &'r csv::StringRecord, index: usize, name: &str) -> Result<&'r str> {
    cell(record, Some(index)).ok_or_else(|| Error::invalid(format!("{name} is empty")))
}

fn parse_bool(text: &str) -> Result<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err(Error::invalid(format!(
            "invalid active {text:?}: use true or false"
        ))),
    }
}

fn count(summary: &mut ImportSummary, what: Upserted) {
    summary.rows += 1;
    match what {
        Upserted::Created => summary.created += 1,
        Upserted::Updated => summary.updated += 1,
        Upserted::Unchanged => summary.unchanged += 1,
    }
}

/// Upserts products by SKU. Required columns `sku,name,price`; optional
/// `stock_on_hand,active`; others ignored.
pub fn import_products<R: Read>(tx: &WriteTx<'_>, input: R) -> Result<ImportSummary> {
    let mut table = Table::open(input)?;
    let (sku, name, price) = (
        table.require("sku")?,
        table.require("name")?,
        table.require("price")?,
    );
    let (stock, active) = (table.index("stock_on_hand"), table.index("active"));
    let currency = tx.currency();
    let mut summary = ImportSummary::default();
    table.each(|_, r| {
        let sku = Sku::parse(required(r, sku, "sku")?)?;
        let name = parse_name("name", required(r, name, "name")?)?;
        let price = currency.parse_amount(required(r, price, "price")?)?;
        let stock = cell(r, stock)
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| Error::invalid(format!("invalid stock_on_hand {s:?}")))
            })
            .transpose()?;
        let active = cell(r, active).map(parse_bool).transpose()?;
        count(
            &mut summary,
            tx.upsert_product(&sku, &name, price, stock, active)?,
        );
        Ok(())
    })?;
    Ok(summary)
}

/// Upserts customers by e-mail. Required `name,email`; optional `phone`.
pub fn import_customers<R: Read>(tx: &WriteTx<'_>, input: R) -> Result<ImportSummary> {
    let mut table = Table::open(input)?;
    let (name, email) = (table.require("name")?, table.require("email")?);
    let phone = table.index("phone");
    let mut summary = ImportSummary::default();
    table.each(|_, r| {
        let new = NewCustomer {
            name: parse_name("name", required(r, name, "name")?)?,
            email: parse_email(required(r, email, "email")?)?,
            phone: cell(r, phone).map(str::to_string),
        };
        count(&mut summary, tx.upsert_customer(&new)?);
        Ok(())
    })?;
    Ok(summary)
}

/// One order being assembled from consecutive rows.
struct PendingOrder {
    key: String,
    first_line: u64,
    customer: CustomerRef,
    customer_name: Option<String>,
    status: Status,
    items: Vec<ItemRequest>,
}

/// Places the orders of an order CSV. Rows with the same `order_ref` (or,
/// when it is empty, `order_id`) form one order and must be consecutive; the
/// ref is the order's idempotency key, so importing a file twice places each
/// order once. Customers missing by e-mail are created when the row names
/// them (`customer_name`). Rows may carry `sku,quantity` or an `items` cell
/// (`SKU*QTY;...`, as written by `--by-order`).
pub fn import_orders<R: Read>(tx: &WriteTx<'_>, input: R) -> Result<ImportSummary> {
    let mut table = Table::open(input)?;
    let order_ref = table.index("order_ref");
    let order_id = table.index("order_id");
    if order_ref.is_none() && order_id.is_none() {
        return Err(Error::invalid(
            "missing required column \"order_ref\" (or \"order_id\") in the header",
        )
        .at_line(1));
    }
    let email = table.index("customer_email");
    let customer_id = table.index("customer_id");
    if email.is_none() && customer_id.is_none() {
        return Err(Error::invalid(
            "missing required column \"customer_email\" (or \"customer_id\") in the header",
        )
        .at_line(1));
    }
    let customer_name = table.index("customer_name");
    let sku = table.index("sku");
    let quantity = table.index("quantity");
    let items = table.index("items");
    if items.is_none() && (sku.is_none() || quantity.is_none()) {
        return Err(Error::invalid(
            "missing required columns \"sku\" and \"quantity\" (or \"items\") in the header",
        )
        .at_line(1));
    }
    let status = table.index("status");

    let mut summary = ImportSummary::default();
    let mut done: HashSet<String> = HashSet::new();
    let mut current: Option<PendingOrder> = None;
    let finish = |order: PendingOrder, summary: &mut ImportSummary| -> Result<()> {
        let line = order.first_line;
        place_imported(tx, order, summary).map_err(|e| e.at_line(line))
    };
    table.each(|line, r| {
        let key = match (cell(r, order_ref), cell(r, order_id)) {
            (Some(reference), _) => reference.to_string(),
            (None, Some(id)) => format!("import-order-{id}"),
            (None, None) => return Err(Error::invalid("order_ref and order_id are both empty")),
        };
        let customer = match (cell(r, email), cell(r, customer_id)) {
            (Some(e), _) => CustomerRef::Email(parse_email(e)?),
            (None, Some(id)) => CustomerRef::Id(id.parse()?),
            (None, None) => {
                return Err(Error::invalid(
                    "customer_email and customer_id are both empty",
                ));
            }
        };
        let row_status: Status = cell(r, status)
            .map(str::parse)
            .transpose()?
            .unwrap_or(Status::Pending);
        let mut row_items = Vec::new();
        match (cell(r, sku), cell(r, items)) {
            (Some(s), _) => row_items.push(ItemRequest {
                product: ProductRef::parse(s)?,
                quantity: required(r, quantity.unwrap_or(usize::MAX), "quantity")?
                    .parse::<Quantity>()?,
            }),
            (None, Some(list)) => {
                for part in list.split(';').filter(|p| !p.trim().is_empty()) {
                    let (s, q) = part.rsplit_once('*').ok_or_else(|| {
                        Error::invalid(format!("invalid items entry {part:?}: use SKU*QTY"))
                    })?;
                    row_items.push(ItemRequest {
                        product: ProductRef::parse(s)?,
                        quantity: q.parse()?,
                    });
                }
            }
            (None, None) => return Err(Error::invalid("sku is empty")),
        }
        match &mut current {
            Some(order) if order.key == key => {
                if order.customer != customer || order.status != row_status {
                    return Err(Error::invalid(format!(
                        "rows of order {key:?} disagree on customer or status"
                    )));
                }
                order.items.extend(row_items);
            }
            _ => {
                if done.contains(&key) {
                    return Err(Error::invalid(format!(
                        "rows of order {key:?} must be consecutive"
                    )));
                }
                let next = PendingOrder {
                    key: key.clone(),
                    first_line: line,
                    customer,
                    customer_name: cell(r, customer_name).map(str::to_string),
                    status: row_status,
                    items: row_items,
                };
                if let Some(prev) = current.replace(next) {
                    done.insert(prev.key.clone());
                    finish(prev, &mut summary)?;
                }
            }
        }
        Ok(())
    })?;
    if let Some(last) = current.take() {
        finish(last, &mut summary)?;
    }
    Ok(summary)
}

fn place_imported(
    tx: &WriteTx<'_>,
    order: PendingOrder,
    summary: &mut ImportSummary,
) -> Result<()> {
    if let (CustomerRef::Email(email), Some(name)) = (&order.customer, &order.customer_name)
        && matches!(tx.customer(&order.customer), Err(Error::NotFound { .. }))
    {
        tx.add_customer(&NewCustomer {
            name: parse_name("customer_name", name)?,
            email: email.clone(),
            phone: None,
        })?;
    }
    let new = NewOrder {
        customer: order.customer,
        items: order.items,
        paid: false,
        idempotency_key: Some(order.key),
    };
    let outcome = tx.place_order_with_status(&new, order.status)?;
    summary.rows += 1;
    if outcome.replayed {
        summary.unchanged += 1;
    } else {
        summary.created += 1;
    }
    Ok(())
}
