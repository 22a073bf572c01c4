//! `GET /api/changes?after&limit&wait[&entity&entity_id]`: the long-poll
//! change feed, optionally narrowed to one record's history.
//!
//! Answers at once when a change newer than `after` exists; otherwise holds
//! the request until a commit wakes it or `wait` runs out. It subscribes to
//! the feed before querying, so a commit between the query and the wait is
//! not missed, and it holds no read transaction while it waits.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use oms_core::{EntityFilter, Seq};
use serde_json::json;

use super::Ctx;
use crate::http::{self, Response};
use crate::problem::Problem;

const MAX_WAIT_SECS: u64 = 60;

/// `entity` (e.g. `order`) and `entity_id`: one record's history. An
/// `entity_id` without `entity` names nothing and is refused.
fn entity_filter(
    q: &std::collections::HashMap<String, String>,
) -> Result<Option<EntityFilter>, Problem> {
    let entity = q.get("entity").map(|e| e.trim()).filter(|e| !e.is_empty());
    let entity_id = http::query_num::<i64>(q, "entity_id")?;
    match (entity, entity_id) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Problem::bad_request(
            "entity_id needs entity (e.g. entity=order&entity_id=7)",
        )),
        (Some(entity), entity_id) => Ok(Some(EntityFilter {
            entity: entity.to_string(),
            entity_id,
        })),
    }
}
const MAX_LIMIT: u64 = 1000;

pub async fn poll(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let after = Seq(http::query_num::<i64>(&q, "after")?.unwrap_or(0).max(0));
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(100)
        .clamp(1, MAX_LIMIT);
    let wait = http::query_num::<u64>(&q, "wait")?.unwrap_or(0);
    let entity = entity_filter(&q)?;
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
    let mut feed = ctx.app.db.subscribe()?;
    let mut shutdown = ctx.app.shutdown.subscribe();
    let mut slot = None;
    let mut woken = false;
    loop {
        let published = feed.borrow_and_update().clone();
        // After a wake-up the published changes usually hold the answer;
        // the first look, and any gap, go to the database.
        let from_memory = if woken {
            published.matching_after(after, limit, customer, entity.as_ref())
        } else {
            None
        };
        let changes = match from_memory {
            Some(changes) => changes,
            None => {
                let entity = entity.clone();
                ctx.app
                    .db
                    .read_async(move |store| match &entity {
                        None => store.changes_after(after, limit, customer),
                        Some(e) => store.entity_changes_after(after, limit, customer, e),
                    })
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
            slot = Some(ctx.app.waiters.register().ok_or_else(|| {
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
