//! Every endpoint's happy path and main errors: status codes, headers and
//! the JSON field names of DESIGN §3.

use oms_core::prelude::*;
use serde_json::{Value, json};

use std::time::Duration;

use crate::support::{
    ALICE_EMAIL, GADGET, PASSWORD, SPARE_EMAIL, Server, WIDGET, order_body, wait_until,
};

/// The order export columns of DESIGN §5.
const ORDER_EXPORT_HEADER: &str = "order_id,order_ref,created_at,status,customer_id,customer_email,customer_name,sku,product_name,quantity,unit_price,line_total,order_total,currency";

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

fn is_utc(ts: &Value) -> bool {
    ts.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.contains('T'))
}

/// The names of the field errors of a problem body.
fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("problem without errors: {problem}"))
        .iter()
        .map(|e| e["field"].as_str().expect("field name").to_string())
        .collect()
}

fn product(server: &Server, sku: &str) -> Value {
    let reply = server
        .get(&format!("/api/products/{sku}"))
        .token(&server.admin.token)
        .send();
    reply.expect_status(200);
    reply.json()
}

// ---- health, metrics, unknown paths --------------------------------------

#[test]
fn healthz_answers_ok_without_a_token() {
    let server = Server::start();
    let reply = server.get("/healthz").send();
    reply.expect_status(200);
    assert_eq!(reply.json()["status"], "ok");
    assert!(reply.header("x-request-id").is_some(), "request id header");
}

