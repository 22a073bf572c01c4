//! Health, metrics and the OpenAPI document.

use hyper::StatusCode;
use serde_json::json;

use super::Ctx;
use crate::http::{self, Response};
use crate::problem::Problem;

/// The OpenAPI document describing every route.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// 200 when the database answers a query, 503 otherwise.
pub async fn healthz(ctx: Ctx<'_>) -> Result<Response, Problem> {
    match ctx.app.db.lookup(|store| store.ping()).await {
        Ok(()) => Ok(http::json(StatusCode::OK, &json!({"status": "ok"}))),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            Ok(http::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "detail": "the database does not answer"}),
            ))
        }
    }
}

/// Prometheus text format. The outbox gauges are read now (from the
/// partial index of pending rows), whoever delivers the mail.
pub async fn metrics(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let now = oms_core::Timestamp::now();
    match ctx
        .app
        .db
        .read(move |store| store.notification_backlog(now))
        .await
    {
        Ok(backlog) => ctx.app.metrics.set_outbox(&backlog, now),
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox backlog"),
    }
    let text = ctx.app.metrics.render(ctx.app.feed.waiters());
    Ok(http::with_type(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        text,
    ))
}

pub fn openapi() -> Response {
    http::with_type(StatusCode::OK, "application/json", OPENAPI)
}
