//! `/api/orders`, `/api/orders/{id}`, `/api/orders/{id}/status`,
//! `/api/orders/export.csv` and `/api/track/{tracking_code}`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH, LOCATION};
use hyper::{Request, StatusCode};
use oms_core::{
    CustomerId, CustomerRef, Error, ItemRequest, NewOrder, Order, OrderFilter, OrderId, ProductId,
    ProductRef, Quantity, Status, Timestamp, csvio,
};
use serde::Deserialize;
use serde_json::json;

use super::Ctx;
use super::products::MAX_LIMIT;
use crate::http::{self, Page, Response};
use crate::problem::{FieldError, Problem};

const SERVER_SET: &[&str] = &[
    "id",
    "status",
    "total",
    "currency",
    "tracking_code",
    "idempotency_key",
    "version",
    "created_at",
    "updated_at",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    sku: Option<String>,
    product_id: Option<i64>,
    quantity: i64,
}

#[derive(Deserialize)]
struct PlaceBody {
    customer_id: Option<i64>,
    items: Vec<ItemBody>,
    #[serde(default)]
    payment_collected: bool,
}

/// The body of `POST /api/orders`; its items are checked by [`items`] once
/// the caller may place for that customer.
fn decode_place(bytes: &[u8]) -> Result<PlaceBody, Problem> {
    http::parse_json(
        bytes,
        &["customer_id", "items", "payment_collected"],
        SERVER_SET,
    )
}

fn items(body: Vec<ItemBody>) -> Result<Vec<ItemRequest>, Problem> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(body.len());
    for (i, item) in body.into_iter().enumerate() {
        let product = match (item.sku, item.product_id) {
            (Some(sku), None) => ProductRef::parse(&sku).map_err(|e| e.to_string()),
            (None, Some(id)) => Ok(ProductRef::Id(ProductId(id))),
            _ => Err("give exactly one of sku or product_id".to_string()),
        };
        let quantity = Quantity::new(item.quantity).map_err(|e| e.to_string());
        match (product, quantity) {
            (Ok(product), Ok(quantity)) => out.push(ItemRequest { product, quantity }),
            (Err(m), _) | (_, Err(m)) => errors.push(FieldError {
                field: format!("items[{i}]"),
                message: m,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Problem::unprocessable("invalid items", errors))
    }
}

/// An order answer with its version as the ETag.
fn order_response(status: StatusCode, order: &Order) -> Response {
    let mut res = http::json(status, order);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", order.version)) {
        res.headers_mut().insert(ETAG, v);
    }
    res
}

/// Places an order. A customer places for itself; an admin names the
/// customer. `Idempotency-Key` replays the first answer for the same body,
/// answers 422 for another body and 409 while the first is in flight.
pub async fn place(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let key_header = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().ok().map(str::to_string));
    // The body is read before anything is refused (see `http::discard_body`).
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let key = match key_header {
        None => None,
        Some(v) => Some(
            v.as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Problem::bad_request(
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    )
                })?
                .to_string(),
        ),
    };
    let body = decode_place(&bytes)?;
    let customer = match (ctx.access.own_customer(), body.customer_id) {
        (Some(own), None) => own,
        (Some(own), Some(given)) if given == own.get() => own,
        (Some(_), Some(_)) => {
            return Err(Problem::forbidden(
                "a customer places orders only for itself",
            ));
        }
        (None, Some(given)) => CustomerId(given),
        (None, None) => {
            return Err(Problem::unprocessable(
                "customer_id is required",
                vec![FieldError {
                    field: "customer_id".into(),
                    message: "required for an admin".into(),
                }],
            ));
        }
    };
    if body.payment_collected && !ctx.access.is_admin() {
        return Err(Problem::forbidden(
            "only an admin can place an order as paid",
        ));
    }
    let new = NewOrder {
        customer: CustomerRef::Id(customer),
        items: items(body.items)?,
        paid: body.payment_collected,
        idempotency_key: key.clone(),
    };
    // A retry while the first request with its key is still in flight, in
    // this process or another one serving the same shop, is told to come
    // back later; the claim ends with this request, however it ends.
    let _claim = match &key {
        Some(k) => Some(
            ctx.app
                .db
                .claim_idempotency_key(&ctx.access.actor(), k)
                .await?
                .ok_or_else(|| {
                    Problem::conflict(
                        "a request with this Idempotency-Key is still in progress; retry later",
                    )
                })?,
        ),
        None => None,
    };
    let outcome = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.place_order(&new))
        .await?;
    // The order as placed, serialised once in the core; a replay answers
    // exactly what the first request got.
    let mut res = http::with_type(StatusCode::CREATED, "application/json", outcome.placed_json);
    res.headers_mut()
        .insert(ETAG, HeaderValue::from_static("\"1\""));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/orders/{}", outcome.order.id)) {
        res.headers_mut().insert(LOCATION, v);
    }
    if outcome.replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    } else {
        ctx.app.metrics.order_placed();
    }
    Ok(res)
}