#[test]
fn metrics_are_prometheus_text_counting_requests() {
    let server = Server::start();
    server.get("/healthz").send().expect_status(200);
    let reply = server
        .get("/metrics")
        .header("accept", "application/openmetrics-text")
        .send();
    reply.expect_status(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "content type {:?}",
        reply.header("content-type")
    );
    assert!(
        reply
            .body
            .lines()
            .any(|l| l.starts_with("# TYPE oms_http_requests") && l.ends_with(" counter")),
        "request counter typed:\n{}",
        reply.body
    );
    assert!(
        reply.body.lines().any(|l| l == "oms_feed_waiters 0"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .lines()
            .any(|l| l.starts_with("oms_http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")),
        "healthz request counted:\n{}",
        reply.body
    );
}

#[test]
fn unknown_paths_are_404_problems() {
    let server = Server::start();
    for path in [
        "/nope",
        "/api",
        "/api/orders/1/status/extra",
        "/api/payments/1/extra",
    ] {
        let problem = server
            .get(path)
            .token(&server.admin.token)
            .send()
            .problem(404);
        assert!(problem["detail"].as_str().unwrap().contains(path));
    }
    // An id that is not a number names nothing either.
    server
        .get("/api/orders/abc")
        .token(&server.admin.token)
        .send()
        .problem(404);
    server
        .get("/api/customers/0")
        .token(&server.admin.token)
        .send()
        .problem(404);
}

// ---- register and login ----------------------------------------------------

#[test]
fn register_creates_a_customer_and_never_echoes_the_password() {
    let server = Server::start();
    let reply = server
        .post("/auth/register")
        .json(&json!({"email": "New.Person@Example.com", "password": "s3cret-enough", "name": "New Person"}))
        .send();
    reply.expect_status(201);
    let user = reply.json();
    assert_eq!(
        keys(&user),
        sorted(&["id", "email", "name", "role", "customer_id", "created_at"])
    );
    assert_eq!(user["role"], "customer");
    assert_eq!(user["name"], "New Person");
    assert!(user["customer_id"].as_i64().is_some());
    assert!(is_utc(&user["created_at"]));
    for secret in ["s3cret-enough", "password", "argon2", "hash"] {
        assert!(!reply.body.contains(secret), "{secret} in {}", reply.body);
    }

    // The customer record exists and the new user can log in and use it.
    let login = server
        .post("/auth/login")
        .json(&json!({"email": "new.person@example.com", "password": "s3cret-enough"}))
        .send();
    login.expect_status(200);
    let token = login.json()["token"].as_str().unwrap().to_string();
    let me = server
        .get(&format!("/api/customers/{}", user["customer_id"]))
        .token(&token)
        .send();
    me.expect_status(200);
    assert_eq!(me.json()["name"], "New Person");

    // The e-mail is unique, case-insensitively.
    server
        .post("/auth/register")
        .json(
            &json!({"email": "NEW.PERSON@example.com", "password": "another-one", "name": "Twin"}),
        )
        .send()
        .problem(409);
}

#[test]
fn register_refuses_server_set_unknown_and_invalid_fields() {
    let server = Server::start();
    let problem = server
        .post("/auth/register")
        .json(&json!({"email": "x@example.com", "password": "pw-pw-pw", "name": "X", "role": "admin"}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["role"]);
    let problem = server
        .post("/auth/register")
        .json(&json!({"email": "x@example.com", "password": "pw-pw-pw", "name": "X", "nickname": "x"}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["nickname"]);
    server
        .post("/auth/register")
        .json(&json!({"email": "not-an-email", "password": "pw-pw-pw", "name": "X"}))
        .send()
        .problem(422);
    server
        .post("/auth/register")
        .json(&json!({"email": "x@example.com", "name": "X"}))
        .send()
        .problem(422);
    server
        .post("/auth/register")
        .header("content-type", "application/json")
        .raw("{\"email\": ")
        .send()
        .problem(400);
    // Nothing of it was written.
    assert!(server.store().user("x@example.com").is_err());
}

#[test]
fn login_answers_a_working_token_and_uniform_failures() {
    let server = Server::start();
    let reply = server
        .post("/auth/login")
        .json(&json!({"email": ALICE_EMAIL, "password": PASSWORD}))
        .send();
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(keys(&body), sorted(&["token", "expires_at", "role"]));
    assert_eq!(body["role"], "customer");
    assert!(is_utc(&body["expires_at"]));
    let token = body["token"].as_str().unwrap();
    server
        .get("/api/orders")
        .token(token)
        .send()
        .expect_status(200);

    let admin = server
        .post("/auth/login")
        .json(&json!({"email": "ADMIN@example.com", "password": PASSWORD}))
        .send();
    admin.expect_status(200);
    assert_eq!(admin.json()["role"], "admin");

    // A wrong password and an unknown e-mail cannot be told apart.
    let wrong = server
        .post("/auth/login")
        .json(&json!({"email": ALICE_EMAIL, "password": "wrong password"}))
        .send();
    let unknown = server
        .post("/auth/login")
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send();
    assert_eq!(wrong.problem(401), unknown.problem(401));
    assert_eq!(wrong.body, unknown.body);
    // Login bodies are strict too.
    server
        .post("/auth/login")
        .json(&json!({"email": ALICE_EMAIL, "password": PASSWORD, "remember": true}))
        .send()
        .problem(422);
}

#[test]
fn login_is_rate_limited_per_account() {
    let server = Server::start();
    let attempt = |password: &str| {
        server
            .post("/auth/login")
            .json(&json!({"email": ALICE_EMAIL, "password": password}))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(attempt("guess").status);
    }
    assert_eq!(statuses, [401; 10]);
    let limited = attempt("guess");
    limited.problem(429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "retry after {retry}");
    // Even the right password waits: the limit is on attempts.
    attempt(PASSWORD).problem(429);
    // Another account is not affected.
    server
        .post("/auth/login")
        .json(&json!({"email": "bob@example.com", "password": PASSWORD}))
        .send()
        .expect_status(200);
}

// ---- products ---------------------------------------------------------------

#[test]
fn products_list_search_and_paginate() {
    let server = Server::start();
    let reply = server
        .get("/api/products")
        .token(&server.alice.token)
        .send();
    reply.expect_status(200);
    let page = reply.json();
    assert_eq!(keys(&page), sorted(&["items", "next"]));
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(page["next"].is_null());
    let widget = &items[0];
    assert_eq!(
        keys(widget),
        sorted(&[
            "id",
            "sku",
            "name",
            "price",
            "stock_on_hand",
            "stock_reserved",
            "stock_available",
            "active",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(widget["sku"], WIDGET);
    assert_eq!(widget["price"], "9.99");
    assert_eq!(widget["stock_on_hand"], 100);
    assert_eq!(widget["stock_available"], 100);

    // Cursor pagination: every product exactly once.
    let mut seen = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/api/products?limit=1&after={a}"),
            None => "/api/products?limit=1".to_string(),
        };
        let page = server.get(&path).token(&server.bob.token).send().json();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["sku"].as_str().unwrap().to_string());
        }
        match page["next"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(seen.len() <= 2, "pagination does not end: {seen:?}");
    }
    assert_eq!(seen, [WIDGET, GADGET]);

    let found = server
        .get("/api/products?q=gadg")
        .token(&server.admin.token)
        .send()
        .json();
    let skus: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, [GADGET]);
    server
        .get("/api/products?limit=abc")
        .token(&server.admin.token)
        .send()
        .problem(400);
}

#[test]
fn products_create_get_patch_delete() {
    let server = Server::start();
    let admin = &server.admin.token;
    let reply = server
        .post("/api/products")
        .token(admin)
        .json(&json!({"sku": "LAPTOP-13", "name": "Laptop 13", "price": "1299.50", "stock_on_hand": 4}))
        .send();
    reply.expect_status(201);
    let created = reply.json();
    assert_eq!(created["price"], "1299.50");
    assert_eq!(created["stock_on_hand"], 4);
    assert_eq!(created["stock_reserved"], 0);
    assert_eq!(created["stock_available"], 4);
    assert_eq!(created["active"], true);
    assert!(is_utc(&created["created_at"]));
    let id = created["id"].as_i64().unwrap();

    // By id and by SKU.
    let by_id = server
        .get(&format!("/api/products/{id}"))
        .token(&server.bob.token)
        .send();
    by_id.expect_status(200);
    assert_eq!(by_id.json(), created);
    assert_eq!(product(&server, "LAPTOP-13")["id"], id);
    server
        .get("/api/products/NO-SUCH-SKU")
        .token(admin)
        .send()
        .problem(404);

    // Duplicates, unknown and server-set fields, bad prices.
    server
        .post("/api/products")
        .token(admin)
        .json(&json!({"sku": "LAPTOP-13", "name": "Again", "price": "1.00"}))
        .send()
        .problem(409);
    let problem = server
        .post("/api/products")
        .token(admin)
        .json(&json!({"sku": "X-1", "name": "X", "price": "1.00", "colour": "red"}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["colour"]);
    let problem = server
        .post("/api/products")
        .token(admin)
        .json(&json!({"sku": "X-1", "name": "X", "price": "1.00", "stock_reserved": 3}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["stock_reserved"]);
    for price in [json!("abc"), json!("1.999"), json!(-1), json!("-5.00")] {
        let reply = server
            .post("/api/products")
            .token(admin)
            .json(&json!({"sku": "X-1", "name": "X", "price": price}))
            .send();
        reply.problem(422);
    }
    server
        .get("/api/products/X-1")
        .token(admin)
        .send()
        .problem(404);

    // PATCH: name, price, stocktake; server-set fields refused.
    let reply = server
        .patch(&format!("/api/products/{id}"))
        .token(admin)
        .json(&json!({"name": "Laptop 13 (2025)", "price": "1199", "stock_on_hand": 7}))
        .send();
    reply.expect_status(200);
    let patched = reply.json();
    assert_eq!(patched["name"], "Laptop 13 (2025)");
    assert_eq!(patched["price"], "1199.00");
    assert_eq!(patched["stock_on_hand"], 7);
    assert_eq!(patched["stock_available"], 7);
    let problem = server
        .patch("/api/products/LAPTOP-13")
        .token(admin)
        .json(&json!({"stock_available": 100}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["stock_available"]);
    server
        .patch("/api/products/NO-SUCH-SKU")
        .token(admin)
        .json(&json!({"name": "x"}))
        .send()
        .problem(404);

    // DELETE: 204, then gone; a product on an order is kept (409).
    let reply = server
        .delete(&format!("/api/products/{id}"))
        .token(admin)
        .send();
    reply.expect_status(204);
    assert!(reply.body.is_empty());
    server
        .get(&format!("/api/products/{id}"))
        .token(admin)
        .send()
        .problem(404);
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    server
        .delete(&format!("/api/products/{WIDGET}"))
        .token(admin)
        .send()
        .problem(409);
}

// ---- customers --------------------------------------------------------------

#[test]
fn customers_crud() {
    let server = Server::start();
    let admin = &server.admin.token;
    let page = server.get("/api/customers").token(admin).send();
    page.expect_status(200);
    let page = page.json();
    assert_eq!(keys(&page), sorted(&["items", "next"]));
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let paged = server
        .get("/api/customers?limit=2")
        .token(admin)
        .send()
        .json();
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    let rest = server
        .get(&format!("/api/customers?limit=2&after={}", paged["next"]))
        .token(admin)
        .send()
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());

    let reply = server
        .post("/api/customers")
        .token(admin)
        .json(&json!({"name": "Carol", "email": "Carol@Example.com", "phone": "+1 555 0100"}))
        .send();
    reply.expect_status(201);
    let carol = reply.json();
    assert_eq!(
        keys(&carol),
        sorted(&["id", "name", "email", "phone", "created_at", "updated_at"])
    );
    assert_eq!(carol["phone"], "+1 555 0100");
    let id = carol["id"].as_i64().unwrap();
    server
        .post("/api/customers")
        .token(admin)
        .json(&json!({"name": "Carol 2", "email": "carol@example.com"}))
        .send()
        .problem(409);
    let problem = server
        .post("/api/customers")
        .token(admin)
        .json(&json!({"id": 99, "name": "Dan", "email": "dan@example.com"}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["id"]);

    let got = server
        .get(&format!("/api/customers/{id}"))
        .token(admin)
        .send();
    got.expect_status(200);
    assert_eq!(got.json(), carol);
    // A customer reads itself.
    let me = server
        .get(&format!("/api/customers/{}", server.alice.customer_id()))
        .token(&server.alice.token)
        .send();
    me.expect_status(200);
    assert_eq!(me.json()["email"], ALICE_EMAIL);

    let patched = server
        .patch(&format!("/api/customers/{id}"))
        .token(admin)
        .json(&json!({"name": "Carol C.", "phone": null}))
        .send();
    patched.expect_status(200);
    let patched = patched.json();
    assert_eq!(patched["name"], "Carol C.");
    assert!(patched["phone"].is_null());
    server
        .patch(&format!("/api/customers/{id}"))
        .token(admin)
        .json(&json!({"email": "bad"}))
        .send()
        .problem(422);

    server
        .delete(&format!("/api/customers/{id}"))
        .token(admin)
        .send()
        .expect_status(204);
    server
        .get(&format!("/api/customers/{id}"))
        .token(admin)
        .send()
        .problem(404);
    server
        .delete(&format!("/api/customers/{id}"))
        .token(admin)
        .send()
        .problem(404);
    // A customer with a login is kept.
    server
        .delete(&format!("/api/customers/{}", server.alice.customer_id()))
        .token(admin)
        .send()
        .problem(409);
    let spare = server
        .get(&format!("/api/customers/{}", server.spare_customer_id))
        .token(admin)
        .send()
        .json();
    assert_eq!(spare["email"], SPARE_EMAIL);
}

// ---- orders -----------------------------------------------------------------

#[test]
fn customer_places_an_order_for_itself() {
    let server = Server::start();
    let reply = server
        .post("/api/orders")
        .token(&server.alice.token)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 2}, {"sku": GADGET, "quantity": 1}]}))
        .send();
    reply.expect_status(201);
    let order = reply.json();
    assert_eq!(
        keys(&order),
        sorted(&[
            "id",
            "customer_id",
            "status",
            "items",
            "total",
            "currency",
            "payment_collected",
            "tracking_code",
            "idempotency_key",
            "version",
            "created_at",
            "updated_at"
        ])
    );
    let id = order["id"].as_i64().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(&*format!("/api/orders/{id}"))
    );
    assert_eq!(reply.header("etag"), Some("\"1\""));
    assert_eq!(order["customer_id"], server.alice.customer_id());
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total"], "69.97");
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["payment_collected"], false);
    assert_eq!(order["version"], 1);
    assert!(order["idempotency_key"].is_null());
    assert!(!order["tracking_code"].as_str().unwrap().is_empty());
    assert!(is_utc(&order["created_at"]) && is_utc(&order["updated_at"]));
    let item = &order["items"][0];
    assert_eq!(
        keys(item),
        sorted(&[
            "product_id",
            "sku",
            "name",
            "unit_price",
            "quantity",
            "line_total"
        ])
    );
    assert_eq!(item["sku"], WIDGET);
    assert_eq!(item["unit_price"], "9.99");
    assert_eq!(item["quantity"], 2);
    assert_eq!(item["line_total"], "19.98");

    // Stock is reserved.
    let widget = product(&server, WIDGET);
    assert_eq!(widget["stock_reserved"], 2);
    assert_eq!(widget["stock_available"], 98);

    // `product_id` may stand for `sku`, and naming itself is fine.
    let gadget_id = product(&server, GADGET)["id"].as_i64().unwrap();
    let reply = server
        .post("/api/orders")
        .token(&server.alice.token)
        .json(&json!({"customer_id": server.alice.customer_id(), "items": [{"product_id": gadget_id, "quantity": 1}]}))
        .send();
    reply.expect_status(201);
    assert_eq!(reply.json()["items"][0]["sku"], GADGET);

    // A customer cannot place as paid, nor for someone else.
    server
        .post("/api/orders")
        .token(&server.alice.token)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 1}], "payment_collected": true}))
        .send()
        .problem(403);
    server
        .post("/api/orders")
        .token(&server.alice.token)
        .json(&order_body(Some(server.bob.customer_id()), &[(WIDGET, 1)]))
        .send()
        .problem(403);
}

