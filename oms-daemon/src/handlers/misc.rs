//! Health, metrics and the OpenAPI document.

use hyper::StatusCode;
use serde_json::json;

use super::Ctx;
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

/// Prometheus text format.
pub fn metrics(ctx: Ctx<'_>) -> Result<Response, Problem> {
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
