//! The authorization matrix and the leak probes (issue 5, item 5).
//!
//! - [`authorization_matrix_matches_the_contract`]: anonymous, an expired
//!   admin token, two forged admin tokens (customer A's claims with the
//!   role set to admin, signed with a wrong key or not at all), customer B,
//!   customer A and the admin against every (route, method) of
//!   `routes::RULES`, every method a route does not answer, and paths that
//!   are not routed.
//! - [`customer_b_probing_a_finds_nothing`]: B against A's real order and
//!   customer ids, their neighbours and malformed or huge ids on every
//!   object path, its order list with every filter, the export, the change
//!   feed (read and long-poll) and public tracking.
//!
//! Each prints one line `authz figure: test=NAME probes=N mismatches=N
//! leaks=N` (run with `--nocapture`; `scripts/authz` sums them). A leak is
//! an answer to someone other than A or the admin that carries A's data:
//! A's e-mail or name, a tracking code of A's, an object with A's
//! `customer_id`, or a change that is not about the caller.

use oms_core::prelude::*;
use std::collections::{BTreeSet, HashSet};

use jsonwebtoken::Algorithm;
use oms_daemon::routes::{self, RULES, Route};
use serde_json::{Value, json};

use crate::jwt::{claims, sign, sign_with, unsigned, with};
use crate::support::{
    ALICE_EMAIL, BOB_EMAIL, GADGET, PASSWORD, Reply, Server, WIDGET, now_secs, order_body,
};

/// Every method sent to every path; those a route does not answer get 405.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Paths that name no route: 404 for any method and any caller.
const UNROUTED: [&str; 6] = [
    "/index.html",
    "/api",
    "/api/payments/webhook/x",
    "/api/orders/1/status/x",
    "/API/orders",
    "/api/orders/1/items",
];

/// The callers of the matrix, in the order each probe is sent (so every
/// refusal is checked before the admin's success changes anything).
const WHO: [&str; 7] = [
    "anonymous",
    "expired admin token",
    "forged admin token (wrong key)",
    "forged admin token (alg none)",
    "customer B",
    "customer A",
    "admin",
];
const ANONYMOUS: usize = 0;
const CUSTOMER_B: usize = 4;
const CUSTOMER_A: usize = 5;
const ADMIN: usize = 6;

/// What counts as customer A's data in an answer to anyone else.
struct Secrets {
    email: String,
    name: String,
    customer_id: i64,
    user_id: i64,
    order_ids: HashSet<i64>,
    tracking_codes: Vec<String>,
    /// Payments for A's orders.
    payment_ids: HashSet<i64>,
}

impl Secrets {
    fn of_alice(server: &Server, orders: &[&Value]) -> Secrets {
        Secrets {
            email: ALICE_EMAIL.to_string(),
            name: server.alice.user.name.clone(),
            customer_id: server.alice.customer_id(),
            user_id: server.alice.user.id.get(),
            order_ids: orders
                .iter()
                .map(|o| o["id"].as_i64().expect("order id"))
                .collect(),
            tracking_codes: orders
                .iter()
                .map(|o| {
                    o["tracking_code"]
                        .as_str()
                        .expect("tracking code")
                        .to_string()
                })
                .collect(),
            payment_ids: HashSet::new(),
        }
    }

    /// What of A's data `body` shows; `allowed_code` is a tracking code the
    /// caller named itself (public tracking echoes it).
    fn found_in(&self, body: &str, allowed_code: Option<&str>) -> Vec<String> {
        let mut found = Vec::new();
        let lower = body.to_ascii_lowercase();
        if lower.contains(&self.email.to_ascii_lowercase()) {
            found.push("A's e-mail".to_string());
        }
        if body.contains(&self.name) {
            found.push("A's name".to_string());
        }
        for code in &self.tracking_codes {
            if body.contains(code.as_str()) && allowed_code != Some(code.as_str()) {
                found.push(format!("A's tracking code {code}"));
            }
        }
        if let Ok(value) = serde_json::from_str::<Value>(body) {
            self.walk(&value, &mut found);
        }
        found
    }

    fn walk(&self, value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.walk(v, found)),
            Value::Object(object) => {
                if object.get("customer_id").and_then(Value::as_i64) == Some(self.customer_id) {
                    found.push(format!("an object of A's: {value}"));
                }
                let entity_id = object.get("entity_id").and_then(Value::as_i64);
                let about_alice = match object.get("entity").and_then(Value::as_str) {
                    Some("order") => entity_id.is_some_and(|id| self.order_ids.contains(&id)),
                    Some("customer") => entity_id == Some(self.customer_id),
                    Some("user") => entity_id == Some(self.user_id),
                    Some("payment") => entity_id.is_some_and(|id| self.payment_ids.contains(&id)),
                    _ => false,
                };
                if about_alice {
                    found.push(format!("a change about A: {value}"));
                }
                object.values().for_each(|v| self.walk(v, found));
            }
            _ => {}
        }
    }
}