#[test]
fn admin_places_for_a_customer_and_bad_orders_are_refused() {
    let server = Server::start();
    let admin = &server.admin.token;
    let reply = server
        .post("/api/orders")
        .token(admin)
        .json(&json!({"customer_id": server.bob.customer_id(), "items": [{"sku": GADGET, "quantity": 3}], "payment_collected": true}))
        .send();
    reply.expect_status(201);
    let order = reply.json();
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["payment_collected"], true);
    assert_eq!(order["customer_id"], server.bob.customer_id());

    // The admin must name the customer.
    let problem = server
        .post("/api/orders")
        .token(admin)
        .json(&order_body(None, &[(WIDGET, 1)]))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["customer_id"]);
    server
        .post("/api/orders")
        .token(admin)
        .json(&order_body(Some(999_999), &[(WIDGET, 1)]))
        .send()
        .problem(404);
    // Server-set fields and invalid lines.
    let problem = server
        .post("/api/orders")
        .token(admin)
        .json(&json!({"customer_id": server.bob.customer_id(), "status": "PAID", "items": [{"sku": WIDGET, "quantity": 1}]}))
        .send()
        .problem(422);
    assert_eq!(error_fields(&problem), ["status"]);
    for items in [
        json!([]),
        json!([{"sku": WIDGET, "quantity": 0}]),
        json!([{"sku": WIDGET, "quantity": -1}]),
        json!([{"quantity": 1}]),
        json!([{"sku": WIDGET, "product_id": 1, "quantity": 1}]),
        json!([{"sku": WIDGET, "quantity": 1, "price": "0.01"}]),
    ] {
        server
            .post("/api/orders")
            .token(admin)
            .json(&json!({"customer_id": server.bob.customer_id(), "items": items}))
            .send()
            .problem(422);
    }

    // Insufficient stock: 409 naming every failing line, nothing written.
    let orders_before = server.store().orders(&Default::default()).unwrap().len();
    let problem = server
        .post("/api/orders")
        .token(admin)
        .json(&order_body(
            Some(server.alice.customer_id()),
            &[(WIDGET, 1), (GADGET, 8), ("NO-SUCH", 1)],
        ))
        .send()
        .problem(409);
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, [GADGET, "NO-SUCH"]);
    assert!(
        problem["errors"][0]["message"].is_string(),
        "field errors carry a message: {problem}"
    );
    assert_eq!(
        server.store().orders(&Default::default()).unwrap().len(),
        orders_before
    );
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 0);
    assert_eq!(product(&server, GADGET)["stock_reserved"], 3);
}

