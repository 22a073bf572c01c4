//! Health, metrics and the OpenAPI document.

use hyper::StatusCode;
use serde_json::json;

use super::Ctx;
use crate::exposition;
use crate::http::{self, Response};
use crate::problem::Problem;

/// The OpenAPI document describing every route.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// 200 when the database answers a query and writes succeed; 503 when it
/// does not answer, or while writes are failing (the disk is full: reads
/// still work, but the shop cannot take an order, so a load balancer should
/// send traffic elsewhere and an operator be paged).
pub async fn healthz(ctx: Ctx<'_>) -> Result<Response, Problem> {
    match ctx.app.db.lookup(|store| store.ping()).await {
        Ok(()) => match ctx.app.db.write_failure() {
            None => Ok(http::json(StatusCode::OK, &json!({"status": "ok"}))),
            Some(failure) => Ok(http::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({
                    "status": "unavailable",
                    "detail": format!("writes are failing: {}", failure.cause),
                    "reads": "ok",
                    "writes": "failing",
                    "failing_since": failure.since,
                    "writes_refused": failure.refused,
                }),
            )),
        },
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            Ok(http::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "detail": "the database does not answer"}),
            ))
        }
    }
}

/// Prometheus metrics: OpenMetrics text when the scraper's `Accept` asks
/// for it, the classic text format 0.0.4 otherwise (see `exposition`). The
/// outbox gauges are read now (from the partial index of pending rows),
/// whoever delivers the mail.
pub async fn metrics(ctx: Ctx<'_>, accept: Option<String>) -> Result<Response, Problem> {
    let format = exposition::negotiate(accept.as_deref());
    let now = oms_core::Timestamp::now();
    match ctx
        .app
        .db
        .read_async(move |store| store.notification_backlog(now))
        .await
    {
        Ok(backlog) => ctx.app.metrics.set_outbox(&backlog, now),
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
    }
    let text = ctx.app.metrics.render(ctx.app.waiters.count());
    let body = match format {
        exposition::Format::OpenMetrics => text,
        exposition::Format::Classic => exposition::to_classic(&text),
    };
    let mut res = http::with_type(StatusCode::OK, format.content_type(), body);
    // Caches must not hand one scraper's format to another.
    res.headers_mut().insert(
        hyper::header::VARY,
        hyper::header::HeaderValue::from_static("accept"),
    );
    Ok(res)
}

pub fn openapi() -> Response {
    http::with_type(StatusCode::OK, "application/json", OPENAPI)
}