/// Probes sent, answers that differ from the contract, and leaks.
#[derive(Default)]
struct Tally {
    probes: usize,
    mismatches: Vec<String>,
    leaks: Vec<String>,
}

impl Tally {
    /// Counts a probe; false (and a mismatch) when its status is not one of
    /// `expected`. Refusals must be RFC 9457 problems.
    fn status(&mut self, who: &str, reply: &Reply, expected: &[u16]) -> bool {
        self.probes += 1;
        if !expected.contains(&reply.status) {
            self.mismatches.push(format!(
                "{} as {who}: expected {expected:?}, got {}: {}",
                reply.what, reply.status, reply.body
            ));
            return false;
        }
        if reply.status >= 400 && !reply.what.starts_with("HEAD ") {
            reply.problem(reply.status);
        }
        if reply.status == 405 || (reply.status == 204 && reply.what.starts_with("OPTIONS ")) {
            assert!(
                reply.header("allow").is_some_and(|a| a.contains("OPTIONS")),
                "{}: {} without an honest Allow",
                reply.what,
                reply.status
            );
        }
        if reply.what.starts_with("HEAD ") {
            assert!(reply.body.is_empty(), "{}: a body", reply.what);
        }
        if reply.status == 401 {
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|a| a.starts_with("Bearer")),
                "{}: 401 without WWW-Authenticate: Bearer",
                reply.what
            );
        }
        true
    }

    /// Records every piece of A's data in an answer to `who`.
    fn leaks(&mut self, who: &str, reply: &Reply, secrets: &Secrets, allowed_code: Option<&str>) {
        for what in secrets.found_in(&reply.body, allowed_code) {
            self.leaks.push(format!(
                "{} as {who} ({}): {what}",
                reply.what, reply.status
            ));
        }
    }

    /// Prints the figure line, then fails on any mismatch or leak.
    fn finish(self, test: &str, at_least: usize) {
        println!(
            "authz figure: test={test} probes={} mismatches={} leaks={}",
            self.probes,
            self.mismatches.len(),
            self.leaks.len()
        );
        assert!(self.probes >= at_least, "only {} probes sent", self.probes);
        assert!(
            self.mismatches.is_empty() && self.leaks.is_empty(),
            "{test}: {} of {} probes got the wrong answer, {} leaked A's data:\n{}\n{}",
            self.mismatches.len(),
            self.probes,
            self.leaks.len(),
            self.mismatches.join("\n"),
            self.leaks.join("\n")
        );
    }
}

/// One request sent by each of [`WHO`] in turn; `None` skips a caller.
struct Probe {
    method: &'static str,
    path: String,
    bodies: [Option<Value>; 4],
    /// For anonymous, customer B, customer A and the admin; the three bad
    /// tokens get [`bad_token_status`].
    expect: [Option<u16>; 4],
}

fn probe(method: &'static str, path: impl Into<String>, expect: [u16; 4]) -> Probe {
    Probe {
        method,
        path: path.into(),
        bodies: [None, None, None, None],
        expect: expect.map(Some),
    }
}

impl Probe {
    /// The same body for everyone.
    fn body(mut self, body: Value) -> Probe {
        self.bodies = [
            Some(body.clone()),
            Some(body.clone()),
            Some(body.clone()),
            Some(body),
        ];
        self
    }

    /// A body per caller (anonymous, B, A, admin).
    fn bodies(mut self, f: impl Fn(usize) -> Value) -> Probe {
        self.bodies = [Some(f(0)), Some(f(1)), Some(f(2)), Some(f(3))];
        self
    }

    /// The expected status and body of caller `who` (an index of [`WHO`]).
    fn for_caller(&self, who: usize) -> (Option<u16>, Option<&Value>) {
        let slot = match who {
            ANONYMOUS => 0,
            CUSTOMER_B => 1,
            CUSTOMER_A => 2,
            ADMIN => 3,
            _ => return (Some(bad_token_status(self.method, &self.path)), None),
        };
        (self.expect[slot], self.bodies[slot].as_ref())
    }
}

/// Whether RULES has (route, method); HEAD stands for GET.
fn answers(route: Route, method: &str) -> bool {
    let method = if method == "HEAD" { "GET" } else { method };
    RULES
        .iter()
        .any(|(r, m, _)| *r == route && m.as_str() == method)
}

