//! `/api/customers` and `/api/customers/{id}`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::{
    CustomerId, CustomerPatch, CustomerQuery, CustomerRef, MAX_CUSTOMER_IDS, NewCustomer,
    parse_email, parse_name,
};
use serde::Deserialize;

use super::Ctx;
use super::products::MAX_LIMIT;
use crate::http::{self, Page, Response};
use crate::problem::Problem;

const SERVER_SET: &[&str] = &["id", "created_at", "updated_at"];

pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    if let Some(ids) = q.get("id") {
        return by_ids(ctx, ids).await;
    }
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let query = CustomerQuery {
        search: q.get("q").cloned().filter(|s| !s.is_empty()),
        limit: Some(limit),
        after: http::query_num::<i64>(&q, "after")?.map(CustomerId),
    };
    let items = ctx
        .app
        .db
        .read_async(move |store| store.customers(&query))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |c| c.id.get()),
    ))
}

/// `GET /api/customers?id=3,7,9`: those customers (the ones that exist),
/// in one request; the dashboard names the customers of a page of orders
/// this way.
async fn by_ids(ctx: Ctx<'_>, ids: &str) -> Result<Response, Problem> {
    let ids = ids
        .split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<i64>()
                .map(CustomerId)
                .map_err(|_| Problem::bad_request(format!("id={id:?} is not a customer id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > MAX_CUSTOMER_IDS {
        return Err(Problem::bad_request(format!(
            "at most {MAX_CUSTOMER_IDS} ids at once"
        )));
    }
    let items = ctx
        .app
        .db
        .read_async(move |store| store.customers_by_ids(&ids))
        .await?;
    Ok(http::json(StatusCode::OK, &Page { items, next: None }))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    email: String,
    phone: Option<String>,
}

/// The new customer of `POST /api/customers`.
fn decode_create(bytes: &[u8]) -> Result<NewCustomer, Problem> {
    let fields = ["name", "email", "phone"];
    let body: CreateBody = http::parse_json_nullable(bytes, &fields, &["phone"], SERVER_SET)?;
    Ok(NewCustomer {
        name: parse_name("name", &body.name)?,
        email: parse_email(&body.email)?,
        phone: body
            .phone
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
    })
}

pub async fn create(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let new = decode_create(&bytes)?;
    let customer = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.add_customer(&new))
        .await?;
    Ok(http::json(StatusCode::CREATED, &customer))
}

/// A customer may read only its own record; any other id answers 404.
pub async fn get(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let id = CustomerId(ctx.id()?);
    if !ctx.access.can_see(id) {
        return Err(Problem::not_found(format!("customer {id} not found")));
    }
    let customer = ctx
        .app
        .db
        .read_async(move |store| store.customer(&CustomerRef::Id(id)))
        .await?;
    Ok(http::json(StatusCode::OK, &customer))
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    email: Option<String>,
    /// `null` clears the phone.
    #[serde(default, with = "double_option")]
    phone: Option<Option<String>>,
}

/// Distinguishes an absent field (leave alone) from `null` (clear).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// The changes of `PATCH /api/customers/{id}`.
fn decode_update(bytes: &[u8]) -> Result<CustomerPatch, Problem> {
    let fields = ["name", "email", "phone"];
    let body: UpdateBody = http::parse_json_nullable(bytes, &fields, &["phone"], SERVER_SET)?;
    Ok(CustomerPatch {
        name: body
            .name
            .as_deref()
            .map(|n| parse_name("name", n))
            .transpose()?,
        email: body.email.as_deref().map(parse_email).transpose()?,
        phone: body
            .phone
            .map(|p| p.map(|p| p.trim().to_string()).filter(|p| !p.is_empty())),
    })
}

/// Every body decoder of this module, as the fuzz targets call them.
pub(crate) fn decode_for_fuzzing(bytes: &[u8]) -> [bool; 2] {
    [decode_create(bytes).is_ok(), decode_update(bytes).is_ok()]
}

pub async fn update(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let id = CustomerId(ctx.id()?);
    let patch = decode_update(&bytes)?;
    let customer = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            tx.update_customer(&CustomerRef::Id(id), &patch)
        })
        .await?;
    Ok(http::json(StatusCode::OK, &customer))
}

pub async fn remove(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let id = CustomerId(ctx.id()?);
    ctx.app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            tx.remove_customer(&CustomerRef::Id(id))
        })
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}
