//! HTTP as RFC 9110 describes it, checked with curl where a real client
//! matters: HEAD wherever GET works, OPTIONS with an honest `Allow`,
//! percent-decoded path segments, `WWW-Authenticate` on 401, `nosniff` and
//! `no-store`, and strict JSON bodies (415 for another media type; 400 for
//! JSON that another parser would read differently).

use oms_core::prelude::*;
use std::process::Command;

use serde_json::json;

use crate::support::{Server, WIDGET};

/// Runs curl with `args` (silent, headers and body to stdout) and returns
/// its output, or `None` (saying so) where curl is missing.
fn curl(args: &[&str]) -> Option<String> {
    let out = match Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: curl cannot run ({e})");
            return None;
        }
    };
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn head_works_wherever_get_does_with_curl() {
    let server = Server::start();
    let url = format!("{}/healthz", server.base);
    // `curl -fsI` is what uptime monitors run: exit 0 on a 2xx.
    let status = Command::new("curl")
        .args(["-fsI", "-o", "/dev/null", "--max-time", "20", &url])
        .status();
    let Ok(status) = status else {
        eprintln!("skipped: curl cannot run");
        return;
    };
    assert!(status.success(), "curl -fsI /healthz: {status}");
    let Some(head) = curl(&["-I", &url]) else {
        return;
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let get = server.get("/healthz").send();
    let length = get.body.len().to_string();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {length}")),
        "HEAD announces GET's length {length}: {head}"
    );
    // An authenticated resource: same status and headers as GET, no body.
    let head = server
        .req("HEAD", &format!("/api/products/{WIDGET}"))
        .token(&server.admin.token)
        .send();
    head.expect_status(200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), Some("application/json"));
    server
        .req("HEAD", &format!("/api/products/{WIDGET}"))
        .send()
        .expect_status(401);
    // HEAD is not offered where GET is not.
    let login = server.req("HEAD", "/auth/login").send();
    login.expect_status(405);
    assert_eq!(login.header("allow"), Some("POST, OPTIONS"));
}

#[test]
fn options_lists_what_the_route_answers() {
    let server = Server::start();
    let reply = server.req("OPTIONS", "/api/orders/1").send();
    reply.expect_status(204);
    assert_eq!(
        reply.header("allow"),
        Some("GET, HEAD, PATCH, DELETE, OPTIONS")
    );
    let Some(text) = curl(&[
        "-i",
        "-X",
        "OPTIONS",
        &format!("{}/api/products", server.base),
    ]) else {
        return;
    };
    assert!(text.starts_with("HTTP/1.1 204"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("allow: get, head, post, options"),
        "{text}"
    );
}

#[test]
fn path_segments_are_percent_decoded_before_matching() {
    let server = Server::start();
    for sku in ["CAFÉ-1", "A#1", "WID-1", "50%-OFF"] {
        server.add_product(sku, "1.00", 1);
    }
    // The URLs curl sends for them (it does not encode; we give it what a
    // client library produces).
    let cases = [
        ("CAF%C3%89-1", "CAFÉ-1"),
        ("A%231", "A#1"),
        ("%57ID-1", "WID-1"),
        ("50%25-OFF", "50%-OFF"),
    ];
    for (encoded, sku) in cases {
        let url = format!("{}/api/products/{encoded}", server.base);
        let auth = format!("authorization: Bearer {}", server.admin.token);
        let body = match curl(&["-H", &auth, &url]) {
            Some(body) => body,
            None => {
                server
                    .get(&format!("/api/products/{encoded}"))
                    .token(&server.admin.token)
                    .send()
                    .body
            }
        };
        let product: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{encoded}: {e}: {body}"));
        assert_eq!(product["sku"], json!(sku), "{encoded}");
    }
    // An encoded segment that is not UTF-8 names nothing.
    server
        .get("/api/products/%FF")
        .token(&server.admin.token)
        .send()
        .problem(404);
}

#[test]
fn every_401_carries_a_bearer_challenge() {
    let server = Server::start();
    let none = server.get("/api/orders").send();
    none.problem(401);
    assert_eq!(
        none.header("www-authenticate"),
        Some(r#"Bearer realm="oms""#)
    );
    let bad = server.get("/api/orders").token("not.a.token").send();
    bad.problem(401);
    let challenge = bad.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(r#"Bearer realm="oms", error="invalid_token""#),
        "{challenge}"
    );
    let login = server
        .post("/auth/login")
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send();
    login.problem(401);
    assert!(login.header("www-authenticate").is_some());
}

#[test]
fn nosniff_everywhere_and_no_store_on_data() {
    let server = Server::start();
    let answers = [
        server.get("/healthz").send(),
        server.get("/nowhere").send(),
        server.get("/api/orders").send(),
        server.get("/api/orders").token(&server.admin.token).send(),
        server
            .get("/api/customers")
            .token(&server.admin.token)
            .send(),
        server
            .get("/api/orders/export.csv")
            .token(&server.admin.token)
            .send(),
    ];
    for reply in &answers {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            reply.what
        );
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store"),
            "{}",
            reply.what
        );
    }
}

#[test]
fn a_json_route_refuses_other_media_types_with_415_and_writes_nothing() {
    let server = Server::start();
    let before = server.store().last_seq().unwrap();
    let body = r#"{"sku": "NEW-1", "name": "New", "price": "1.00"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let mut req = server.post("/api/products").token(&server.admin.token);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = req.raw(body).send();
        let problem = reply.problem(415);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or("")
                .contains("application/json"),
            "{content_type:?}: {problem}"
        );
    }
    // What `curl -d` sends (form data) is refused the same way.
    let auth = format!("authorization: Bearer {}", server.admin.token);
    if let Some(out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &auth,
        "-d",
        body,
        &format!("{}/api/products", server.base),
    ]) {
        assert_eq!(out, "415");
    }
    assert_eq!(
        server.store().last_seq().unwrap(),
        before,
        "nothing written"
    );
    // The same body as JSON is accepted.
    server
        .post("/api/products")
        .token(&server.admin.token)
        .header("content-type", "application/json; charset=UTF-8")
        .raw(body)
        .send()
        .expect_status(201);
}

#[test]
fn json_that_parsers_read_differently_is_refused() {
    let server = Server::start();
    let before = server.store().last_seq().unwrap();
    let bodies = [
        // A proxy that reads the first member would see quantity 1.
        r#"{"customer_id": 1, "items": [{"sku": "WIDGET", "quantity": 1, "quantity": 90}]}"#,
        r#"{"items": [{"sku": "WIDGET", "quantity": 1}], "items": []}"#,
        // JavaScript reads 9007199254740993 as 9007199254740992.
        r#"{"items": [{"sku": "WIDGET", "quantity": 9007199254740993}]}"#,
        "{\"items\": [{\"sku\": \"WIDGET\", \"quantity\": 1}]}\u{0}",
    ];
    for body in bodies {
        let reply = server
            .post("/api/orders")
            .token(&server.alice.token)
            .header("content-type", "application/json")
            .raw(body)
            .send();
        reply.problem(400);
    }
    assert_eq!(
        server.store().last_seq().unwrap(),
        before,
        "nothing written"
    );
}

#[test]
fn q_finds_non_ascii_text_in_any_case() {
    let server = Server::start();
    server.add_product("ZOË-1", "2.00", 5);
    let found = server
        .get("/api/products?q=zo%C3%8B")
        .token(&server.alice.token)
        .send()
        .json();
    let skus: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["sku"].as_str())
        .collect();
    assert_eq!(skus, ["ZOË-1"]);
}