/// A bad token is refused with 401 wherever the path and method exist,
/// also on routes that need no token; an unknown path is 404, a method
/// the path does not answer is 405 before any token is looked at, and
/// OPTIONS (which says what a route answers) needs no token.
fn bad_token_status(method: &str, path: &str) -> u16 {
    let path = path.split('?').next().unwrap_or(path);
    match routes::match_path(path) {
        None => 404,
        Some(_) if method == "OPTIONS" => 204,
        Some(m) if answers(m.route, method) => 401,
        Some(_) => 405,
    }
}

/// Customer A's claims with the role raised to admin.
fn alice_as_admin(server: &Server) -> Value {
    let mut payload = claims(&server.alice);
    payload["role"] = json!("admin");
    payload
        .as_object_mut()
        .expect("claims object")
        .remove("customer_id");
    payload
}

#[test]
fn authorization_matrix_matches_the_contract() {
    // No feed waiters: an authorized event stream then answers 503 at once
    // instead of staying open (its authorization is decided before the
    // cap; tests/it/stream.rs covers what it streams to whom).
    let server = Server::start_with(|c| c.max_waiters = 0);
    let alice_customer = server.alice.customer_id();
    let spare = server.spare_customer_id;
    server.add_product("DEL-ME", "1.00", 1);
    // A's orders: one to read, edit and cancel, one to delete, one to pay.
    let a_order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let a_delete = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let a_pay = server.place(&server.alice, None, &[(GADGET, 1)]);
    // One paid by a recorded (manual) payment, for the payment routes.
    let a_paid = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let a_paid_id = a_paid["id"].as_i64().unwrap();
    let payment_id = record_manual_payment(&server, a_paid_id, "9.99");
    let a_id = a_order["id"].as_i64().unwrap();
    let a_code = a_order["tracking_code"].as_str().unwrap().to_string();
    let mut secrets = Secrets::of_alice(&server, &[&a_order, &a_delete, &a_pay, &a_paid]);
    secrets.payment_ids.insert(payment_id);
    // A's first outbox row (pending: the admin's retry is refused, 409).
    let a_mail = server
        .store()
        .notifications(&oms_core::NotificationFilter::default())
        .unwrap()[0]
        .id;

    let one_widget = json!({"items": [{"sku": WIDGET, "quantity": 1}]});
    let mut probes = vec![
        probe("GET", "/healthz", [200, 200, 200, 200]),
        probe("GET", "/metrics", [200, 200, 200, 200]),
        probe("GET", "/api/openapi.json", [200, 200, 200, 200]),
        probe("POST", "/auth/register", [201, 201, 201, 201]).bodies(|i| {
            json!({"email": format!("new{i}@example.com"), "password": "long enough", "name": "New"})
        }),
        probe("POST", "/auth/login", [200, 200, 200, 200])
            .body(json!({"email": ALICE_EMAIL, "password": PASSWORD})),
        probe("GET", "/api/products", [401, 200, 200, 200]),
        probe("POST", "/api/products", [401, 403, 403, 201])
            .body(json!({"sku": "AUTHZ-NEW", "name": "New", "price": "2.00"})),
        probe("GET", format!("/api/products/{WIDGET}"), [401, 200, 200, 200]),
        probe("PATCH", format!("/api/products/{WIDGET}"), [401, 403, 403, 200])
            .body(json!({"name": "Renamed widget"})),
        probe("DELETE", "/api/products/DEL-ME", [401, 403, 403, 204]),
        probe("GET", "/api/customers", [401, 403, 403, 200]),
        probe("POST", "/api/customers", [401, 403, 403, 201])
            .body(json!({"name": "Authz", "email": "authz@example.com"})),
        probe(
            "GET",
            format!("/api/customers/{alice_customer}"),
            [401, 404, 200, 200],
        ),
        probe(
            "PATCH",
            format!("/api/customers/{alice_customer}"),
            [401, 403, 403, 200],
        )
        .body(json!({"phone": "+44 20 7946 0000"})),
        probe(
            "DELETE",
            format!("/api/customers/{spare}"),
            [401, 403, 403, 204],
        ),
        probe("GET", "/api/orders", [401, 200, 200, 200]),
        probe(
            "GET",
            format!("/api/orders?customer={alice_customer}"),
            [401, 403, 200, 200],
        ),
        // A customer places for itself; the admin must name the customer.
        probe("POST", "/api/orders", [401, 201, 201, 422]).body(one_widget.clone()),
        probe("POST", "/api/orders", [401, 403, 201, 201])
            .body(order_body(Some(alice_customer), &[(WIDGET, 1)])),
        probe("GET", "/api/orders/export.csv", [401, 403, 403, 200]),
        probe("GET", format!("/api/orders/{a_id}"), [401, 404, 200, 200]),
        probe("PATCH", format!("/api/orders/{a_id}"), [401, 403, 403, 200])
            .body(json!({"items": [{"sku": WIDGET, "quantity": 2}]})),
        probe(
            "DELETE",
            format!("/api/orders/{}", a_delete["id"]),
            [401, 403, 403, 204],
        ),
        // A may cancel its own PENDING order; B may not touch it.
        probe(
            "PUT",
            format!("/api/orders/{a_id}/status"),
            [401, 404, 200, 200],
        )
        .body(json!({"status": "cancelled"})),
        // Nobody but the admin pays.
        probe(
            "PATCH",
            format!("/api/orders/{}/status", a_pay["id"]),
            [401, 404, 403, 200],
        )
        .body(json!({"status": "paid"})),
        probe("GET", format!("/api/track/{a_code}"), [200, 200, 200, 200]),
        probe("GET", "/api/changes", [401, 200, 200, 200]),
        probe("GET", "/api/notifications", [401, 403, 403, 200]),
        probe(
            "POST",
            format!("/api/notifications/{a_mail}/retry"),
            [401, 403, 403, 409],
        ),
        // Authenticated by its signature; this daemon has no secret.
        probe("POST", "/api/payments/webhook", [503, 503, 503, 503]).body(json!({})),
        probe("GET", "/api/payments", [401, 403, 403, 200]),
        probe(
            "GET",
            format!("/api/payments/{payment_id}"),
            [401, 403, 403, 200],
        ),
        probe(
            "GET",
            format!("/api/orders/{a_paid_id}/payments"),
            [401, 404, 200, 200],
        ),
        probe("GET", "/api/changes/stream", [401, 503, 503, 503]),
        probe(
            "POST",
            format!("/api/products/{WIDGET}/restock"),
            [401, 403, 403, 200],
        )
        .body(json!({"add": 1})),
        // The dashboard: public pages and files; the data stays behind auth.
        probe("GET", "/", [200, 200, 200, 200]),
        probe("GET", format!("/track/{a_code}"), [200, 200, 200, 200]),
        probe("GET", "/assets/app.js", [200, 200, 200, 200]),
        probe("GET", "/auth/session", [200, 200, 200, 200]),
        // Opening or closing a browser session needs the daemon's own
        // origin, which these probes do not claim.
        probe("POST", "/auth/session", [403, 403, 403, 403])
            .body(json!({"email": ALICE_EMAIL, "password": PASSWORD})),
        probe("DELETE", "/auth/session", [403, 403, 403, 403]),
    ];

    // Every method a route does not answer: 405 before any auth.
    let concrete = |route: Route| match route {
        Route::Product => format!("/api/products/{WIDGET}"),
        Route::Customer => format!("/api/customers/{alice_customer}"),
        Route::Order => format!("/api/orders/{a_id}"),
        Route::OrderStatus => format!("/api/orders/{a_id}/status"),
        Route::Track => format!("/api/track/{a_code}"),
        Route::Payment => format!("/api/payments/{payment_id}"),
        Route::OrderPayments => format!("/api/orders/{a_paid_id}/payments"),
        Route::NotificationRetry => format!("/api/notifications/{a_mail}/retry"),
        other => other.pattern().to_string(),
    };
    let with_body = |p: Probe| match p.method {
        "POST" | "PUT" | "PATCH" => p.body(json!({})),
        _ => p,
    };
    // HEAD is GET without the body: the same answer to every caller.
    let heads: Vec<Probe> = probes
        .iter()
        .filter(|p| p.method == "GET")
        .map(|p| Probe {
            method: "HEAD",
            path: p.path.clone(),
            bodies: [None, None, None, None],
            expect: p.expect,
        })
        .collect();
    probes.extend(heads);
    for route in Route::ALL {
        // OPTIONS says what the route answers, to anyone.
        probes.push(probe("OPTIONS", concrete(route), [204; 4]));
        for method in METHODS {
            if method != "OPTIONS" && !answers(route, method) {
                probes.push(with_body(probe(method, concrete(route), [405; 4])));
            }
        }
    }
    // Paths that are not routed at all.
    for path in UNROUTED {
        for method in METHODS {
            probes.push(with_body(probe(method, path, [404; 4])));
        }
    }

    // Every rule of the table, and every method on every route, is probed.
    let probed: HashSet<(&str, String)> = probes
        .iter()
        .filter_map(|p| {
            let path = p.path.split('?').next().unwrap();
            let matched = routes::match_path(path)?;
            Some((matched.route.pattern(), p.method.to_string()))
        })
        .collect();
    for route in Route::ALL {
        for method in METHODS {
            assert!(
                probed.contains(&(route.pattern(), method.to_string())),
                "{method} {} has no probe",
                route.pattern()
            );
        }
    }

    let expired = sign(&with(
        with(claims(&server.admin), "exp", json!(now_secs() - 120)),
        "iat",
        json!(now_secs() - 720),
    ));
    let wrong_key = sign_with(
        &alice_as_admin(&server),
        Algorithm::HS256,
        b"not-the-daemon-secret-but-long-enough-0123",
    );
    let alg_none = unsigned(&alice_as_admin(&server));
    let tokens = [
        None,
        Some(expired.as_str()),
        Some(wrong_key.as_str()),
        Some(alg_none.as_str()),
        Some(server.bob.token.as_str()),
        Some(server.alice.token.as_str()),
        Some(server.admin.token.as_str()),
    ];
    let mut tally = Tally::default();
    for p in &probes {
        for (who, token) in tokens.iter().enumerate() {
            let (Some(expected), body) = p.for_caller(who) else {
                continue;
            };
            let mut req = server.req(p.method, &p.path).maybe_token(*token);
            if let Some(body) = body {
                req = req.json(body);
            }
            let reply = req.send();
            tally.status(WHO[who], &reply, &[expected]);
            // A's password opens A's account; the OpenAPI document's
            // examples are static.
            let may_see_alice = who == CUSTOMER_A
                || who == ADMIN
                || p.path == "/auth/login"
                || p.path == "/api/openapi.json";
            if !may_see_alice {
                tally.leaks(WHO[who], &reply, &secrets, Some(&a_code));
            }
        }
    }

    // The refused requests changed nothing they should not have.
    let store = server.store();
    assert!(store.verify().unwrap().is_clean());
    let a_after = server
        .get(&format!("/api/orders/{a_id}"))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(a_after["status"], "CANCELLED");
    tally.finish("matrix", 500);
}

