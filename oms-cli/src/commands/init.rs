//! `oms init`: create the database explicitly, set its currency, load demo
//! data.

use clap::Args;
use oms_core::{Currency, NewUser, Role, csvio, password};

use super::Ctx;
use crate::demo;
use crate::error::Result;
use crate::output::note;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Currency of every amount (ISO 4217), fixed once products or orders exist.
    #[arg(long, default_value = "USD")]
    pub currency: String,

    /// Load the demo catalogue, customers, orders and an admin login.
    /// Re-runnable: rows are upserted and demo orders placed once.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(ctx: &Ctx, args: InitArgs) -> Result {
    let currency = Currency::parse(&args.currency)?;
    let mut store = ctx.store()?;
    store.write(&ctx.actor, |tx| tx.set_currency(currency))?;
    if !args.demo {
        note(&format!(
            "initialised {} ({currency})",
            ctx.global.db.display()
        ));
        return Ok(());
    }
    // Hash outside the write transaction: it takes tens of milliseconds.
    let hash = password::hash(demo::ADMIN_PASSWORD)?;
    let (products, customers, orders) = store.write(&ctx.actor, |tx| {
        let products = csvio::import_products(tx, demo::PRODUCTS.as_bytes())?;
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
        "initialised {} ({currency}) with demo data: {} products, {} customers, {} orders ({} new)\n\
         demo admin login: {} / {}",
        ctx.global.db.display(),
        products.rows,
        customers.rows,
        orders.rows,
        orders.created,
        demo::ADMIN_EMAIL,
        demo::ADMIN_PASSWORD,
    ));
    Ok(())
}
