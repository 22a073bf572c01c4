//! All printing of data goes through here: one entity or a list, as a
//! table (tabled), JSON, JSON lines or CSV, or only ids with `-q`. Data goes
//! to stdout; messages go to stderr through [`note`].

use std::io::{self, BufWriter, Write};

use clap::ValueEnum;
use oms_core::csvio::{self, CsvWriter};
use oms_core::{Change, Customer, Order, Product, User};
use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

use crate::error::Result;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A human-readable table.
    Table,
    /// One JSON object for one entity, a JSON array for a list.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// A header row and one row per entity (RFC 4180).
    Csv,
}

/// Something that can be printed in every format.
pub trait Record: Serialize {
    /// Column names for table and CSV.
    fn columns() -> &'static [&'static str];
    /// Cells in `columns()` order.
    fn cells(&self) -> Vec<String>;
    /// The id printed by `-q`.
    fn id(&self) -> String;
    /// Which columns a list table shows (indexes into `columns()`): the
    /// table is for people, JSON and CSV carry every field.
    fn table_columns() -> &'static [usize] {
        &[]
    }
}

/// Keeps the cells a list table shows.
fn pick<T: Record>(cells: Vec<String>) -> Vec<String> {
    let keep = T::table_columns();
    if keep.is_empty() {
        return cells;
    }
    cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, c)| c)
        .collect()
}

/// Where and how to print.
pub struct Output {
    pub format: Format,
    pub quiet: bool,
}

impl Output {
    /// Prints one entity.
    pub fn one<T: Record>(&self, item: &T) -> Result {
        let mut out = BufWriter::new(io::stdout().lock());
        if self.quiet {
            writeln!(out, "{}", item.id())?;
            return Ok(out.flush()?);
        }
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, item).map_err(json_error)?;
                writeln!(out)?;
            }
            Format::Jsonl => {
                serde_json::to_writer(&mut out, item).map_err(json_error)?;
                writeln!(out)?;
            }
            Format::Csv => {
                let mut w = CsvWriter::new(&mut out, T::columns())?;
                w.row(item.cells().iter().map(String::as_str))?;
                w.flush()?;
            }
            Format::Table => {
                let mut b = Builder::default();
                for (name, value) in T::columns().iter().zip(item.cells()) {
                    b.push_record([name.to_string(), value]);
                }
                writeln!(out, "{}", b.build().with(Style::sharp()))?;
            }
        }
        Ok(out.flush()?)
    }

    /// Prints a list.
    pub fn list<T: Record>(&self, items: &[T]) -> Result {
        let mut out = BufWriter::new(io::stdout().lock());
        if self.quiet {
            for item in items {
                writeln!(out, "{}", item.id())?;
            }
            return Ok(out.flush()?);
        }
        match self.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, items).map_err(json_error)?;
                writeln!(out)?;
            }
            Format::Jsonl => {
                for item in items {
                    serde_json::to_writer(&mut out, item).map_err(json_error)?;
                    writeln!(out)?;
                }
            }
            Format::Csv => {
                let mut w = CsvWriter::new(&mut out, T::columns())?;
                for item in items {
                    w.row(item.cells().iter().map(String::as_str))?;
                }
                w.flush()?;
            }
            Format::Table => {
                let mut b = Builder::default();
                b.push_record(pick::<T>(
                    T::columns().iter().map(|c| c.to_string()).collect(),
                ));
                for item in items {
                    b.push_record(pick::<T>(item.cells()));
                }
                writeln!(out, "{}", b.build().with(Style::sharp()))?;
                if items.is_empty() {
                    note("(no rows)");
                }
            }
        }
        Ok(out.flush()?)
    }
}

fn json_error(e: serde_json::Error) -> crate::CliError {
    match e.io_error_kind() {
        Some(kind) => crate::CliError::io("writing output", io::Error::from(kind)),
        None => crate::CliError::io("writing JSON", io::Error::other(e)),
    }
}

/// A message for the human at the terminal (stderr), never data.
pub fn note(message: &str) {
    eprintln!("{message}");
}

/// An error for the human at the terminal (stderr): `error: ...`.
pub fn error_line(message: &str) {
    eprintln!("error: {message}");
}

/// One line of data on stdout (an id, a token, a report line). A closed
/// pipe is an error to return (`oms ... | head` ends quietly), not a panic.
pub fn data_line(text: &str) -> Result {
    use std::io::Write as _;
    writeln!(io::stdout().lock(), "{text}").map_err(|e| crate::CliError::io("writing output", e))
}