#[test]
fn orders_list_filters_and_pages() {
    let server = Server::start();
    let alice = server.alice.customer_id();
    let bob = server.bob.customer_id();
    let a1 = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let b1 = server.place(&server.bob, None, &[(GADGET, 1)]);
    let a2 = server.place(&server.alice, None, &[(GADGET, 2)]);
    let a3 = server.place(&server.admin, Some(alice), &[(WIDGET, 5)]);
    server
        .put(&format!("/api/orders/{}/status", a2["id"]))
        .token(&server.admin.token)
        .json(&json!({"status": "paid"}))
        .send()
        .expect_status(200);

    let ids = |path: &str, token: &str| -> (Vec<i64>, Value) {
        let reply = server.get(path).token(token).send();
        reply.expect_status(200);
        let page = reply.json();
        let ids = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect();
        (ids, page["next"].clone())
    };
    let id = |o: &Value| o["id"].as_i64().unwrap();
    let admin = server.admin.token.clone();

    let (all, next) = ids("/api/orders", &admin);
    assert_eq!(all, [id(&a1), id(&b1), id(&a2), id(&a3)]);
    assert!(next.is_null());
    // A customer sees only its own.
    let (own, _) = ids("/api/orders", &server.alice.token);
    assert_eq!(own, [id(&a1), id(&a2), id(&a3)]);
    let (own, _) = ids("/api/orders", &server.bob.token);
    assert_eq!(own, [id(&b1)]);
    // Filters.
    let (paid, _) = ids("/api/orders?status=paid", &admin);
    assert_eq!(paid, [id(&a2)]);
    let (pending_alice, _) = ids(
        &format!("/api/orders?status=PENDING&customer={alice}"),
        &admin,
    );
    assert_eq!(pending_alice, [id(&a1), id(&a3)]);
    let (by_email, _) = ids("/api/orders?customer=bob%40example.com", &admin);
    assert_eq!(by_email, [id(&b1)]);
    let (by_bob_id, _) = ids(&format!("/api/orders?customer={bob}"), &admin);
    assert_eq!(by_bob_id, [id(&b1)]);
    let (gadgets, _) = ids("/api/orders?q=gadget", &admin);
    assert_eq!(gadgets, [id(&b1), id(&a2)]);
    let since = a1["created_at"].as_str().unwrap();
    let (since_all, _) = ids(&format!("/api/orders?since={since}"), &admin);
    assert_eq!(since_all.len(), 4);
    let (until_none, _) = ids(&format!("/api/orders?until={since}"), &admin);
    assert!(until_none.is_empty());
    server
        .get("/api/orders?status=shipped")
        .token(&admin)
        .send()
        .problem(400);
    server
        .get("/api/orders?since=yesterday")
        .token(&admin)
        .send()
        .problem(400);

    // Cursor pages of two.
    let (first, next) = ids("/api/orders?limit=2", &admin);
    assert_eq!(first, [id(&a1), id(&b1)]);
    assert_eq!(next, id(&b1));
    let (second, next) = ids(&format!("/api/orders?limit=2&after={next}"), &admin);
    assert_eq!(second, [id(&a2), id(&a3)]);
    let (third, next) = ids(&format!("/api/orders?limit=2&after={next}"), &admin);
    assert!(third.is_empty());
    assert!(next.is_null());
}

