//! The dashboard's HTTP surface: pages and assets with their headers and
//! caching, the session cookie and its CSRF guard, and the API additions
//! the dashboard uses (newest-first lists, customers by id, restock, an
//! order's history from the change log).

use oms_core::prelude::*;
use serde_json::json;

use crate::support::{ALICE_EMAIL, PASSWORD, Server, WIDGET};

#[test]
fn pages_carry_the_security_headers_and_assets_revalidate() {
    let server = Server::start();
    for path in ["/", "/track/TRK-ANYTHING"] {
        let page = server.get(path).send();
        page.expect_status(200);
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = page.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert!(page.body.contains("/assets/app.js"));
    }
    for (name, kind) in [
        ("app.js", "text/javascript"),
        ("admin.js", "text/javascript"),
        ("customer.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let asset = server.get(&format!("/assets/{name}")).send();
        asset.expect_status(200);
        assert!(
            asset
                .header("content-type")
                .unwrap_or_default()
                .starts_with(kind),
            "{name}"
        );
        assert_eq!(asset.header("cache-control"), Some("no-cache"));
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
        let etag = asset.header("etag").expect("an ETag").to_string();
        let again = server
            .get(&format!("/assets/{name}"))
            .header("If-None-Match", &etag)
            .send();
        again.expect_status(304);
        assert!(again.body.is_empty());
        let stale = server
            .get(&format!("/assets/{name}"))
            .header("If-None-Match", "\"0000\"")
            .send();
        stale.expect_status(200);
    }
    server.get("/assets/nope.js").send().problem(404);
    server
        .get("/assets/../Cargo.toml")
        .send()
        .expect_status(404);
}

#[test]
fn a_stale_cookie_does_not_lock_anyone_out_of_public_pages() {
    let server = Server::start();
    let cookie = "oms_session=not-a-token";
    server
        .get("/")
        .header("Cookie", cookie)
        .send()
        .expect_status(200);
    let who = server.get("/auth/session").header("Cookie", cookie).send();
    who.expect_status(200);
    assert_eq!(who.json(), json!({"authenticated": false}));
    // Where a login is needed, it is simply missing.
    server
        .get("/api/orders")
        .header("Cookie", cookie)
        .send()
        .problem(401);
    // A bad bearer token is still refused everywhere.
    server.get("/").token("not-a-token").send().problem(401);
}

/// Logs Alice in through `/auth/session`; answers the cookie pair.
fn alice_cookie(server: &Server) -> String {
    let login = server
        .post("/auth/session")
        .header("Origin", &server.base)
        .json(&json!({"email": ALICE_EMAIL, "password": PASSWORD}))
        .send();
    login.expect_status(200);
    let body = login.json();
    assert_eq!(body["role"], "customer");
    assert!(body.get("token").is_none(), "the token stays in the cookie");
    let set = login.header("set-cookie").expect("Set-Cookie").to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().expect("name=value").to_string()
}

#[test]
fn the_session_cookie_works_like_a_token_and_writes_must_be_same_origin() {
    let server = Server::start();
    let cookie = alice_cookie(&server);
    let who = server.get("/auth/session").header("Cookie", &cookie).send();
    assert_eq!(who.json()["customer_id"], server.alice.customer_id());
    server
        .get("/api/orders")
        .header("Cookie", &cookie)
        .send()
        .expect_status(200);
    // The admin's data stays out of reach, as with her token.
    server
        .get("/api/customers")
        .header("Cookie", &cookie)
        .send()
        .problem(403);

    let body = crate::support::order_body(None, &[(WIDGET, 1)]);
    // A write from another site (or from no page at all) is refused.
    let cross = server
        .post("/api/orders")
        .header("Cookie", &cookie)
        .header("Origin", "http://evil.example")
        .json(&body)
        .send();
    cross.problem(403);
    server
        .post("/api/orders")
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .json(&body)
        .send()
        .problem(403);
    server
        .post("/api/orders")
        .header("Cookie", &cookie)
        .json(&body)
        .send()
        .problem(403);
    assert!(
        server
            .store()
            .orders(&oms_core::OrderFilter::default())
            .expect("orders")
            .iter()
            .all(|o| o.customer_id.get() != server.alice.customer_id())
    );
    // From the dashboard's own origin it goes through.
    server
        .post("/api/orders")
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "same-origin")
        .json(&body)
        .send()
        .expect_status(201);
    server
        .post("/api/orders")
        .header("Cookie", &cookie)
        .header("Origin", &server.base)
        .json(&body)
        .send()
        .expect_status(201);
    // A bearer token needs no Origin: scripts are not browsers.
    server
        .post("/api/orders")
        .token(&server.alice.token)
        .json(&body)
        .send()
        .expect_status(201);
}

