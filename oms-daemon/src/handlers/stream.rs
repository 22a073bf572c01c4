//! `GET /api/changes/stream`: the change feed as Server-Sent Events, for
//! browsers (DESIGN §9).
//!
//! The same machinery as the long-poll (`changes.rs`), held open: the
//! stream registers as a feed waiter for its whole life (so it counts
//! against the same cap and makes the feed watch other processes' commits),
//! answers from the changes the writer published with its commit, asks the
//! database only to catch up, and ends when the daemon shuts down. Each
//! change is one event, `id:` its seq and `data:` the change as
//! `/api/changes` shows it. The first bytes are `retry:` and `id:` of the
//! position the stream starts from, without data: that sets the browser's
//! `Last-Event-ID`, so a reconnect after a restart resumes from there even
//! when no change arrived before it. A comment every 15 s (`Config::stream_heartbeat`) keeps proxies
//! from closing an idle stream.
//!
//! The body is pulled by hyper: nothing is produced for a client that does
//! not read, so a slow client holds one batch at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Request, StatusCode};
use oms_core::{Change, CustomerId, Seq};
use tokio::sync::watch;

use super::Ctx;
use crate::App;
use oms_core::Published;

use crate::feed::OwnedWaiterSlot;
use crate::http::{self, Response};
use crate::problem::Problem;

/// Most changes read or sent in one batch.
const BATCH: u64 = 1000;
/// How long a browser waits before reconnecting (`retry:`), in ms.
const RETRY_MS: u64 = 1000;

pub async fn open(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let after = http::query_num::<i64>(&q, "after")?;
    let last_event_id = match req.headers().get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(str::trim)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request("Last-Event-ID must be a seq sent by this stream")
                })?,
        ),
    };
    // Free the request (and hyper's read buffer it shares) for the life
    // of the stream, as the long-poll does.
    drop(q);
    drop(req);
    let slot = ctx.app.waiters.register_owned().ok_or_else(|| {
        Problem::unavailable("too many clients are waiting on the change feed; retry", 1)
    })?;
    // Subscribe before reading the newest seq: a commit in between wakes
    // the stream instead of slipping past it.
    let feed = ctx.app.db.subscribe()?;
    let start = match last_event_id.or(after) {
        // `Last-Event-ID` wins over `?after=`.
        Some(seq) => Seq(seq.max(0)),
        None => ctx.app.db.lookup(|store| store.last_seq()).await?,
    };
    let state = StreamState {
        app: Arc::clone(ctx.app),
        feed,
        shutdown: ctx.app.shutdown.subscribe(),
        after: start,
        customer: ctx.access.own_customer(),
        heartbeat: ctx.app.config.stream_heartbeat,
        woken: false,
        _slot: slot,
    };
    let mut first = BytesMut::new();
    first.put_slice(format!("retry: {RETRY_MS}\nid: {}\n\n", start.get()).as_bytes());
    let body = EventBody {
        first: Some(first.freeze()),
        state: Some(state),
        pending: Mutex::new(None),
    };
    let mut res = hyper::Response::new(body.boxed());
    *res.status_mut() = StatusCode::OK;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// What a stream keeps between events.
struct StreamState {
    app: Arc<App>,
    feed: watch::Receiver<Published>,
    shutdown: watch::Receiver<bool>,
    /// The last seq the client has (or need not have: see `next_batch`).
    after: Seq,
    customer: Option<CustomerId>,
    /// How long the stream may stay silent (`Config::stream_heartbeat`).
    heartbeat: Duration,
    /// Whether the feed has published since the stream began; before that,
    /// the published changes may not cover what the client missed.
    woken: bool,
    _slot: OwnedWaiterSlot,
}

type Step = Pin<Box<dyn Future<Output = Option<(Bytes, StreamState)>> + Send>>;