/// The filters of list and export, from the query string. A customer's
/// filter is pinned to itself; a named customer must exist (404), so the
/// export can refuse it before it starts streaming.
async fn filter(
    ctx: &Ctx<'_>,
    q: &HashMap<String, String>,
    limit: Option<u64>,
) -> Result<OrderFilter, Problem> {
    let time = |name: &str| -> Result<Option<Timestamp>, Problem> {
        q.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| Timestamp::parse(v).map_err(|e| Problem::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    let requested = q
        .get("customer")
        .filter(|v| !v.is_empty())
        .map(|c| CustomerRef::parse(c).map_err(|e| Problem::bad_request(e.to_string())))
        .transpose()?;
    // Everything but the customer first, so a malformed query is a 400
    // whatever customer it names.
    let filter = OrderFilter {
        status: q
            .get("status")
            .filter(|v| !v.is_empty())
            .map(|s| {
                s.parse::<Status>()
                    .map_err(|e| Problem::bad_request(e.to_string()))
            })
            .transpose()?,
        customer: None,
        since: time("since")?,
        until: time("until")?,
        search: q.get("q").cloned().filter(|s| !s.is_empty()),
        limit,
        after: http::query_num::<i64>(q, "after")?.map(OrderId),
        newest_first: match q.get("direction").map(|v| v.trim()) {
            None | Some("" | "asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "direction={other:?}: give asc (oldest first) or desc (newest first)"
                )));
            }
        },
    };
    let forbidden = || Problem::forbidden("a customer lists only its own orders");
    let customer = match (ctx.access.own_customer(), requested) {
        (own, None) => own.map(CustomerRef::Id),
        (Some(own), Some(CustomerRef::Id(id))) => {
            if id != own {
                return Err(forbidden());
            }
            Some(CustomerRef::Id(own))
        }
        // A customer may name itself by e-mail; any other e-mail, known or
        // not, is refused alike, so it learns nothing about other customers.
        (Some(own), Some(named)) => {
            let found = ctx
                .app
                .db
                .read_async(move |store| store.customer(&named))
                .await;
            if !found.is_ok_and(|c| c.id == own) {
                return Err(forbidden());
            }
            Some(CustomerRef::Id(own))
        }
        // An admin naming an unknown customer gets 404 before anything is
        // streamed.
        (None, Some(named)) => {
            let found = ctx
                .app
                .db
                .read_async(move |store| store.customer(&named))
                .await?;
            Some(CustomerRef::Id(found.id))
        }
    };
    Ok(OrderFilter { customer, ..filter })
}

pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let filter = filter(&ctx, &q, Some(limit)).await?;
    let items = ctx
        .app
        .db
        .read_async(move |store| store.orders(&filter))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |o| o.id.get()),
    ))
}