#[test]
fn login_and_logout_of_a_session_are_same_origin_only() {
    let server = Server::start();
    let creds = json!({"email": ALICE_EMAIL, "password": PASSWORD});
    server
        .post("/auth/session")
        .header("Origin", "http://evil.example")
        .json(&creds)
        .send()
        .problem(403);
    server
        .post("/auth/session")
        .json(&creds)
        .send()
        .problem(403);
    server
        .post("/auth/session")
        .header("Origin", &server.base)
        .json(&json!({"email": ALICE_EMAIL, "password": "wrong"}))
        .send()
        .problem(401);
    let out = server
        .delete("/auth/session")
        .header("Origin", &server.base)
        .send();
    out.expect_status(204);
    assert!(
        out.header("set-cookie")
            .unwrap_or_default()
            .contains("Max-Age=0")
    );
    server.delete("/auth/session").send().problem(403);
}

#[test]
fn orders_newest_first_with_a_cursor_that_walks_back() {
    let server = Server::start();
    let ids: Vec<i64> = (0..5)
        .map(|_| {
            server.place(&server.alice, None, &[(WIDGET, 1)])["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let page = server
        .get("/api/orders?direction=desc&limit=3")
        .token(&server.admin.token)
        .send()
        .json();
    let got: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4], ids[3], ids[2]]);
    assert_eq!(page["next"], ids[2]);
    let rest = server
        .get(&format!(
            "/api/orders?direction=desc&limit=3&after={}",
            ids[2]
        ))
        .token(&server.admin.token)
        .send()
        .json();
    let got: Vec<i64> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1], ids[0]]);
    assert_eq!(rest["next"], serde_json::Value::Null);
    server
        .get("/api/orders?direction=sideways")
        .token(&server.admin.token)
        .send()
        .problem(400);
}

#[test]
fn customers_by_id_in_one_request() {
    let server = Server::start();
    let (a, b) = (server.alice.customer_id(), server.bob.customer_id());
    let page = server
        .get(&format!("/api/customers?id={b},{a},{a},999999"))
        .token(&server.admin.token)
        .send()
        .json();
    let got: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![a.min(b), a.max(b)]);
    assert_eq!(page["next"], serde_json::Value::Null);
    server
        .get("/api/customers?id=x")
        .token(&server.admin.token)
        .send()
        .problem(400);
    server
        .get(&format!("/api/customers?id={a}"))
        .token(&server.alice.token)
        .send()
        .problem(403);
}

#[test]
fn restock_adds_units_and_refuses_unclear_bodies() {
    let server = Server::start();
    let before = server
        .get(&format!("/api/products/{WIDGET}"))
        .token(&server.admin.token)
        .send()
        .json();
    let after = server
        .post(&format!("/api/products/{WIDGET}/restock"))
        .token(&server.admin.token)
        .json(&json!({"add": 5}))
        .send();
    after.expect_status(200);
    assert_eq!(
        after.json()["stock_on_hand"].as_i64().unwrap(),
        before["stock_on_hand"].as_i64().unwrap() + 5
    );
    let set = server
        .post(&format!("/api/products/{WIDGET}/restock"))
        .token(&server.admin.token)
        .json(&json!({"set": 7}))
        .send();
    assert_eq!(set.json()["stock_on_hand"], 7);
    for body in [
        json!({}),
        json!({"add": 1, "set": 2}),
        json!({"add": 1, "extra": 1}),
    ] {
        server
            .post(&format!("/api/products/{WIDGET}/restock"))
            .token(&server.admin.token)
            .json(&body)
            .send()
            .problem(422);
    }
    server
        .post(&format!("/api/products/{WIDGET}/restock"))
        .token(&server.alice.token)
        .json(&json!({"add": 1}))
        .send()
        .problem(403);
    server
        .post("/api/products/NOPE/restock")
        .token(&server.admin.token)
        .json(&json!({"add": 1}))
        .send()
        .problem(404);
}

#[test]
fn an_orders_history_from_the_change_log() {
    let server = Server::start();
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let other = server.place(&server.bob, None, &[(WIDGET, 1)]);
    let id = order["id"].as_i64().unwrap();
    server
        .put(&format!("/api/orders/{id}/status"))
        .token(&server.admin.token)
        .json(&json!({"status": "paid"}))
        .send()
        .expect_status(200);
    let history = server
        .get(&format!("/api/changes?entity=order&entity_id={id}"))
        .token(&server.admin.token)
        .send()
        .json();
    let types: Vec<&str> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["order.placed", "order.status_changed"]);
    assert!(
        history["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["entity_id"] == id)
    );
    // A customer's history is still only its own.
    let bobs_view = server
        .get(&format!("/api/changes?entity=order&entity_id={id}"))
        .token(&server.bob.token)
        .send()
        .json();
    assert_eq!(bobs_view["changes"], json!([]));
    let own = server
        .get(&format!(
            "/api/changes?entity=order&entity_id={}",
            other["id"]
        ))
        .token(&server.bob.token)
        .send()
        .json();
    assert_eq!(own["changes"].as_array().unwrap().len(), 1);
    server
        .get("/api/changes?entity_id=3")
        .token(&server.admin.token)
        .send()
        .problem(400);
}

#[test]
fn the_export_downloads_as_export_csv() {
    let server = Server::start();
    let res = server
        .get("/api/orders/export.csv")
        .token(&server.admin.token)
        .send();
    res.expect_status(200);
    assert_eq!(
        res.header("content-disposition"),
        Some("attachment; filename=\"export.csv\"")
    );
}
