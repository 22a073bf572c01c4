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

/// Headers every answer carries, set in one place after the handler ran:
/// - `X-Content-Type-Options: nosniff` on every answer, so a browser never
///   reads a JSON or CSV answer as something else (OWASP REST Security);
/// - `Cache-Control: no-store` unless the handler chose a cache policy
///   (an embedded asset may be cached; answers with a user's data, and
///   errors, must not be kept by a browser or a proxy);
/// - `WWW-Authenticate: Bearer` on every 401 (RFC 9110 §11.6.1, RFC 6750
///   §3), with `error="invalid_token"` when a token was sent and refused.
pub fn common_headers(res: &mut Response, token_given: bool) {
    let headers = res.headers_mut();
    headers.insert(
        hyper::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(hyper::header::CACHE_CONTROL) {
        headers.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    if res.status() == StatusCode::UNAUTHORIZED
        && !res.headers().contains_key(hyper::header::WWW_AUTHENTICATE)
    {
        let challenge = if token_given {
            r#"Bearer realm="oms", error="invalid_token", error_description="the token is invalid, expired or revoked""#
        } else {
            r#"Bearer realm="oms""#
        };
        res.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
}

/// Reads the whole body, refusing more than `max` bytes with 413 (at once
/// when `Content-Length` says so, otherwise as soon as it is exceeded).
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Problem> {
    // Negative control: no limit, every body is buffered whole.
    let max = if oms_core::controls::BODY_LIMIT {
        usize::MAX
    } else {
        max
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

/// Reads a JSON request body: [`read_body`], after which a media type
/// other than JSON is refused with 415 (the body is read first so the
/// connection stays usable). `application/json` and any
/// `application/*+json` are JSON; a `charset` other than UTF-8 is not (RFC
/// 8259 §8.1). A missing `Content-Type` is refused too: a body sent
/// without one (curl's `-d` says form data) is not known to be JSON.
pub async fn read_json_body(req: Request<Incoming>, max: usize) -> Result<Bytes, Problem> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)").to_string());
    let bytes = read_body(req, max).await?;
    match content_type {
        Some(media) if is_json_media_type(&media) => Ok(bytes),
        Some(media) => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be JSON (Content-Type: application/json), not {media:?}"),
        )),
        None => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON: send Content-Type: application/json",
        )),
    }
}

/// True for `application/json` and `application/*+json` (case-insensitive),
/// with no charset or a UTF-8 one.
fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > "+json".len());
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, v)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    json && charset_ok
}

/// The largest integer every JSON parser reads exactly: IEEE 754 doubles
/// (JavaScript, most JSON libraries) lose precision above 2^53 − 1.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JSON value that every parser reads the same way (I-JSON, RFC 7493):
/// no member name twice in one object (parsers disagree on which one wins:
/// a proxy may check the first and oms act on the last), and no number
/// outside ±(2^53 − 1) (a JavaScript client and oms would read different
/// values). Strings that are not valid Unicode
/// (a lone surrogate escape) are refused by serde_json itself.
struct Interoperable(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Interoperable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InteroperableVisitor).map(Interoperable)
    }
}

struct InteroperableVisitor;

impl InteroperableVisitor {
    fn number<E: serde::de::Error>(
        n: f64,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, E> {
        if n.is_finite() && n.abs() <= MAX_EXACT_INTEGER {
            Ok(value)
        } else {
            Err(E::custom(format!(
                "the number {value} is outside ±9007199254740991, the range every JSON parser reads exactly"
            )))
        }
    }
}

impl<'de> serde::de::Visitor<'de> for InteroperableVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Self::number(v as f64, v.into())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::number(v as f64, v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Self::number(v, v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Interoperable(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Interoperable(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the member {key:?} appears twice in one object"
                )));
            }
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// Parses a request body as JSON that every parser reads the same way
/// ([`Interoperable`]); 400 naming the problem otherwise.
fn parse_interoperable(bytes: &[u8]) -> Result<serde_json::Value, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = <Interoperable as serde::Deserialize>::deserialize(&mut de)
        .and_then(|Interoperable(v)| de.end().map(|()| v))
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// Reads and drops a body the answer does not need, so the connection can
/// be kept: answering while the client still sends makes hyper close it
/// under the client, which then sees a reset or a dead pooled connection
/// instead of the answer. False when the body is too large to drain.
///
/// Boxed: its future (~1 KB) would otherwise make the request future
/// hyper keeps per connection (`service`) that much larger on every
/// connection, though only refused requests ever wait on it.
pub fn discard_body(
    req: Request<Incoming>,
    max: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> {
    Box::pin(async move { read_body(req, max).await.is_ok() })
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
    let value = parse_interoperable(bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/+json",
            "text/json",
            "",
        ] {
            assert!(!is_json_media_type(refused), "{refused}");
        }
    }

    #[test]
    fn bodies_that_parsers_read_differently_are_refused() {
        let refused = |body: &str| parse_interoperable(body.as_bytes()).unwrap_err().detail;
        assert!(refused(r#"{"a": 1, "a": 2}"#).contains("twice"));
        assert!(refused(r#"{"x": {"b": 1, "b": 1}}"#).contains("twice"));
        assert!(refused(r#"{"q": 9007199254740993}"#).contains("9007199254740991"));
        assert!(refused(r#"{"q": -9007199254740992}"#).contains("9007199254740991"));
        assert!(refused(r#"{"q": 1e300}"#).contains("9007199254740991"));
        assert!(refused(r#"{"q": 123456789012345678901234567890}"#).contains("9007199254740991"));
        let lone = refused(r#"{"s": "\ud800"}"#);
        assert!(lone.contains("escape"), "{lone}");
        assert!(refused("{\"a\": 1} {}").contains("trailing"));
        assert!(refused("\u{feff}{}").contains("malformed"));
        assert!(refused(r#"{"a": 1,}"#).contains("malformed"));
        assert!(refused(r#"{"a": NaN}"#).contains("malformed"));
        let ok = parse_interoperable(
            br#"{"q": 9007199254740991, "l": [{"a": 1}, {"a": 2}], "f": 1.5, "n": null}"#,
        )
        .unwrap();
        assert_eq!(ok["q"], serde_json::json!(9_007_199_254_740_991_i64));
        assert_eq!(ok["l"][1]["a"], serde_json::json!(2));
    }
}
