//! `oms order`: placement, listing, status changes, edits, CSV import and
//! export, expiry.

use std::time::Duration;

use clap::{Args, Subcommand};
use oms_core::prelude::*;
use oms_core::{
    CustomerRef, ItemRequest, NewOrder, OrderFilter, OrderId, Status, Timestamp, csvio,
};

use super::Ctx;
use crate::error::{CliError, Result};
use crate::output::{data_line, error_line, note};

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Place an order: reserves every line or nothing (exit 4 lists every failing line).
    Place(PlaceArgs),
    /// List orders by id, filtered.
    List(ListArgs),
    /// Show one order with its items.
    Show {
        /// Order id.
        id: OrderId,
    },
    /// Replace the items of a PENDING order, reserving only the difference.
    Edit(EditArgs),
    /// Move an order to paid, fulfilled or cancelled (retrying the same status is a no-op).
    Status(StatusArgs),
    /// Mark orders PAID.
    #[command(after_help = BATCH_HELP)]
    Pay(IdsArgs),
    /// Ship PAID orders (FULFILLED): their units leave stock.
    #[command(after_help = BATCH_HELP)]
    Fulfill(IdsArgs),
    /// Cancel PENDING or PAID orders, releasing their stock.
    #[command(after_help = BATCH_HELP)]
    Cancel(IdsArgs),
    /// Remove a PENDING (stock released) or CANCELLED order.
    Remove {
        /// Order id.
        id: OrderId,
    },
    /// Write orders as CSV to stdout, one row per item (or per order with --by-order).
    Export(ExportArgs),
    /// Place orders from CSV; order_ref is the idempotency key, so re-running is safe.
    Import(super::ImportArgs),
    /// Cancel PENDING orders older than a limit, releasing their stock.
    Expire(ExpireArgs),
}

#[derive(Debug, Args)]
pub struct PlaceArgs {
    /// Customer id or e-mail.
    #[arg(long)]
    pub customer: String,
    /// A line as SKU:QTY (repeat for more lines; the same SKU twice is summed).
    #[arg(long = "item", required = true, value_name = "SKU:QTY")]
    pub items: Vec<String>,
    /// Payment already collected: place it directly as PAID.
    #[arg(long)]
    pub paid: bool,
    /// Retry-safe placement: the same key and contents return the original order.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Filters shared by `list` and `export`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// pending, paid, fulfilled or cancelled.
    #[arg(long)]
    pub status: Option<Status>,
    /// Customer id or e-mail.
    #[arg(long)]
    pub customer: Option<String>,
    /// Created at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<Timestamp>,
    /// Created before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub until: Option<Timestamp>,
    /// Text in the customer's name or e-mail, a SKU or product name, the order ref or tracking code.
    #[arg(long)]
    pub search: Option<String>,
    /// Only orders with an id greater than this (pagination cursor).
    #[arg(long)]
    pub after: Option<OrderId>,
}

