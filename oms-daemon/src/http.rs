//! Small HTTP helpers: bodies, JSON answers, problem answers, query strings
//! and strict request-body parsing.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// The body type of every answer.
pub type Body = BoxBody<Bytes, std::io::Error>;
/// An answer.
pub type Response = hyper::Response<Body>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON answer.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", bytes),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a JSON answer");
            problem(&Problem::internal())
        }
    }
}

/// An answer with a body and a content type.
pub fn with_type(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response {
    let mut res = hyper::Response::new(full(bytes));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// An empty answer.
pub fn empty(status: StatusCode) -> Response {
    let mut res = hyper::Response::new(full(Bytes::new()));
    *res.status_mut() = status;
    res
}

/// An RFC 9457 problem answer.
pub fn problem(p: &Problem) -> Response {
    let body = serde_json::to_vec(&p.body()).unwrap_or_default();
    let mut res = with_type(p.status, "application/problem+json", body);
    if let Some(secs) = p.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(RETRY_AFTER, v);
    }
    res
}

/// Reads the whole body, refusing more than `max` bytes with 413 (at once
/// when `Content-Length` says so, otherwise as soon as it is exceeded).
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Problem> {
    // Negative control: no limit, every body is buffered whole.
    #[cfg(feature = "broken-body-limit")]
    let max = {
        let _ = max;
        usize::MAX
    };
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {max} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Problem::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Reads and drops a body the answer does not need, so the connection can
/// be kept: answering while the client still sends makes hyper close it
/// under the client, which then sees a reset or a dead pooled connection
/// instead of the answer. False when the body is too large to drain.
pub async fn discard_body(req: Request<Incoming>, max: usize) -> bool {
    read_body(req, max).await.is_ok()
}

/// Parses a JSON object body into `T`, refusing fields set by the server
/// (mass assignment), unknown fields and `null`s with 422 and per-field
/// errors.
pub fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    allowed: &[&str],
    server_set: &[&str],
) -> Result<T, Problem> {
    parse_json_nullable(bytes, allowed, &[], server_set)
}

/// [`parse_json`], where the top-level fields named in `nullable` may be
/// `null` (`"phone": null` clears a phone). Any other `null`, at any depth,
/// is refused: read as "absent" it would silently ignore what the client
/// sent (`"email": null` would leave the e-mail as it was).
pub fn parse_json_nullable<T: DeserializeOwned>(
    bytes: &[u8],
    allowed: &[&str],
    nullable: &[&str],
    server_set: &[&str],
) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(Problem::bad_request("the body must be a JSON object"));
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if server_set.contains(&key.as_str()) {
            errors.push(FieldError {
                field: key.clone(),
                message: "is set by the server and cannot be given".into(),
            });
        } else if !allowed.contains(&key.as_str()) {
            errors.push(FieldError {
                field: key.clone(),
                message: format!("unknown field; allowed: {}", allowed.join(", ")),
            });
        } else if let Some(path) = null_in(&object[key], key)
            && !(path == *key && nullable.contains(&key.as_str()))
        {
            errors.push(FieldError {
                field: path,
                message: "must not be null".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Problem::unprocessable(
            "the body has fields that are not accepted",
            errors,
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Problem::unprocessable(format!("invalid body: {e}"), Vec::new()))
}

/// The path of the first `null` in `value` (`items[0].sku`), if any.
fn null_in(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::Null => Some(path.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_in(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(fields) => fields
            .iter()
            .find_map(|(k, v)| null_in(v, &format!("{path}.{k}"))),
        _ => None,
    }
}

/// The decoded query parameters (the last value of a repeated name wins).
pub fn query(req_uri: &hyper::Uri) -> HashMap<String, String> {
    req_uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A numeric query parameter, 400 when malformed.
pub fn query_num<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, Problem> {
    match q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            Problem::bad_request(format!(
                "query parameter {name}={v:?} is not a valid number"
            ))
        }),
    }
}

/// A paginated list: `{"items": [...], "next": cursor|null}`.
#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

impl<T: Serialize> Page<T> {
    /// `next` is the last id when the page is full (there may be more).
    pub fn new(items: Vec<T>, limit: u64, id: impl Fn(&T) -> i64) -> Page<T> {
        let next = if items.len() as u64 >= limit && limit > 0 {
            items.last().map(id)
        } else {
            None
        };
        Page { items, next }
    }
}
