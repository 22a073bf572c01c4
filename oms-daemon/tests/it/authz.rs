//! The authorization matrix: anonymous, customer B, customer A and the
//! admin against every (route, method) of `routes::RULES` and a few
//! unrouted methods. B probes A's real order, customer record and changes.

use std::collections::HashSet;

use oms_daemon::routes::{self, RULES};
use serde_json::{Value, json};

use crate::support::{ALICE_EMAIL, GADGET, PASSWORD, Server, WIDGET, order_body};

const WHO: [&str; 4] = ["anonymous", "customer B", "customer A", "admin"];

/// One request sent by each of [`WHO`] in turn (so a refusal is checked
/// before the admin's success changes anything); `None` skips a caller.
struct Probe {
    method: &'static str,
    path: String,
    bodies: [Option<Value>; 4],
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

    /// A body per caller.
    fn bodies(mut self, f: impl Fn(usize) -> Value) -> Probe {
        self.bodies = [Some(f(0)), Some(f(1)), Some(f(2)), Some(f(3))];
        self
    }
}

#[test]
fn authorization_matrix_matches_the_contract() {
    let server = Server::start();
    let alice_customer = server.alice.customer_id();
    let spare = server.spare_customer_id;
    server.add_product("DEL-ME", "1.00", 1);
    // A's orders: one to read, edit and cancel, one to delete, one to pay.
    let a_order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let a_delete = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let a_pay = server.place(&server.alice, None, &[(GADGET, 1)]);
    let a_id = a_order["id"].as_i64().unwrap();
    let a_code = a_order["tracking_code"].as_str().unwrap().to_string();

    let one_widget = json!({"items": [{"sku": WIDGET, "quantity": 1}]});
    let probes = vec![
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
        // Paths that exist, methods that do not: 405 before any auth.
        probe("POST", "/healthz", [405, 405, 405, 405]).body(json!({})),
        probe("DELETE", "/api/orders", [405, 405, 405, 405]),
        probe("PUT", format!("/api/orders/{a_id}"), [405, 405, 405, 405]).body(one_widget),
        probe("POST", "/api/orders/export.csv", [405, 405, 405, 405]).body(json!({})),
        probe("GET", "/auth/login", [405, 405, 405, 405]),
        probe("DELETE", "/api/changes", [405, 405, 405, 405]),
        probe("GET", format!("/api/orders/{a_id}/status"), [405, 405, 405, 405]),
    ];

    // Every rule of the table is probed.
    let probed: HashSet<(&str, String)> = probes
        .iter()
        .map(|p| {
            let path = p.path.split('?').next().unwrap();
            let matched = routes::match_path(path).unwrap_or_else(|| panic!("{path} is routed"));
            (matched.route.pattern(), p.method.to_string())
        })
        .collect();
    for (route, method, _) in RULES {
        assert!(
            probed.contains(&(route.pattern(), method.as_str().to_string())),
            "{method} {} has no probe",
            route.pattern()
        );
    }

    let tokens = [
        None,
        Some(server.bob.token.as_str()),
        Some(server.alice.token.as_str()),
        Some(server.admin.token.as_str()),
    ];
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for p in &probes {
        for who in 0..4 {
            let Some(expected) = p.expect[who] else {
                continue;
            };
            let mut req = server.req(p.method, &p.path).maybe_token(tokens[who]);
            if let Some(body) = &p.bodies[who] {
                req = req.json(body);
            }
            let reply = req.send();
            checked += 1;
            if reply.status != expected {
                mismatches.push(format!(
                    "{} {} as {}: expected {expected}, got {}: {}",
                    p.method, p.path, WHO[who], reply.status, reply.body
                ));
                continue;
            }
            if expected >= 400 {
                reply.problem(expected);
            }
            if expected == 405 {
                assert!(
                    reply.header("allow").is_some_and(|a| !a.is_empty()),
                    "{} {}: 405 without Allow",
                    p.method,
                    p.path
                );
            }
        }
    }
    assert!(checked > 100, "only {checked} requests checked");
    assert!(
        mismatches.is_empty(),
        "{} of {checked} authorization checks failed:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // The refused requests changed nothing they should not have.
    let store = server.store();
    assert!(store.verify().unwrap().is_clean());
    let a_after = server
        .get(&format!("/api/orders/{a_id}"))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(a_after["status"], "CANCELLED");
}

#[test]
fn another_customers_order_is_404_everywhere() {
    let server = Server::start();
    let order = server.place(&server.alice, None, &[(WIDGET, 2)]);
    let id = order["id"].as_i64().unwrap();
    let code = order["tracking_code"].as_str().unwrap();
    let bob = &server.bob.token;

    let probes = [
        server.get(&format!("/api/orders/{id}")).token(bob).send(),
        server
            .put(&format!("/api/orders/{id}/status"))
            .token(bob)
            .json(&json!({"status": "cancelled"}))
            .send(),
        server
            .patch(&format!("/api/orders/{id}/status"))
            .token(bob)
            .header("if-match", "\"1\"")
            .json(&json!({"status": "cancelled"}))
            .send(),
        server
            .get(&format!("/api/customers/{}", server.alice.customer_id()))
            .token(bob)
            .send(),
    ];
    for reply in &probes {
        reply.problem(404);
        assert!(!reply.body.contains(code), "{}", reply.body);
        assert!(!reply.body.contains(ALICE_EMAIL), "{}", reply.body);
    }
    // An order of another customer answers like one that does not exist.
    let missing = server.get("/api/orders/999999").token(bob).send();
    assert_eq!(
        probes[0].json()["title"],
        missing.problem(404)["title"],
        "same kind of answer"
    );
    // Bob's list and export attempts see nothing of Alice's.
    let list = server.get("/api/orders").token(bob).send();
    list.expect_status(200);
    assert_eq!(list.json()["items"], json!([]));
    server
        .get("/api/orders/export.csv")
        .token(bob)
        .send()
        .problem(403);
    // And Alice's order is untouched.
    let after = server
        .get(&format!("/api/orders/{id}"))
        .token(&server.alice.token)
        .send()
        .json();
    assert_eq!(after, order);
}

#[test]
fn customer_b_sees_none_of_a_changes() {
    let server = Server::start();
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    server
        .put(&format!("/api/orders/{}/status", order["id"]))
        .token(&server.alice.token)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);
    let reply = server
        .get("/api/changes?after=0")
        .token(&server.bob.token)
        .send();
    reply.expect_status(200);
    let body = reply.json();
    for change in body["changes"].as_array().unwrap() {
        let about_alice = (change["entity"] == "order" && change["entity_id"] == order["id"])
            || (change["entity"] == "customer"
                && change["entity_id"] == server.alice.customer_id());
        assert!(!about_alice, "B sees A's change {change}");
        assert_ne!(change["entity"], "product", "B sees catalogue changes");
    }
    assert!(!reply.body.contains(ALICE_EMAIL), "{}", reply.body);
    assert!(
        !reply
            .body
            .contains(order["tracking_code"].as_str().unwrap())
    );
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
