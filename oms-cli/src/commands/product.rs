//! `oms product`: the catalogue, stock adjustments, CSV import and export.

use clap::{ArgGroup, Args, Subcommand};
use oms_core::prelude::*;
use oms_core::{
    NewProduct, ProductId, ProductPatch, ProductQuery, ProductRef, Restock, Sku, csvio, parse_name,
};

use super::Ctx;
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Add a product.
    Add(AddArgs),
    /// List products by id.
    List(ListArgs),
    /// Show one product (by SKU or id).
    Show {
        /// SKU or id.
        product: String,
    },
    /// Change a product's SKU, name, price or active flag.
    Update(UpdateArgs),
    /// Remove a product that no order mentions.
    Remove {
        /// SKU or id.
        product: String,
    },
    /// Adjust stock on hand: --add N (negative removes) or --set N.
    Restock(RestockArgs),
    /// Upsert products by SKU from CSV (`sku,name,price` required; `stock_on_hand,active` optional).
    Import(super::ImportArgs),
    /// Write every product as CSV to stdout.
    Export,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub sku: String,
    #[arg(long)]
    pub name: String,
    /// Unit price as a decimal, e.g. 49.99.
    #[arg(long)]
    pub price: String,
    /// Units on hand.
    #[arg(long, default_value_t = 0)]
    pub stock: i64,
    /// Add it inactive (not for sale).
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Case-insensitive text in the name or SKU.
    #[arg(long)]
    pub search: Option<String>,
    /// At most this many rows (none given, or 0: no limit).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only products with an id greater than this (pagination cursor).
    #[arg(long)]
    pub after: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// SKU or id.
    pub product: String,
    #[arg(long)]
    pub sku: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub price: Option<String>,
    /// true to sell it, false to stop selling it.
    #[arg(long)]
    pub active: Option<bool>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("how").required(true).args(["add", "set"])))]
pub struct RestockArgs {
    /// SKU or id.
    pub product: String,
    /// Units to add (negative to remove).
    #[arg(long, allow_negative_numbers = true)]
    pub add: Option<i64>,
    /// The new count on hand after a stocktake.
    #[arg(long)]
    pub set: Option<i64>,
}

pub fn run(ctx: &Ctx, cmd: ProductCommand) -> Result {
    match cmd {
        ProductCommand::Add(args) => {
            let store = ctx.db()?;
            let new = NewProduct {
                sku: Sku::parse(&args.sku)?,
                name: parse_name("name", &args.name)?,
                price: store.currency().parse_amount(&args.price)?,
                stock_on_hand: args.stock,
                active: !args.inactive,
            };
            let product = store.write(&ctx.actor, |tx| tx.add_product(&new))?;
            ctx.out().one(&product)
        }
        ProductCommand::List(args) => {
            let query = ProductQuery {
                search: args.search,
                limit: super::list_limit(args.limit),
                after: args.after.map(ProductId),
            };
            ctx.out().list(&ctx.db()?.products(&query)?)
        }
        ProductCommand::Show { product } => {
            let product = ctx.db()?.product(&ProductRef::parse(&product)?)?;
            ctx.out().one(&product)
        }
        ProductCommand::Update(args) => {
            let store = ctx.db()?;
            let patch = ProductPatch {
                sku: args.sku.as_deref().map(Sku::parse).transpose()?,
                name: args
                    .name
                    .as_deref()
                    .map(|n| parse_name("name", n))
                    .transpose()?,
                price: args
                    .price
                    .as_deref()
                    .map(|p| store.currency().parse_amount(p))
                    .transpose()?,
                active: args.active,
            };
            let target = ProductRef::parse(&args.product)?;
            let product = store.write(&ctx.actor, |tx| tx.update_product(&target, &patch))?;
            ctx.out().one(&product)
        }
        ProductCommand::Remove { product } => {
            let target = ProductRef::parse(&product)?;
            let store = ctx.db()?;
            let product = store.write(&ctx.actor, |tx| tx.remove_product(&target))?;
            ctx.out().one(&product)
        }
        ProductCommand::Restock(args) => {
            let how = match (args.add, args.set) {
                (Some(n), _) => Restock::Add(n),
                (None, Some(n)) => Restock::Set(n),
                (None, None) => unreachable!("clap requires --add or --set"),
            };
            let target = ProductRef::parse(&args.product)?;
            let store = ctx.db()?;
            let product = store.write(&ctx.actor, |tx| tx.restock(&target, how))?;
            ctx.out().one(&product)
        }
        ProductCommand::Import(args) => {
            super::import(ctx, &args, "product", csvio::import_products)
        }
        ProductCommand::Export => {
            super::export(ctx, |store, out| csvio::export_products(store, out))
        }
    }
}
