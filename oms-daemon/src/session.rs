//! Browser sessions: where a request's token comes from, the session
//! cookie, and the same-origin check that guards cookie-authenticated
//! writes against cross-site request forgery.
//!
//! The cookie carries the very JWT `/auth/login` answers, so every rule
//! about tokens (signature, expiry, audience, the user's current record)
//! applies to it unchanged: [`credential`] only says where the token is,
//! and `service` verifies it like a bearer token. The cookie is `HttpOnly`
//! (page scripts never see the token, so injected script cannot steal it),
//! `Secure` and `SameSite=Strict`; on top of that a write authenticated by
//! the cookie must come from the dashboard's own origin. Why a cookie and
//! not a token kept in page memory: docs/dashboard.md.

use std::time::Duration;

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, COOKIE, HOST, HeaderValue, ORIGIN};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "oms_session";

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// The dashboard's session cookie.
    Cookie(&'a str),
}

impl<'a> Credential<'a> {
    /// The token, to verify the same way wherever it came from.
    pub fn token(self) -> &'a str {
        match self {
            Credential::Bearer(t) | Credential::Cookie(t) => t,
        }
    }
}

/// The caller's token: the `Authorization` header if there is one (it wins
/// over a cookie), else the session cookie.
pub fn credential(headers: &HeaderMap) -> Option<Credential<'_>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Credential::Bearer(token.trim()));
    }
    session_cookie(headers).map(Credential::Cookie)
}

/// The value of the session cookie, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a request comes from a page of this very origin: the browser's
/// `Sec-Fetch-Site: same-origin`, or else an `Origin` whose host and port
/// are the request's `Host`. A request with neither is refused: every
/// browser sends one of them on a write.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// `Set-Cookie` for a new session holding `token`, kept for `ttl` (the
/// token's own lifetime).
pub fn set_cookie(token: &str, ttl: Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        ttl.as_secs()
    ))
    .ok()
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("oms_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_wins_over_the_cookie() {
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "oms_session=xyz"),
        ]);
        assert_eq!(credential(&h), Some(Credential::Bearer("abc")));
        let h = headers(&[("cookie", "theme=dark; oms_session=xyz; other=1")]);
        assert_eq!(credential(&h), Some(Credential::Cookie("xyz")));
        let h = headers(&[("cookie", "a=1"), ("cookie", "oms_session=q")]);
        assert_eq!(credential(&h), Some(Credential::Cookie("q")));
        assert_eq!(credential(&headers(&[("cookie", "oms_session=")])), None);
        assert_eq!(credential(&headers(&[("cookie", "xoms_session=1")])), None);
        assert_eq!(
            credential(&headers(&[("authorization", "Basic abc")])),
            None
        );
    }

    #[test]
    fn same_origin_needs_the_browser_to_say_so() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080"),
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[("host", "127.0.0.1:8080")])));
    }

    #[test]
    fn cookies_are_http_only_secure_and_strict() {
        let set = set_cookie("t.k.n", Duration::from_secs(60)).unwrap();
        let set = set.to_str().unwrap();
        for part in [
            "oms_session=t.k.n",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Max-Age=60",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(clear_cookie().to_str().unwrap().contains("Max-Age=0"));
    }
}
