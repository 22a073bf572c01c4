//! `/api/products` and `/api/products/{id}` (id or SKU).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::{
    NewProduct, ProductId, ProductPatch, ProductQuery, ProductRef, Restock, Sku, parse_name,
};
use serde::Deserialize;

use super::Ctx;
use crate::http::{self, Page, Response};
use crate::problem::Problem;

/// Largest page.
pub const MAX_LIMIT: u64 = 500;
const DEFAULT_LIMIT: u64 = 50;

const SERVER_SET: &[&str] = &[
    "id",
    "stock_reserved",
    "stock_available",
    "created_at",
    "updated_at",
];

pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let query = ProductQuery {
        search: q.get("q").cloned().filter(|s| !s.is_empty()),
        limit: Some(limit),
        after: http::query_num::<i64>(&q, "after")?.map(ProductId),
    };
    let items = ctx
        .app
        .db
        .read_async(move |store| store.products(&query))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |p| p.id.get()),
    ))
}

#[derive(Deserialize)]
struct CreateBody {
    sku: String,
    name: String,
    price: String,
    #[serde(default)]
    stock_on_hand: i64,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// The body of `POST /api/products` with its SKU and name checked; the
/// price is parsed in the database's currency inside the write.
fn decode_create(bytes: &[u8]) -> Result<(CreateBody, Sku, String), Problem> {
    let body: CreateBody = http::parse_json(
        bytes,
        &["sku", "name", "price", "stock_on_hand", "active"],
        SERVER_SET,
    )?;
    let sku = Sku::parse(&body.sku)?;
    let name = parse_name("name", &body.name)?;
    Ok((body, sku, name))
}

pub async fn create(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let (body, sku, name) = decode_create(&bytes)?;
    let product = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            let price = tx.currency().parse_amount(&body.price)?;
            tx.add_product(&NewProduct {
                sku: sku.clone(),
                name: name.clone(),
                price,
                stock_on_hand: body.stock_on_hand,
                active: body.active,
            })
        })
        .await?;
    Ok(http::json(StatusCode::CREATED, &product))
}

fn product_ref(ctx: &Ctx<'_>) -> Result<ProductRef, Problem> {
    let param = ctx.param.as_deref().unwrap_or_default();
    Ok(ProductRef::parse(param)?)
}

pub async fn get(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let target = product_ref(&ctx)?;
    let product = ctx
        .app
        .db
        .lookup(move |store| store.product(&target))
        .await?;
    if oms_core::controls::PRODUCT_TYPE {
        // Negative control: a number sent as a string, against the contract.
        let mut value = serde_json::to_value(&product).map_err(|_| Problem::internal())?;
        value["stock_available"] = value["stock_available"].to_string().into();
        return Ok(http::json(StatusCode::OK, &value));
    }
    Ok(http::json(StatusCode::OK, &product))
}

#[derive(Deserialize)]
struct UpdateBody {
    sku: Option<String>,
    name: Option<String>,
    price: Option<String>,
    active: Option<bool>,
    /// A stocktake: sets on hand (refused below what is reserved).
    stock_on_hand: Option<i64>,
}

type Update = (UpdateBody, Option<Sku>, Option<String>);

/// The body of `PATCH /api/products/{id}` with its SKU and name checked.
fn decode_update(bytes: &[u8]) -> Result<Update, Problem> {
    let body: UpdateBody = http::parse_json(
        bytes,
        &["sku", "name", "price", "active", "stock_on_hand"],
        SERVER_SET,
    )?;
    let sku = body.sku.as_deref().map(Sku::parse).transpose()?;
    let name = body
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    Ok((body, sku, name))
}

/// Every body decoder of this module, as the fuzz targets call them, with
/// prices parsed in a two-decimal currency as the write would.
pub(crate) fn decode_for_fuzzing(bytes: &[u8]) -> [bool; 3] {
    let usd = oms_core::Currency::USD;
    let create = decode_create(bytes).and_then(|(body, ..)| Ok(usd.parse_amount(&body.price)?));
    let update = decode_update(bytes).and_then(|(body, ..)| {
        Ok(body
            .price
            .as_deref()
            .map(|p| usd.parse_amount(p))
            .transpose()?)
    });
    [
        create.is_ok(),
        update.is_ok(),
        decode_restock(bytes).is_ok(),
    ]
}

pub async fn update(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let target = product_ref(&ctx)?;
    let (body, sku, name) = decode_update(&bytes)?;
    let product = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            let price = body
                .price
                .as_deref()
                .map(|p| tx.currency().parse_amount(p))
                .transpose()?;
            let mut product = tx.update_product(
                &target,
                &ProductPatch {
                    sku: sku.clone(),
                    name: name.clone(),
                    price,
                    active: body.active,
                },
            )?;
            if let Some(count) = body.stock_on_hand {
                product = tx.restock(&ProductRef::Id(product.id), Restock::Set(count))?;
            }
            Ok(product)
        })
        .await?;
    Ok(http::json(StatusCode::OK, &product))
}

pub async fn remove(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let target = product_ref(&ctx)?;
    ctx.app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.remove_product(&target))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
struct RestockBody {
    add: Option<i64>,
    set: Option<i64>,
}

/// The body of `POST /api/products/{id}/restock`: exactly one of `add`
/// (units received) and `set` (a count).
fn decode_restock(bytes: &[u8]) -> Result<Restock, Problem> {
    let body: RestockBody = http::parse_json(bytes, &["add", "set"], SERVER_SET)?;
    match (body.add, body.set) {
        (Some(n), None) => Ok(Restock::Add(n)),
        (None, Some(n)) => Ok(Restock::Set(n)),
        _ => Err(Problem::unprocessable(
            "give exactly one of add or set",
            vec![crate::problem::FieldError {
                field: "add".into(),
                message: "give exactly one of add (units received) or set (a count)".into(),
            }],
        )),
    }
}

/// `POST /api/products/{id}/restock`: `oms product restock` over HTTP.
/// Adding is done inside the write transaction, so two restocks at once
/// both count (a stocktake through `PATCH` sets a number instead).
pub async fn restock(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let target = product_ref(&ctx)?;
    let how = decode_restock(&bytes)?;
    let product = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.restock(&target, how))
        .await?;
    Ok(http::json(StatusCode::OK, &product))
}