/// Records a manual payment of `amount` for `order` (as `oms payment
/// record` would, on a second connection); returns its id.
fn record_manual_payment(server: &Server, order: i64, amount: &str) -> i64 {
    server
        .store()
        .write(&oms_core::Actor::cli(), |tx| {
            tx.record_manual_payment(oms_core::OrderId(order), amount, None)
        })
        .expect("record a manual payment")
        .id
        .get()
}

/// The order ids a path segment may name, as the daemon parses them, with
/// who owns each real one.
fn owner_of(segment: &str, alice: &HashSet<i64>, bob: &HashSet<i64>) -> Option<char> {
    let id = segment.parse::<i64>().ok()?;
    if alice.contains(&id) {
        Some('A')
    } else if bob.contains(&id) {
        Some('B')
    } else {
        None
    }
}

/// Segments that name `id`, its neighbours, and ids that name nothing.
fn id_segments(ids: &[i64]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for &id in ids {
        for n in [id - 1, id, id + 1] {
            out.insert(n.to_string());
        }
        out.insert(format!("+{id}"));
        out.insert(format!("0{id}"));
        out.insert(format!("{id}.0"));
        out.insert(format!("{id}%20"));
        out.insert(format!("{id}x"));
    }
    for odd in [
        "0",
        "-0",
        "-1",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "99999999999999999999999999",
        "1e3",
        "0x1",
        "null",
    ] {
        out.insert(odd.to_string());
    }
    out
}

