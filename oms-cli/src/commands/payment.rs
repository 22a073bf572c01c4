//! `oms payment`: payments recorded by the webhook or by hand.

use clap::{Args, Subcommand};
use oms_core::payment::{PaymentFilter, PaymentOutcome};
use oms_core::prelude::*;
use oms_core::{OrderId, PaymentId};

use super::Ctx;
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// List payments by id, filtered.
    List(ListArgs),
    /// Show one payment.
    Show {
        /// Payment id.
        id: PaymentId,
    },
    /// Record cash or a bank transfer for a PENDING order and mark it PAID
    /// (provider "manual"); only its exact total is accepted (else exit 4,
    /// nothing written).
    Record(RecordArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only payments for this order.
    #[arg(long)]
    pub order: Option<OrderId>,
    /// applied, amount_mismatch, not_payable, unknown_order or failed.
    #[arg(long)]
    pub outcome: Option<PaymentOutcome>,
    /// At most this many payments (0 for all).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// Only payments with an id greater than this (pagination cursor).
    #[arg(long)]
    pub after: Option<PaymentId>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Order id.
    pub order: OrderId,
    /// The amount collected, e.g. 49.99: must be the order's total.
    #[arg(long)]
    pub amount: String,
    /// The transfer's or receipt's reference (unique among manual
    /// payments; default oms-order-ID).
    #[arg(long)]
    pub reference: Option<String>,
}

pub fn run(ctx: &Ctx, cmd: PaymentCommand) -> Result {
    match cmd {
        PaymentCommand::List(args) => {
            let filter = PaymentFilter {
                order: args.order,
                outcome: args.outcome,
                limit: (args.limit > 0).then_some(args.limit),
                after: args.after,
            };
            ctx.out().list(&ctx.db()?.payments(&filter)?)
        }
        PaymentCommand::Show { id } => ctx.out().one(&ctx.db()?.payment(id)?),
        PaymentCommand::Record(args) => {
            let store = ctx.db()?;
            let payment = store.write(&ctx.actor, |tx| {
                tx.record_manual_payment(args.order, &args.amount, args.reference.as_deref())
            })?;
            ctx.out().one(&payment)
        }
    }
}