impl FilterArgs {
    fn filter(&self, limit: Option<u64>) -> Result<OrderFilter> {
        Ok(OrderFilter {
            status: self.status,
            customer: self
                .customer
                .as_deref()
                .map(CustomerRef::parse)
                .transpose()?,
            since: self.since,
            until: self.until,
            search: self.search.clone(),
            limit,
            after: self.after,
            newest_first: false,
        })
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many orders (0: no limit).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many orders (none given, or 0: no limit).
    #[arg(long)]
    pub limit: Option<u64>,
    /// One row per order with an `items` column SKU*QTY;SKU*QTY.
    #[arg(long)]
    pub by_order: bool,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// Order id.
    pub id: OrderId,
    /// The new lines as SKU:QTY (they replace all current lines).
    #[arg(long = "item", required = true, value_name = "SKU:QTY")]
    pub items: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Order id.
    pub id: OrderId,
    /// paid, fulfilled or cancelled.
    pub status: Status,
}

/// How `pay`, `fulfill` and `cancel` treat several ids (also in the README).
const BATCH_HELP: &str = "\
Several ids: each order changes in its own transaction, so one failure undoes
nothing else. Every failure is reported on stderr as `error: order ID: ...`;
the orders that changed are printed as a list (-q: their ids). The exit code
is the most severe of the failures: 1 (internal) > 2 (usage) > 5 (invalid) >
4 (conflict) > 3 (not found); 0 when every order changed or already had the
status. Example: oms order list -q --status pending | xargs oms order pay";

#[derive(Debug, Args)]
pub struct IdsArgs {
    /// Order ids; `-` reads more ids from stdin, separated by spaces or lines.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<IdArg>,
}

/// An order id on the command line, or `-` for ids on stdin.
#[derive(Debug, Clone, Copy)]
pub enum IdArg {
    Id(OrderId),
    Stdin,
}

impl std::str::FromStr for IdArg {
    type Err = oms_core::Error;
    fn from_str(s: &str) -> oms_core::Result<IdArg> {
        if s == "-" {
            Ok(IdArg::Stdin)
        } else {
            s.parse().map(IdArg::Id)
        }
    }
}

impl IdsArgs {
    /// The ids in the order given, with `-` replaced by the ids on stdin
    /// (read once). A word on stdin that is not an id is a usage error,
    /// as it would be on the command line, and nothing is changed.
    fn resolve(&self) -> Result<Vec<OrderId>> {
        let mut ids = Vec::with_capacity(self.ids.len());
        let mut stdin_read = false;
        for arg in &self.ids {
            match arg {
                IdArg::Id(id) => ids.push(*id),
                IdArg::Stdin if stdin_read => {}
                IdArg::Stdin => {
                    stdin_read = true;
                    let text = std::io::read_to_string(std::io::stdin().lock())
                        .map_err(|e| CliError::io("cannot read order ids from stdin", e))?;
                    for word in text.split_whitespace() {
                        let id = word.parse::<OrderId>().map_err(|_| {
                            CliError::Usage(format!("stdin: {word:?} is not an order id"))
                        })?;
                        ids.push(id);
                    }
                }
            }
        }
        Ok(ids)
    }
}

#[derive(Debug, Args)]
pub struct ExpireArgs {
    /// Age limit, e.g. 30m, 24h, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub older_than: Duration,
    /// List what would be cancelled, changing nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn items(raw: &[String]) -> Result<Vec<ItemRequest>> {
    Ok(raw
        .iter()
        .map(|i| ItemRequest::parse(i))
        .collect::<oms_core::Result<_>>()?)
}

pub fn run(ctx: &Ctx, cmd: OrderCommand) -> Result {
    match cmd {
        OrderCommand::Place(args) => {
            let new = NewOrder {
                customer: CustomerRef::parse(&args.customer)?,
                items: items(&args.items)?,
                paid: args.paid,
                // Trimmed like the `Idempotency-Key` header and CSV cells,
                // so the key matches however it is given later.
                idempotency_key: args.idempotency_key.map(|k| k.trim().to_string()),
            };
            let store = ctx.db()?;
            let outcome = store.write(&ctx.actor, |tx| tx.place_order(&new))?;
            if outcome.replayed {
                note(&format!(
                    "idempotency key already used: this is order {}, nothing was written",
                    outcome.order.id
                ));
            }
            ctx.out().one(&outcome.order)
        }
        OrderCommand::List(args) => {
            let limit = super::list_limit(Some(args.limit));
            let orders = ctx.db()?.orders(&args.filter.filter(limit)?)?;
            ctx.out().list(&orders)
        }
        OrderCommand::Show { id } => ctx.out().one(&ctx.db()?.order(id)?),
        OrderCommand::Edit(args) => {
            let lines = items(&args.items)?;
            let store = ctx.db()?;
            let order = store.write(&ctx.actor, |tx| tx.edit_order(args.id, &lines, None))?;
            ctx.out().one(&order)
        }
        OrderCommand::Status(args) => set_status(ctx, args.id, args.status),
        OrderCommand::Pay(args) => set_statuses(ctx, &args, Status::Paid),
        OrderCommand::Fulfill(args) => set_statuses(ctx, &args, Status::Fulfilled),
        OrderCommand::Cancel(args) => set_statuses(ctx, &args, Status::Cancelled),
        OrderCommand::Remove { id } => {
            let store = ctx.db()?;
            let order = store.write(&ctx.actor, |tx| tx.remove_order(id))?;
            ctx.out().one(&order)
        }
        OrderCommand::Export(args) => {
            let filter = args.filter.filter(super::list_limit(args.limit))?;
            super::export(ctx, |store, out| {
                csvio::export_orders(store, &filter, args.by_order, out)
            })
        }
        OrderCommand::Import(args) => super::import(ctx, &args, "order", csvio::import_orders),
        OrderCommand::Expire(args) => {
            let cutoff = Timestamp::now().minus(args.older_than);
            let store = ctx.db()?;
            let expire = |tx: &oms_core::WriteTx<'_>| tx.expire_pending(cutoff);
            let outcome = if args.dry_run {
                store.dry_run(&ctx.actor, expire)?
            } else {
                store.write(&ctx.actor, expire)?
            };
            let verb = if args.dry_run {
                "would cancel"
            } else {
                "cancelled"
            };
            note(&format!(
                "{verb} {} pending order(s) older than {}",
                outcome.cancelled.len(),
                humantime::format_duration(args.older_than)
            ));
            for id in &outcome.cancelled {
                data_line(&id.to_string())?;
            }
            Ok(())
        }
    }
}

/// `pay`, `fulfill`, `cancel`: one id behaves exactly like `order status`;
/// several are changed one transaction each, every failure reported, and
/// the exit code is the most severe failure's (see `BATCH_HELP`).
fn set_statuses(ctx: &Ctx, args: &IdsArgs, to: Status) -> Result {
    let ids = args.resolve()?;
    if let [id] = ids[..] {
        return set_status(ctx, id, to);
    }
    if ids.is_empty() {
        return Err(CliError::Usage(
            "no order ids given (stdin was empty)".into(),
        ));
    }
    let store = ctx.db()?;
    let mut changed = Vec::with_capacity(ids.len());
    let mut failures = Vec::new();
    for &id in &ids {
        match store.write(&ctx.actor, |tx| tx.set_status(id, to, None)) {
            Ok(order) => changed.push(order),
            Err(e) => {
                let e = CliError::from(e);
                error_line(&format!("order {id}: {e}"));
                failures.push(e.exit_code());
            }
        }
    }
    ctx.out().list(&changed)?;
    match crate::error::most_severe(&failures) {
        None => Ok(()),
        Some(code) => Err(CliError::Batch {
            failed: failures.len(),
            total: ids.len(),
            code,
        }),
    }
}

fn set_status(ctx: &Ctx, id: OrderId, to: Status) -> Result {
    if to == Status::Pending {
        return Err(CliError::Usage(
            "an order cannot be moved to pending; use paid, fulfilled or cancelled".into(),
        ));
    }
    let store = ctx.db()?;
    let order = store.write(&ctx.actor, |tx| tx.set_status(id, to, None))?;
    ctx.out().one(&order)
}