#[test]
fn get_patch_items_and_delete_orders() {
    let server = Server::start();
    let admin = &server.admin.token;
    let order = server.place(&server.alice, None, &[(WIDGET, 2)]);
    let id = order["id"].as_i64().unwrap();
    let path = format!("/api/orders/{id}");

    let got = server.get(&path).token(&server.alice.token).send();
    got.expect_status(200);
    assert_eq!(got.header("etag"), Some("\"1\""));
    assert_eq!(got.json(), order);
    server
        .get("/api/orders/999999")
        .token(admin)
        .send()
        .problem(404);

    // Edit the items of a PENDING order: the delta is re-reserved.
    let reply = server
        .patch(&path)
        .token(admin)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 5}, {"sku": GADGET, "quantity": 1}]}))
        .send();
    reply.expect_status(200);
    let edited = reply.json();
    assert_eq!(edited["version"], 2);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    assert_eq!(edited["total"], "99.94");
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 5);
    assert_eq!(product(&server, GADGET)["stock_reserved"], 1);
    // Stale If-Match, too much stock, server-set fields.
    server
        .patch(&path)
        .token(admin)
        .header("if-match", "\"1\"")
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 1}]}))
        .send()
        .problem(412);
    let problem = server
        .patch(&path)
        .token(admin)
        .json(&json!({"items": [{"sku": GADGET, "quantity": 11}]}))
        .send()
        .problem(409);
    assert_eq!(error_fields(&problem), [GADGET]);
    server
        .patch(&path)
        .token(admin)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 1}], "version": 2}))
        .send()
        .problem(422);
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 5);
    let reply = server
        .patch(&path)
        .token(admin)
        .header("if-match", "\"2\"")
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 1}]}))
        .send();
    reply.expect_status(200);
    assert_eq!(reply.json()["version"], 3);
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 1);
    assert_eq!(product(&server, GADGET)["stock_reserved"], 0);

    // Only PENDING orders are edited.
    server
        .put(&format!("{path}/status"))
        .token(admin)
        .json(&json!({"status": "PAID"}))
        .send()
        .expect_status(200);
    server
        .patch(&path)
        .token(admin)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 2}]}))
        .send()
        .problem(409);
    // A PAID order is not deleted; a PENDING one is, releasing its stock.
    server.delete(&path).token(admin).send().problem(409);
    let pending = server.place(&server.bob, None, &[(GADGET, 4)]);
    assert_eq!(product(&server, GADGET)["stock_reserved"], 4);
    let pending_path = format!("/api/orders/{}", pending["id"]);
    let reply = server.delete(&pending_path).token(admin).send();
    reply.expect_status(204);
    assert!(reply.body.is_empty());
    assert_eq!(product(&server, GADGET)["stock_reserved"], 0);
    server.get(&pending_path).token(admin).send().problem(404);
    server
        .delete(&pending_path)
        .token(admin)
        .send()
        .problem(404);
}