impl Record for Product {
    fn columns() -> &'static [&'static str] {
        &csvio::PRODUCT_COLUMNS
    }
    fn cells(&self) -> Vec<String> {
        csvio::product_cells(self)
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn table_columns() -> &'static [usize] {
        &[0, 1, 2, 3, 4, 5, 6, 7]
    }
}

impl Record for Customer {
    fn columns() -> &'static [&'static str] {
        &csvio::CUSTOMER_COLUMNS
    }
    fn cells(&self) -> Vec<String> {
        csvio::customer_cells(self)
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn table_columns() -> &'static [usize] {
        &[0, 1, 2, 3, 4]
    }
}

impl Record for User {
    fn columns() -> &'static [&'static str] {
        &["id", "email", "name", "role", "customer_id", "created_at"]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.email.clone(),
            self.name.clone(),
            self.role.to_string(),
            self.customer_id.map(|c| c.to_string()).unwrap_or_default(),
            self.created_at.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
}

impl Record for Order {
    fn columns() -> &'static [&'static str] {
        &[
            "id",
            "customer_id",
            "status",
            "items",
            "total",
            "currency",
            "payment_collected",
            "tracking_code",
            "idempotency_key",
            "version",
            "created_at",
            "updated_at",
        ]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.customer_id.to_string(),
            self.status.to_string(),
            csvio::items_cell(self.items.iter().map(|i| (i.sku.as_str(), i.quantity))),
            self.total.to_string(),
            self.currency.to_string(),
            self.payment_collected.to_string(),
            self.tracking_code.clone(),
            self.idempotency_key.clone().unwrap_or_default(),
            self.version.to_string(),
            self.created_at.to_string(),
            self.updated_at.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn table_columns() -> &'static [usize] {
        &[0, 1, 2, 3, 4, 5, 10]
    }
}

impl Record for Change {
    fn columns() -> &'static [&'static str] {
        &["seq", "at", "type", "entity", "entity_id", "actor", "data"]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.seq.to_string(),
            self.at.to_string(),
            self.kind.clone(),
            self.entity.clone(),
            self.entity_id.to_string(),
            self.actor.clone(),
            self.data.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.seq.to_string()
    }
}

impl Record for oms_core::payment::Payment {
    fn columns() -> &'static [&'static str] {
        &[
            "id",
            "order_id",
            "provider",
            "provider_payment_id",
            "event_id",
            "amount",
            "currency",
            "status",
            "outcome",
            "refunded_amount",
            "created_at",
            "updated_at",
        ]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.order_id.map(|o| o.to_string()).unwrap_or_default(),
            self.provider.to_string(),
            self.provider_payment_id.clone(),
            self.event_id.clone().unwrap_or_default(),
            self.amount.to_string(),
            self.currency.to_string(),
            self.status.to_string(),
            self.outcome.to_string(),
            self.refunded_amount.to_string(),
            self.created_at.to_string(),
            self.updated_at.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn table_columns() -> &'static [usize] {
        &[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
    }
}

impl Record for oms_core::Notification {
    fn columns() -> &'static [&'static str] {
        &[
            "id",
            "order_id",
            "recipient",
            "kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "message_id",
            "created_at",
            "sent_at",
        ]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.order_id.to_string(),
            self.recipient.clone(),
            self.kind.to_string(),
            self.status.to_string(),
            self.attempts.to_string(),
            self.next_attempt_at.to_string(),
            self.last_error.clone().unwrap_or_default(),
            self.message_id.clone().unwrap_or_default(),
            self.created_at.to_string(),
            self.sent_at.map(|t| t.to_string()).unwrap_or_default(),
        ]
    }
    fn id(&self) -> String {
        self.id.to_string()
    }
    fn table_columns() -> &'static [usize] {
        &[0, 1, 2, 3, 4, 5, 6, 7]
    }
}

impl Record for oms_core::ImportSummary {
    fn columns() -> &'static [&'static str] {
        &["rows", "created", "updated", "unchanged", "dry_run"]
    }
    fn cells(&self) -> Vec<String> {
        vec![
            self.rows.to_string(),
            self.created.to_string(),
            self.updated.to_string(),
            self.unchanged.to_string(),
            self.dry_run.to_string(),
        ]
    }
    fn id(&self) -> String {
        self.rows.to_string()
    }
}
