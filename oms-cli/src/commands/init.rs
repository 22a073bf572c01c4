//! `oms init`: create the database explicitly, set its currency, load demo
//! data.

use clap::Args;
use oms_core::prelude::*;
use oms_core::{Currency, NewUser, Role, csvio, password};

use super::Ctx;
use crate::demo;
use crate::error::Result;
use crate::output::note;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Currency of every amount (ISO 4217), fixed once products or orders
    /// exist [default for a new database: USD].
    #[arg(long)]
    pub currency: Option<String>,

    /// Load the demo catalogue, customers, orders and an admin login.
    /// Re-runnable: a second run changes nothing.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(ctx: &Ctx, args: InitArgs) -> Result {
    let currency = args.currency.as_deref().map(Currency::parse).transpose()?;
    if args.demo {
        return load_demo(ctx, currency);
    }
    let store = ctx.db()?;
    if let Some(currency) = currency {
        store.write(&ctx.actor, |tx| tx.set_currency(currency))?;
    }
    note(&format!(
        "initialised {} ({})",
        ctx.global.db.display(),
        store.currency()
    ));
    Ok(())
}

/// Loads the demo catalogue, customers, orders and admin login. Re-running
/// it changes nothing: the catalogue is loaded only into a database without
/// products (a second load would reset stock the demo orders shipped), and
/// orders are placed once by their refs.
pub fn load_demo(ctx: &Ctx, currency: Option<Currency>) -> Result {
    let store = ctx.db()?;
    if let Some(currency) = currency {
        store.write(&ctx.actor, |tx| tx.set_currency(currency))?;
    }
    let fresh = store
        .products(&oms_core::ProductQuery::default())?
        .is_empty();
    // Hash outside the write transaction: it takes tens of milliseconds.
    let hash = password::hash(demo::ADMIN_PASSWORD)?;
    let (products, customers, orders) = store.write(&ctx.actor, |tx| {
        let products = if fresh {
            csvio::import_products(tx, demo::PRODUCTS.as_bytes())?
        } else {
            oms_core::ImportSummary::default()
        };
        let customers = csvio::import_customers(tx, demo::CUSTOMERS.as_bytes())?;
        let orders = csvio::import_orders(tx, demo::ORDERS.as_bytes())?;
        if tx.find_user(demo::ADMIN_EMAIL)?.is_none() {
            tx.add_user(&NewUser {
                email: demo::ADMIN_EMAIL.to_string(),
                name: "Demo Admin".to_string(),
                role: Role::Admin,
                password_hash: Some(hash),
            })?;
        }
        Ok((products, customers, orders))
    })?;
    note(&format!(
        "initialised {} ({}) with demo data: {} products, {} customers, {} orders ({} new)\n\
         demo admin login: {} / {}",
        ctx.global.db.display(),
        store.currency(),
        products.rows,
        customers.rows,
        orders.rows,
        orders.created,
        demo::ADMIN_EMAIL,
        demo::ADMIN_PASSWORD,
    ));
    Ok(())
}