/// Loads an order the caller may see; another customer's order is 404.
async fn visible_order(ctx: &Ctx<'_>) -> Result<Order, Problem> {
    let id = OrderId(ctx.id()?);
    let order = ctx.app.db.lookup(move |store| store.order(id)).await?;
    if !oms_core::controls::OWNER_CHECK && !ctx.access.can_see(order.customer_id) {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    Ok(order)
}

pub async fn get(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let order = visible_order(&ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// The version in `If-Match` (`"3"`, `W/"3"` or `3`), if any.
fn if_match(req: &Request<Incoming>) -> Result<Option<i64>, Problem> {
    match req.headers().get(IF_MATCH) {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().unwrap_or_default().trim();
            if text == "*" {
                return Ok(None);
            }
            text.trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .map(Some)
                .map_err(|_| {
                    Problem::bad_request("If-Match must carry an order version such as \"3\"")
                })
        }
    }
}

#[derive(Deserialize)]
struct EditBody {
    items: Vec<ItemBody>,
}

/// The new items of `PATCH /api/orders/{id}`.
fn decode_edit(bytes: &[u8]) -> Result<Vec<ItemRequest>, Problem> {
    let body: EditBody = http::parse_json(bytes, &["items"], SERVER_SET)?;
    items(body.items)
}

pub async fn edit(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let expected = if_match(&req);
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let id = OrderId(ctx.id()?);
    let expected = expected?;
    let lines = decode_edit(&bytes)?;
    let order = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            tx.edit_order(id, &lines, expected)
        })
        .await?;
    Ok(order_response(StatusCode::OK, &order))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

/// The requested status of `PUT /api/orders/{id}/status`.
fn decode_status(bytes: &[u8]) -> Result<Status, Problem> {
    let body: StatusBody = http::parse_json(bytes, &["status"], &[])?;
    Ok(body.status.parse()?)
}

/// Every body decoder of this module, as the fuzz targets call them.
pub(crate) fn decode_for_fuzzing(bytes: &[u8]) -> [bool; 3] {
    let place = decode_place(bytes).and_then(|body| items(body.items));
    [
        place.is_ok(),
        decode_edit(bytes).is_ok(),
        decode_status(bytes).is_ok(),
    ]
}

/// Admins move orders along the status machine; a customer may only
/// cancel its own PENDING order: any other status is 403, and an order past
/// PENDING is 409 (checked inside the write transaction, so a concurrent
/// payment cannot slip between check and change).
pub async fn set_status(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let expected = if_match(&req);
    let bytes = http::read_json_body(req, ctx.app.config.max_body).await?;
    let id = OrderId(ctx.id()?);
    let expected = expected?;
    let to = decode_status(&bytes)?;
    let own = ctx.access.own_customer();
    if own.is_some() {
        // Another customer's order is 404 whatever is asked; paying or
        // fulfilling is the admin's job, so asking for it is the wrong role
        // (403), not a conflict with the order's state.
        visible_order(&ctx).await?;
        if to != Status::Cancelled {
            return Err(Problem::forbidden(
                "a customer may only cancel its own PENDING order",
            ));
        }
    }
    let order = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| {
            if let Some(own) = own {
                let order = tx.order(id)?;
                if order.customer_id != own {
                    return Err(Error::not_found("order", id));
                }
                if to != Status::Cancelled
                    || !matches!(order.status, Status::Pending | Status::Cancelled)
                {
                    return Err(Error::Conflict(format!(
                        "a customer may only cancel its own PENDING order; order {id} is {}",
                        order.status
                    )));
                }
            }
            tx.set_status(id, to, expected)
        })
        .await?;
    Ok(order_response(StatusCode::OK, &order))
}

pub async fn remove(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let id = OrderId(ctx.id()?);
    ctx.app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.remove_order(id))
        .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// Public tracking: status and timestamps only, no personal data.
pub async fn track(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let code = ctx.param.clone().unwrap_or_default();
    let order = ctx
        .app
        .db
        .read_async(move |store| store.order_by_tracking_code(&code))
        .await
        .map_err(|_| Problem::not_found("unknown tracking code"))?;
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "tracking_code": order.tracking_code,
            "status": order.status,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        }),
    ))
}

/// Streams the CSV export chunk by chunk: a blocking task writes into a
/// bounded channel, so memory stays constant and a slow client slows the
/// export instead of buffering it.
pub async fn export(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?;
    // The export streams in id order; `direction` is the list's alone.
    let filter = OrderFilter {
        newest_first: false,
        ..filter(&ctx, &q, limit).await?
    };
    let by_order = match q.get("by_order").map(|v| v.trim()) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "by_order={other:?}: give true, 1, false or 0"
            )));
        }
    };
    let db = Arc::clone(&ctx.app.db);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        // The handle reads the export with a connection of its own, in
        // batches, so a slow client neither holds a reader of the pool nor
        // pins a snapshot.
        let result = csvio::export_orders(&*db, &filter, by_order, sink);
        if let Err(e) = result {
            // Headers are gone already: end the body with an error so the
            // client sees a broken transfer, not a short file.
            tracing::warn!(error = %e, "order export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut res = hyper::Response::new(StreamBody::new(stream).boxed());
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    res.headers_mut().insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"export.csv\""),
    );
    Ok(res)
}

const CHUNK: usize = 64 * 1024;

/// Collects CSV bytes into chunks and hands them to the response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(Frame::data(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}
