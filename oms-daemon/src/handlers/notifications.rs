//! `/api/notifications` and `/api/notifications/{id}/retry`: the e-mail
//! outbox (DESIGN §7), for admins.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::{NotificationFilter, NotificationId, NotificationStatus, OrderId};

use super::Ctx;
use super::products::MAX_LIMIT;
use crate::http::{self, Page, Response};
use crate::problem::Problem;

/// `GET /api/notifications?status=&order=&limit=&after=`, by id.
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let status = q
        .get("status")
        .filter(|v| !v.is_empty())
        .map(|s| {
            s.parse::<NotificationStatus>()
                .map_err(|e| Problem::bad_request(e.to_string()))
        })
        .transpose()?;
    let order = http::query_num::<i64>(&q, "order")?.map(OrderId);
    let filter = NotificationFilter {
        status,
        order,
        limit: Some(limit),
        after: http::query_num::<i64>(&q, "after")?.map(NotificationId),
    };
    let items = ctx
        .app
        .db
        .read_async(move |store| store.notifications(&filter))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |n| n.id.get()),
    ))
}

/// `POST /api/notifications/{id}/retry`: a dead row back to pending (409
/// for any other status). The body is empty or `{}`.
pub async fn retry(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let bytes = http::read_body(req, ctx.app.config.max_body).await?;
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        http::parse_json::<serde_json::Value>(&bytes, &[], &[])?;
    }
    let id = NotificationId(ctx.id()?);
    let notification = ctx
        .app
        .db
        .write_async(ctx.access.actor(), move |tx| tx.retry_notification(id))
        .await?;
    Ok(http::json(StatusCode::OK, &notification))
}