#[test]
fn status_changes_follow_the_machine_with_if_match() {
    let server = Server::start();
    let admin = &server.admin.token;
    let order = server.place(&server.alice, None, &[(GADGET, 2)]);
    let status_path = format!("/api/orders/{}/status", order["id"]);

    // Stale If-Match: 412, nothing changes.
    server
        .put(&status_path)
        .token(admin)
        .header("if-match", "\"7\"")
        .json(&json!({"status": "paid"}))
        .send()
        .problem(412);
    server
        .put(&status_path)
        .token(admin)
        .header("if-match", "seven")
        .json(&json!({"status": "paid"}))
        .send()
        .problem(400);
    // The current version (as sent in ETag) succeeds.
    let reply = server
        .put(&status_path)
        .token(admin)
        .header("if-match", "\"1\"")
        .json(&json!({"status": "paid"}))
        .send();
    reply.expect_status(200);
    let paid = reply.json();
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["payment_collected"], true);
    assert_eq!(paid["version"], 2);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    // The same status again is a no-op success.
    let again = server
        .patch(&status_path)
        .token(admin)
        .json(&json!({"status": "PAID"}))
        .send();
    again.expect_status(200);
    assert_eq!(again.json()["version"], 2);
    // PATCH works like PUT; fulfilling ships the stock.
    let reply = server
        .patch(&status_path)
        .token(admin)
        .header("if-match", "W/\"2\"")
        .json(&json!({"status": "Fulfilled"}))
        .send();
    reply.expect_status(200);
    assert_eq!(reply.json()["status"], "FULFILLED");
    let gadget = product(&server, GADGET);
    assert_eq!(gadget["stock_on_hand"], 8);
    assert_eq!(gadget["stock_reserved"], 0);
    // Terminal: a refused transition is a 409 naming the rule.
    let problem = server
        .put(&status_path)
        .token(admin)
        .json(&json!({"status": "cancelled"}))
        .send()
        .problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("FULFILLED"));
    // Invalid bodies.
    server
        .put(&status_path)
        .token(admin)
        .json(&json!({"status": "shipped"}))
        .send()
        .problem(422);
    server
        .put(&status_path)
        .token(admin)
        .json(&json!({"status": "paid", "version": 3}))
        .send()
        .problem(422);
    server
        .put("/api/orders/999999/status")
        .token(admin)
        .json(&json!({"status": "paid"}))
        .send()
        .problem(404);

    // Cancelling releases reserved stock.
    let other = server.place(&server.bob, None, &[(WIDGET, 3)]);
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 3);
    server
        .put(&format!("/api/orders/{}/status", other["id"]))
        .token(admin)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);
    assert_eq!(product(&server, WIDGET)["stock_reserved"], 0);
    assert!(server.store().verify().unwrap().is_clean());
}