#[test]
fn customer_b_probing_a_finds_nothing() {
    let server = Server::start();
    let (alice, bob, admin) = (&server.alice, &server.bob, &server.admin);
    let alice_customer = alice.customer_id();
    let bob_customer = bob.customer_id();
    // Interleaved, so A's neighbours include B's orders.
    let a1 = server.place(alice, None, &[(WIDGET, 1)]);
    let b1 = server.place(bob, None, &[(WIDGET, 1)]);
    let a2 = server.place(alice, None, &[(GADGET, 1)]);
    let a3 = server.place(alice, None, &[(WIDGET, 2)]);
    let b2 = server.place(bob, None, &[(GADGET, 1)]);
    let a4 = server.place(admin, Some(alice_customer), &[(WIDGET, 3)]);
    // A's order history has status changes and a customer update too.
    server
        .put(&format!("/api/orders/{}/status", a2["id"]))
        .token(&alice.token)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);
    server
        .put(&format!("/api/orders/{}/status", a4["id"]))
        .token(&admin.token)
        .json(&json!({"status": "paid"}))
        .send()
        .expect_status(200);
    server
        .patch(&format!("/api/customers/{alice_customer}"))
        .token(&admin.token)
        .json(&json!({"phone": "+1 555 0100"}))
        .send()
        .expect_status(200);
    // A's order a3 is paid by a recorded payment.
    let a3_payment = record_manual_payment(&server, a3["id"].as_i64().unwrap(), "19.98");
    let a_orders = [&a1, &a2, &a3, &a4];
    let mut secrets = Secrets::of_alice(&server, &a_orders);
    secrets.payment_ids.insert(a3_payment);
    let a_ids: Vec<i64> = a_orders.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    let b_ids: HashSet<i64> = [&b1, &b2]
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    let alice_ids: HashSet<i64> = a_ids.iter().copied().collect();
    let admin_view = |id: i64| {
        server
            .get(&format!("/api/orders/{id}"))
            .token(&admin.token)
            .send()
            .json()
    };
    let before: Vec<Value> = a_ids.iter().map(|&id| admin_view(id)).collect();

    let mut tally = Tally::default();
    let b = "customer B";
    let check = |reply: Reply, expected: &[u16], tally: &mut Tally| {
        tally.status(b, &reply, expected);
        tally.leaks(b, &reply, &secrets, None);
    };

    // Every object path, with A's ids, their neighbours and odd ids.
    for segment in id_segments(&a_ids) {
        let owner = owner_of(&segment, &alice_ids, &b_ids);
        let own = owner == Some('B');
        let order = format!("/api/orders/{segment}");
        let status = format!("/api/orders/{segment}/status");
        check(
            server.get(&order).token(&bob.token).send(),
            if own { &[200] } else { &[404] },
            &mut tally,
        );
        check(
            server
                .get(&format!("{order}/payments"))
                .token(&bob.token)
                .send(),
            if own { &[200] } else { &[404] },
            &mut tally,
        );
        for method in ["PATCH", "DELETE"] {
            let mut req = server.req(method, &order).token(&bob.token);
            if method == "PATCH" {
                req = req.json(&json!({"items": [{"sku": WIDGET, "quantity": 5}]}));
            }
            check(req.send(), &[403], &mut tally);
        }
        // Paying is the admin's job: 403 for B's own order, 404 for
        // anything B may not see.
        check(
            server
                .put(&status)
                .token(&bob.token)
                .json(&json!({"status": "paid"}))
                .send(),
            if own { &[403] } else { &[404] },
            &mut tally,
        );
        for if_match in [None, Some("\"1\""), Some("*")] {
            let mut req = server.patch(&status).token(&bob.token);
            if let Some(v) = if_match {
                req = req.header("if-match", v);
            }
            // B may cancel its own order (again: a no-op, or 412 once its
            // version moved past "1").
            check(
                req.json(&json!({"status": "cancelled"})).send(),
                if own { &[200, 412] } else { &[404] },
                &mut tally,
            );
        }
    }
    // Payments are the admin's, whatever the id.
    for segment in id_segments(&[a3_payment]) {
        check(
            server
                .get(&format!("/api/payments/{segment}"))
                .token(&bob.token)
                .send(),
            &[403],
            &mut tally,
        );
    }
    for path in ["/api/payments", "/api/payments?order=1"] {
        check(
            server.get(path).token(&bob.token).send(),
            &[403],
            &mut tally,
        );
    }
    for segment in id_segments(&[alice_customer]) {
        let own = segment.parse::<i64>().ok() == Some(bob_customer);
        let path = format!("/api/customers/{segment}");
        check(
            server.get(&path).token(&bob.token).send(),
            if own { &[200] } else { &[404] },
            &mut tally,
        );
        check(
            server
                .patch(&path)
                .token(&bob.token)
                .json(&json!({"name": "Mallory"}))
                .send(),
            &[403],
            &mut tally,
        );
        check(
            server.delete(&path).token(&bob.token).send(),
            &[403],
            &mut tally,
        );
    }

    // The order list with every filter: B's orders only, or 403 for
    // naming anyone else.
    let lists: Vec<(String, u16)> = vec![
        ("/api/orders".into(), 200),
        ("/api/orders?limit=500".into(), 200),
        ("/api/orders?limit=1000000000".into(), 200),
        ("/api/orders?after=0".into(), 200),
        (format!("/api/orders?after={}", a_ids[0]), 200),
        ("/api/orders?after=-1".into(), 200),
        ("/api/orders?status=pending".into(), 200),
        ("/api/orders?status=paid".into(), 200),
        ("/api/orders?status=cancelled".into(), 200),
        ("/api/orders?q=alice".into(), 200),
        ("/api/orders?q=%25".into(), 200),
        (
            format!("/api/orders?q={}", a1["tracking_code"].as_str().unwrap()),
            200,
        ),
        ("/api/orders?since=2000-01-01&until=2999-01-01".into(), 200),
        (format!("/api/orders?customer={bob_customer}"), 200),
        (format!("/api/orders?customer={BOB_EMAIL}"), 200),
        (
            format!("/api/orders?customer={}", BOB_EMAIL.to_uppercase()),
            200,
        ),
        (format!("/api/orders?customer={alice_customer}"), 403),
        (format!("/api/orders?customer={ALICE_EMAIL}"), 403),
        (
            format!("/api/orders?customer={}", ALICE_EMAIL.to_uppercase()),
            403,
        ),
        ("/api/orders?customer=nobody@example.com".into(), 403),
        (
            format!("/api/orders?customer={}", server.spare_customer_id),
            403,
        ),
        ("/api/orders?customer=0".into(), 400),
        (
            format!("/api/orders?customer={bob_customer}&customer={alice_customer}"),
            403,
        ),
        (
            format!("/api/orders?customer={alice_customer}&customer={bob_customer}"),
            200,
        ),
    ];
    for (path, expected) in &lists {
        let reply = server.get(path).token(&bob.token).send();
        if reply.status == 200 {
            for item in reply.json()["items"].as_array().unwrap() {
                if item["customer_id"] != bob_customer {
                    tally
                        .leaks
                        .push(format!("{path}: an order of another customer: {item}"));
                }
            }
        }
        check(reply, &[*expected], &mut tally);
    }

    // The export is the admin's: B gets 403 and no CSV whatever it asks.
    for query in [
        String::new(),
        "?by_order=true".into(),
        format!("?customer={alice_customer}"),
        format!("?customer={bob_customer}"),
        format!("?customer={ALICE_EMAIL}&by_order=1"),
        "?limit=1000000000".into(),
    ] {
        let path = format!("/api/orders/export.csv{query}");
        let reply = server.get(&path).token(&bob.token).send();
        if reply.body.contains("order_id,") {
            tally.leaks.push(format!("{path}: B got a CSV export"));
        }
        check(reply, &[403], &mut tally);
    }
    // The admin's export of B's orders has no row of A's.
    for query in [
        format!("?customer={bob_customer}"),
        format!("?customer={BOB_EMAIL}&by_order=true"),
    ] {
        let path = format!("/api/orders/export.csv{query}");
        let reply = server.get(&path).token(&admin.token).send();
        tally.status("admin", &reply, &[200]);
        let mut rows = reply.body.lines().skip(1).filter(|l| !l.is_empty());
        if let Some(row) = rows.find(|row| !row.contains(BOB_EMAIL)) {
            tally.leaks.push(format!("{path}: a row not of B's: {row}"));
        }
        tally.leaks("admin exporting B", &reply, &secrets, None);
    }

    // The change feed: from anywhere, in pages of any size, nothing of A's
    // and nothing not about B.
    let last = server.last_seq();
    let mut afters: BTreeSet<String> = [
        "0",
        "-1",
        "1",
        "-9223372036854775808",
        "9223372036854775807",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for seq in 0..=last + 1 {
        afters.insert(seq.to_string());
    }
    let mut seen = BTreeSet::new();
    for after in &afters {
        for limit in ["1", "3", "1000", "1000000000"] {
            let path = format!("/api/changes?after={after}&limit={limit}");
            let reply = server.get(&path).token(&bob.token).send();
            if reply.status == 200 {
                for change in reply.json()["changes"].as_array().unwrap() {
                    seen.insert(change["seq"].as_i64().unwrap());
                    if !about_bob(change, &b_ids, bob_customer, bob.user.id.get()) {
                        tally
                            .leaks
                            .push(format!("{path}: a change not about B: {change}"));
                    }
                }
            }
            check(reply, &[200], &mut tally);
        }
    }
    for bad in [
        "/api/changes?after=abc",
        "/api/changes?limit=-5",
        "/api/changes?wait=61",
    ] {
        check(server.get(bad).token(&bob.token).send(), &[400], &mut tally);
    }
    assert!(!seen.is_empty(), "B sees its own changes");

    // Nothing B sent changed any of A's orders.
    for (id, was) in a_ids.iter().zip(&before) {
        let now = admin_view(*id);
        if now != *was {
            tally
                .mismatches
                .push(format!("A's order {id} changed: {was} -> {now}"));
        }
    }

    // A long-poll woken by A's commit answers B from memory: it must still
    // hold only B's changes.
    let last = server.last_seq();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            server
                .get(&format!("/api/changes?after={last}&wait=20"))
                .token(&bob.token)
                .send()
        });
        server.wait_for_waiters(1);
        server.place(alice, None, &[(WIDGET, 1)]);
        server
            .put(&format!("/api/orders/{}/status", a3["id"]))
            .token(&admin.token)
            .json(&json!({"status": "paid"}))
            .send()
            .expect_status(200);
        // B's own commit ends the wait.
        server.place(bob, None, &[(WIDGET, 1)]);
        let reply = waiting.join().unwrap();
        let changes = reply.json()["changes"].as_array().unwrap().clone();
        if changes.is_empty() {
            tally
                .mismatches
                .push("B's long-poll was not woken by B's own order".into());
        }
        for change in &changes {
            if change["entity"] != "order" || change["data"]["customer_id"] != bob_customer {
                tally
                    .leaks
                    .push(format!("long-poll: a change not about B: {change}"));
            }
        }
        check(reply, &[200], &mut tally);
    });

    // Public tracking shows A's order's status, nothing personal.
    for order in &a_orders {
        let code = order["tracking_code"].as_str().unwrap();
        let reply = server
            .get(&format!("/api/track/{code}"))
            .token(&bob.token)
            .send();
        let keys: BTreeSet<String> = reply
            .json()
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        if keys
            != ["created_at", "status", "tracking_code", "updated_at"]
                .map(String::from)
                .into()
        {
            tally.leaks.push(format!("tracking shows {keys:?}"));
        }
        tally.status(b, &reply, &[200]);
        tally.leaks(b, &reply, &secrets, Some(code));
    }

    // The refusals look like "not found".
    let foreign = server
        .get(&format!("/api/orders/{}", a_ids[0]))
        .token(&bob.token)
        .send();
    let missing = server.get("/api/orders/999999").token(&bob.token).send();
    if foreign.status == 404 {
        assert_eq!(
            foreign.json()["title"],
            missing.problem(404)["title"],
            "another customer's order answers like a missing one"
        );
    }
    assert!(server.store().verify().unwrap().is_clean());
    tally.finish("b-probes-a", 300);
}

