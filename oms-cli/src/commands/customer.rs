//! `oms customer`: customers, their CSV import and export.

use clap::{Args, Subcommand};
use oms_core::prelude::*;
use oms_core::{
    CustomerId, CustomerPatch, CustomerQuery, CustomerRef, NewCustomer, csvio, parse_email,
    parse_name,
};

use super::Ctx;
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Add a customer.
    Add(AddArgs),
    /// List customers by id.
    List(ListArgs),
    /// Show one customer (by id or e-mail).
    Show {
        /// Id or e-mail.
        customer: String,
    },
    /// Change a customer's name, e-mail or phone.
    Update(UpdateArgs),
    /// Remove a customer without orders or login.
    Remove {
        /// Id or e-mail.
        customer: String,
    },
    /// Upsert customers by e-mail from CSV (`name,email` required, `phone` optional).
    Import(super::ImportArgs),
    /// Write every customer as CSV to stdout.
    Export,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub phone: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Case-insensitive text in the name or e-mail.
    #[arg(long)]
    pub search: Option<String>,
    /// At most this many rows (none given, or 0: no limit).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only customers with an id greater than this (pagination cursor).
    #[arg(long)]
    pub after: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Id or e-mail.
    pub customer: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// New phone number (an empty string clears it).
    #[arg(long)]
    pub phone: Option<String>,
}

fn phone(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub fn run(ctx: &Ctx, cmd: CustomerCommand) -> Result {
    match cmd {
        CustomerCommand::Add(args) => {
            let new = NewCustomer {
                name: parse_name("name", &args.name)?,
                email: parse_email(&args.email)?,
                phone: args.phone.as_deref().and_then(phone),
            };
            let store = ctx.db()?;
            let customer = store.write(&ctx.actor, |tx| tx.add_customer(&new))?;
            ctx.out().one(&customer)
        }
        CustomerCommand::List(args) => {
            let query = CustomerQuery {
                search: args.search,
                limit: super::list_limit(args.limit),
                after: args.after.map(CustomerId),
            };
            ctx.out().list(&ctx.db()?.customers(&query)?)
        }
        CustomerCommand::Show { customer } => {
            let customer = ctx.db()?.customer(&CustomerRef::parse(&customer)?)?;
            ctx.out().one(&customer)
        }
        CustomerCommand::Update(args) => {
            let patch = CustomerPatch {
                name: args
                    .name
                    .as_deref()
                    .map(|n| parse_name("name", n))
                    .transpose()?,
                email: args.email.as_deref().map(parse_email).transpose()?,
                phone: args.phone.as_deref().map(phone),
            };
            let target = CustomerRef::parse(&args.customer)?;
            let store = ctx.db()?;
            let customer = store.write(&ctx.actor, |tx| tx.update_customer(&target, &patch))?;
            ctx.out().one(&customer)
        }
        CustomerCommand::Remove { customer } => {
            let target = CustomerRef::parse(&customer)?;
            let store = ctx.db()?;
            let customer = store.write(&ctx.actor, |tx| tx.remove_customer(&target))?;
            ctx.out().one(&customer)
        }
        CustomerCommand::Import(args) => super::import(ctx, &args, "customer", |tx, r| {
            csvio::import_customers(tx, r)
        }),
        CustomerCommand::Export => {
            super::export(ctx, |store, out| csvio::export_customers(store, out))
        }
    }
}