#[test]
fn export_csv_streams_the_documented_columns() {
    let server = Server::start();
    let a = server.place(&server.alice, None, &[(WIDGET, 2), (GADGET, 1)]);
    let b = server.place(&server.bob, None, &[(GADGET, 1)]);
    let reply = server
        .get("/api/orders/export.csv")
        .token(&server.admin.token)
        .send();
    reply.expect_status(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "content type {:?}",
        reply.header("content-type")
    );
    // Streamed: no length known up front.
    assert!(reply.header("content-length").is_none());
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    let lines: Vec<&str> = reply.body.lines().collect();
    assert_eq!(lines[0], ORDER_EXPORT_HEADER);
    assert_eq!(lines.len(), 1 + 3, "{}", reply.body);
    assert!(lines[1].starts_with(&format!("{},", a["id"])));
    assert!(lines[1].contains(ALICE_EMAIL) && lines[1].contains(",WIDGET,"));
    assert!(lines[3].starts_with(&format!("{},", b["id"])));

    // Same filters as the list.
    let filtered = server
        .get(&format!(
            "/api/orders/export.csv?customer={}",
            server.bob.customer_id()
        ))
        .token(&server.admin.token)
        .send();
    filtered.expect_status(200);
    let lines: Vec<&str> = filtered.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", filtered.body);
    assert!(lines[1].contains("bob@example.com"));
    let by_order = server
        .get("/api/orders/export.csv?by_order=true")
        .token(&server.admin.token)
        .send();
    by_order.expect_status(200);
    let lines: Vec<&str> = by_order.body.lines().collect();
    assert!(lines[0].contains(",items,"), "{}", lines[0]);
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains("WIDGET*2;GADGET*1"), "{}", lines[1]);
    server
        .get("/api/orders/export.csv?status=nope")
        .token(&server.admin.token)
        .send()
        .problem(400);
}

#[test]
fn track_shows_status_and_no_personal_data() {
    let server = Server::start();
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let code = order["tracking_code"].as_str().unwrap();
    let reply = server.get(&format!("/api/track/{code}")).send();
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(
        keys(&body),
        sorted(&["tracking_code", "status", "created_at", "updated_at"])
    );
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["tracking_code"], code);
    for private in [
        ALICE_EMAIL,
        "Alice",
        "customer_id",
        "total",
        "WIDGET",
        "9.99",
    ] {
        assert!(!reply.body.contains(private), "{private} in {}", reply.body);
    }
    server.get("/api/track/TRKNOPE").send().problem(404);
}

