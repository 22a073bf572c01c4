//! `GET /api/changes?after&limit&wait`: the long-poll change feed.
//!
//! Answers at once when a change newer than `after` exists; otherwise holds
//! the request until a commit wakes it or `wait` runs out. It subscribes to
//! the feed before querying, so a commit between the query and the wait is
//! not missed, and it holds no read transaction while it waits.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::Seq;
use serde_json::json;

use super::Ctx;
use crate::http::{self, Response};
use crate::problem::Problem;

const MAX_WAIT_SECS: u64 = 60;
const MAX_LIMIT: u64 = 1000;

pub async fn poll(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let after = Seq(http::query_num::<i64>(&q, "after")?.unwrap_or(0).max(0));
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(100)
        .clamp(1, MAX_LIMIT);
    let wait = http::query_num::<u64>(&q, "wait")?.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(Problem::bad_request(format!(
            "wait must be at most {MAX_WAIT_SECS} seconds"
        )));
    }
    // The request's headers share hyper's first read buffer; dropping them
    // now frees it for the whole wait (8 KiB per waiting connection).
    drop(q);
    drop(req);
    let customer = ctx.access.own_customer();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut feed = ctx.app.feed.subscribe();
    let mut shutdown = ctx.app.shutdown.subscribe();
    let mut slot = None;
    let mut woken = false;
    loop {
        let published = feed.borrow_and_update().clone();
        // After a wake-up the published changes usually hold the answer;
        // the first look, and any gap, go to the database.
        let from_memory = if woken {
            published.changes_after(after, limit, customer)
        } else {
            None
        };
        let changes = match from_memory {
            Some(changes) => changes,
            None => {
                ctx.app
                    .db
                    .read(move |store| store.changes_after(after, limit, customer))
                    .await?
            }
        };
        if let Some(last) = changes.last() {
            let next = last.seq;
            return Ok(http::json(
                StatusCode::OK,
                &json!({"changes": changes, "next": next}),
            ));
        }
        if tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
            return Ok(http::json(
                StatusCode::OK,
                &json!({"changes": [], "next": after}),
            ));
        }
        if slot.is_none() {
            slot = Some(ctx.app.feed.register().ok_or_else(|| {
                Problem::unavailable("too many clients are waiting on the change feed; retry", 1)
            })?);
        }
        tokio::select! {
            changed = feed.changed() => {
                if changed.is_err() {
                    return Ok(http::json(StatusCode::OK, &json!({"changes": [], "next": after})));
                }
                woken = true;
            }
            _ = shutdown.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
