//! The dashboard's pages (`/`, `/track/{tracking_code}`) and assets
//! (`/assets/{name}`), embedded in the binary with `include_bytes!` (rustc
//! rebuilds when one changes). Plain HTML, CSS and ES modules under
//! `oms-daemon/assets/`: no build step, nothing fetched from elsewhere.
//!
//! Every answer carries an `ETag` (a hash of the bytes) and
//! `Cache-Control: no-cache`, so a browser revalidates and gets a 304
//! until the binary changes. HTML answers carry the security headers of
//! DESIGN §9; the CSP allows no inline script or style, and the pages use
//! none.

use std::sync::OnceLock;

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH};
use hyper::{HeaderMap, Request, StatusCode};

use super::Ctx;
use crate::http::{self, Response};
use crate::problem::Problem;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page every dashboard URL answers; `app.js` picks the view from the
/// path and query string.
const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../assets/index.html"),
};

/// The files under `/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/admin.js"),
    },
    Asset {
        name: "customer.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/customer.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
];

/// The Content-Security-Policy of every HTML answer: only this origin, no
/// inline script or style, no framing, no plugins, no `<base>` games.
pub const CSP: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'; object-src 'none'";

/// `GET /` and `GET /track/{tracking_code}`: the dashboard's page.
pub fn page(req: &Request<Incoming>) -> Response {
    let mut res = serve(&PAGE, 0, req.headers());
    let headers = res.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    res
}

/// `GET /assets/{name}`.
pub fn asset(ctx: Ctx<'_>, req: &Request<Incoming>) -> Result<Response, Problem> {
    let name = ctx.param.as_deref().unwrap_or_default();
    let (index, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == name)
        .ok_or_else(|| Problem::not_found(format!("no asset {name}")))?;
    Ok(serve(asset, index + 1, req.headers()))
}

/// The asset, or 304 when the client's copy is current.
fn serve(asset: &Asset, index: usize, request: &HeaderMap) -> Response {
    let etag = etag(index);
    let current = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
        });
    let mut res = if current {
        http::empty(StatusCode::NOT_MODIFIED)
    } else {
        http::with_type(StatusCode::OK, asset.content_type, asset.bytes)
    };
    let headers = res.headers_mut();
    if current {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The ETag of asset `index` (0 is the page): a quoted FNV-1a hash of its
/// bytes, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&PAGE)
            .chain(ASSETS.iter())
            .map(|a| format!("\"{:016x}\"", fnv1a(a.bytes)))
            .collect()
    });
    tags.get(index).map_or("\"0\"", String::as_str)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let page = std::str::from_utf8(PAGE.bytes).unwrap();
        for reference in page.split("/assets/").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names /assets/{name}, which is not embedded"
            );
        }
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let page = std::str::from_utf8(PAGE.bytes).unwrap();
        assert!(!page.contains("<style"), "inline <style>");
        assert!(!page.contains("style="), "inline style attribute");
        for script in page.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains("src="), "inline <script>: {tag}");
        }
        // No inline event handler attribute (` onclick=` and the like).
        for (i, _) in page.match_indices(" on") {
            let name: String = page[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !page[i + 1 + name.len()..].starts_with('='),
                "inline event handler {name}="
            );
        }
    }

    #[test]
    fn etags_differ_by_content() {
        let tags: Vec<&str> = (0..=ASSETS.len()).map(etag).collect();
        let mut unique = tags.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), tags.len());
        assert!(tags.iter().all(|t| t.starts_with('"') && t.ends_with('"')));
    }
}