/// Whether a change is about customer B: its orders, its record, its user.
fn about_bob(change: &Value, orders: &HashSet<i64>, customer: i64, user: i64) -> bool {
    let id = change["entity_id"].as_i64().unwrap_or(-1);
    match change["entity"].as_str() {
        Some("order") => orders.contains(&id) || change["data"]["customer_id"] == customer,
        Some("customer") => id == customer,
        Some("user") => id == user,
        _ => false,
    }
}

#[test]
fn customer_cancels_its_own_pending_order_only() {
    let server = Server::start();
    let alice = &server.alice.token;
    let admin = &server.admin.token;
    let status = |order: &Value| format!("/api/orders/{}/status", order["id"]);

    // Not pay, not fulfil: that is the admin's job (wrong role, 403).
    let pending = server.place(&server.alice, None, &[(GADGET, 2)]);
    for to in ["paid", "fulfilled", "PENDING"] {
        server
            .put(&status(&pending))
            .token(alice)
            .json(&json!({"status": to}))
            .send()
            .problem(403);
    }
    // Cancel: yes, with its stock released; again is a no-op.
    let reply = server
        .patch(&status(&pending))
        .token(alice)
        .header("if-match", "\"1\"")
        .json(&json!({"status": "cancelled"}))
        .send();
    reply.expect_status(200);
    assert_eq!(reply.json()["status"], "CANCELLED");
    let gadget = server
        .get(&format!("/api/products/{GADGET}"))
        .token(alice)
        .send()
        .json();
    assert_eq!(gadget["stock_reserved"], 0);
    server
        .put(&status(&pending))
        .token(alice)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);

    // A PAID order is past the customer's reach.
    let paid = server.place(&server.alice, None, &[(WIDGET, 1)]);
    server
        .put(&status(&paid))
        .token(admin)
        .json(&json!({"status": "paid"}))
        .send()
        .expect_status(200);
    server
        .put(&status(&paid))
        .token(alice)
        .json(&json!({"status": "cancelled"}))
        .send()
        .problem(409);
    // Nor may it edit or delete its orders.
    let open = server.place(&server.alice, None, &[(WIDGET, 1)]);
    server
        .patch(&format!("/api/orders/{}", open["id"]))
        .token(alice)
        .json(&json!({"items": [{"sku": WIDGET, "quantity": 9}]}))
        .send()
        .problem(403);
    server
        .delete(&format!("/api/orders/{}", open["id"]))
        .token(alice)
        .send()
        .problem(403);

    // Bob can change none of Alice's orders.
    for order in [&open, &paid] {
        for to in ["cancelled", "paid", "fulfilled"] {
            server
                .put(&status(order))
                .token(&server.bob.token)
                .json(&json!({"status": to}))
                .send();
        }
    }
    let open_after = server
        .get(&format!("/api/orders/{}", open["id"]))
        .token(admin)
        .send()
        .json();
    assert_eq!(open_after["status"], "PENDING");
    assert_eq!(open_after["version"], 1);
    let paid_after = server
        .get(&format!("/api/orders/{}", paid["id"]))
        .token(admin)
        .send()
        .json();
    assert_eq!(paid_after["status"], "PAID");
    server
        .put(&status(&open))
        .token(&server.bob.token)
        .json(&json!({"status": "cancelled"}))
        .send()
        .problem(404);
    assert!(server.store().verify().unwrap().is_clean());
}