/// The response body: the opening lines, then one step at a time.
struct EventBody {
    first: Option<Bytes>,
    state: Option<StreamState>,
    /// The step in progress. In a `Mutex` only so the body is `Sync`, as
    /// hyper's boxed body needs; it is reached through `get_mut`, never
    /// locked.
    pending: Mutex<Option<Step>>,
}

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let pending = match this.pending.get_mut() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        if pending.is_none() {
            match this.state.take() {
                Some(state) => *pending = Some(Box::pin(next_batch(state))),
                None => return Poll::Ready(None),
            }
        }
        let Some(step) = pending.as_mut() else {
            return Poll::Ready(None);
        };
        match step.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                *pending = None;
                match outcome {
                    Some((bytes, state)) => {
                        this.state = Some(state);
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    None => Poll::Ready(None),
                }
            }
        }
    }
}

/// Waits for the next events (or the heartbeat) and encodes them; `None`
/// ends the stream (shutdown, or the feed is gone).
async fn next_batch(mut s: StreamState) -> Option<(Bytes, StreamState)> {
    loop {
        if *s.shutdown.borrow() {
            return None;
        }
        // In a block of its own, so an idle stream keeps no handle on the
        // published changes while it waits.
        {
            let published = s.feed.borrow_and_update().clone();
            if published.last > s.after {
                let from_memory = if s.woken {
                    published.changes_after(s.after, BATCH, s.customer)
                } else {
                    None
                };
                let changes = match from_memory {
                    Some(changes) => changes,
                    None => {
                        let (after, customer) = (s.after, s.customer);
                        match s
                            .app
                            .db
                            .read_async(move |store| store.changes_after(after, BATCH, customer))
                            .await
                        {
                            Ok(changes) => changes,
                            Err(e) => {
                                // The client reconnects from its last id.
                                tracing::warn!(error = %e, "event stream cannot read the change log");
                                return None;
                            }
                        }
                    }
                };
                if let Some(last) = changes.last() {
                    s.after = last.seq;
                    return Some((encode(&changes), s));
                }
                // Nothing for this client up to what was published (a customer's
                // stream skips other customers' changes): the memory covers
                // (since, last], and a query saw at least up to `last`.
                s.after = published.last;
                continue;
            }
        }
        tokio::select! {
            changed = s.feed.changed() => {
                if changed.is_err() {
                    return None;
                }
                s.woken = true;
            }
            _ = s.shutdown.changed() => {}
            () = tokio::time::sleep(s.heartbeat) => {
                return Some((Bytes::from_static(b": keep-alive\n\n"), s));
            }
        }
    }
}

/// One event per change: `id: <seq>` and `data: <the change as JSON>`.
fn encode(changes: &[Change]) -> Bytes {
    let mut out = BytesMut::with_capacity(changes.len() * 256);
    for change in changes {
        out.put_slice(b"id: ");
        out.put_slice(change.seq.get().to_string().as_bytes());
        out.put_slice(b"\ndata: ");
        // serde_json writes no newline, so the JSON is one `data:` line.
        if let Err(e) = serde_json::to_writer((&mut out).writer(), change) {
            tracing::error!(error = %e, "cannot encode a change");
        }
        out.put_slice(b"\n\n");
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_core::Timestamp;

    #[test]
    fn each_change_is_one_event_with_its_seq() {
        let change = |seq| Change {
            seq: Seq(seq),
            at: Timestamp::from_millis(0),
            kind: "order.placed".into(),
            entity: "order".into(),
            entity_id: 1,
            actor: "cli".into(),
            data: serde_json::json!({"note": "two\nlines"}),
            customer_id: None,
        };
        let text = String::from_utf8(encode(&[change(4), change(5)]).to_vec()).unwrap();
        let events: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 2, "{text}");
        assert!(events[0].starts_with("id: 4\ndata: {"), "{text}");
        assert!(events[1].starts_with("id: 5\ndata: {"), "{text}");
        assert_eq!(
            events[0].lines().count(),
            2,
            "a newline in data stays escaped"
        );
    }
}