#[test]
fn changes_list_every_change_in_order() {
    let server = Server::start();
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    server
        .put(&format!("/api/orders/{}/status", order["id"]))
        .token(&server.admin.token)
        .json(&json!({"status": "paid"}))
        .send()
        .expect_status(200);
    let reply = server
        .get("/api/changes?after=0")
        .token(&server.admin.token)
        .send();
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(keys(&body), sorted(&["changes", "next"]));
    let changes = body["changes"].as_array().unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(body["next"], *seqs.last().unwrap());
    for change in changes {
        for field in ["seq", "at", "type", "entity", "entity_id", "data"] {
            assert!(!change[field].is_null(), "{field} missing in {change}");
        }
        assert!(is_utc(&change["at"]));
    }
    let types: Vec<&str> = changes
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    for expected in [
        "product.created",
        "customer.created",
        "order.placed",
        "order.status_changed",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    let last = changes.last().unwrap();
    assert_eq!(last["entity"], "order");
    assert_eq!(last["entity_id"], order["id"]);
    assert_eq!(last["data"]["to"], "PAID");

    // limit and resuming from next.
    let first = server
        .get("/api/changes?after=0&limit=2")
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(first["changes"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], seqs[1]);
    let rest = server
        .get(&format!("/api/changes?after={}", first["next"]))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(rest["changes"][0]["seq"], seqs[2]);
    server
        .get("/api/changes?wait=61")
        .token(&server.admin.token)
        .send()
        .problem(400);
    server
        .get("/api/changes?after=x")
        .token(&server.admin.token)
        .send()
        .problem(400);
}

// ---- regressions -------------------------------------------------------------

/// Self-registration must not link a stranger to an existing customer
/// record (created by an admin or an import) and hand over its orders.
#[test]
fn register_cannot_take_over_an_existing_customer_record() {
    let server = Server::start();
    let spare_order = server.place(
        &server.admin,
        Some(server.spare_customer_id),
        &[(WIDGET, 1)],
    );
    let problem = server
        .post("/auth/register")
        .json(&json!({"email": SPARE_EMAIL.to_uppercase(), "password": "i-am-not-spare", "name": "Mallory"}))
        .send()
        .problem(409);
    assert!(!problem.to_string().contains("Spare"), "{problem}");
    // No login was created, so nobody can read the spare customer's orders.
    server
        .post("/auth/login")
        .json(&json!({"email": SPARE_EMAIL, "password": "i-am-not-spare"}))
        .send()
        .problem(401);
    assert!(server.store().user(SPARE_EMAIL).is_err());
    let order = server
        .get(&format!("/api/orders/{}", spare_order["id"]))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(order["customer_id"], server.spare_customer_id);
}

#[test]
fn register_refuses_a_short_password() {
    let server = Server::start();
    server
        .post("/auth/register")
        .json(&json!({"email": "short@example.com", "password": "short", "name": "Short"}))
        .send()
        .problem(422);
    assert!(server.store().user("short@example.com").is_err());
}

/// The export checks its filters before it starts streaming: an unknown
/// customer is a 404 problem, not a 200 with a broken body.
#[test]
fn export_of_an_unknown_customer_is_404() {
    let server = Server::start();
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    for customer in ["999999", "nobody%40example.com"] {
        server
            .get(&format!("/api/orders/export.csv?customer={customer}"))
            .token(&server.admin.token)
            .send()
            .problem(404);
        server
            .get(&format!("/api/orders?customer={customer}"))
            .token(&server.admin.token)
            .send()
            .problem(404);
    }
}

/// A customer may name itself by e-mail in the `customer` filter.
#[test]
fn a_customer_filters_its_own_orders_by_email() {
    let server = Server::start();
    let own = server.place(&server.alice, None, &[(WIDGET, 1)]);
    server.place(&server.bob, None, &[(WIDGET, 1)]);
    let reply = server
        .get("/api/orders?customer=ALICE%40example.com")
        .token(&server.alice.token)
        .send();
    reply.expect_status(200);
    let items = reply.json()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["id"], own["id"]);
    for other in ["bob%40example.com", "nobody%40example.com"] {
        server
            .get(&format!("/api/orders?customer={other}"))
            .token(&server.alice.token)
            .send()
            .problem(403);
    }
    server
        .get(&format!(
            "/api/orders?customer={}",
            server.bob.customer_id()
        ))
        .token(&server.alice.token)
        .send()
        .problem(403);
}

#[test]
fn the_expiry_timer_cancels_stale_pending_orders_and_releases_stock() {
    let server = Server::start_with(|config| {
        config.expire_pending_after = Some(Duration::ZERO);
        config.expire_every = Duration::from_millis(50);
    });
    let order = server.place(
        &server.admin,
        Some(server.alice.customer_id()),
        &[(GADGET, 2)],
    );
    let id = order["id"].as_i64().expect("id");
    wait_until(Duration::from_secs(5), "the order to be expired", || {
        let order = server
            .get(&format!("/api/orders/{id}"))
            .token(&server.admin.token)
            .send()
            .json();
        order["status"] == "CANCELLED"
    });
    let product = server
        .get(&format!("/api/products/{GADGET}"))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(product["stock_reserved"], 0, "{product}");
    assert!(server.store().verify().unwrap().is_clean());
}
