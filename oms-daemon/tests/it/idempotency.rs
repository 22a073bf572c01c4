//! `Idempotency-Key` on `POST /api/orders`: replays, reuse with another
//! body, per-user scope, and a burst of identical requests at once.

use oms_core::prelude::*;
use std::sync::{Arc, Barrier};

use oms_core::{CustomerId, CustomerRef, OrderFilter};
use serde_json::json;

use crate::support::{GADGET, Server, WIDGET, order_body};

fn orders_of(server: &Server, customer: i64) -> Vec<oms_core::Order> {
    server
        .store()
        .orders(&OrderFilter {
            customer: Some(CustomerRef::Id(CustomerId(customer))),
            ..OrderFilter::default()
        })
        .expect("list orders")
}

fn reserved(server: &Server, sku: &str) -> i64 {
    server
        .get(&format!("/api/products/{sku}"))
        .token(&server.admin.token)
        .send()
        .json()["stock_reserved"]
        .as_i64()
        .expect("stock_reserved")
}

#[test]
fn a_replay_answers_the_first_order_and_writes_nothing() {
    let server = Server::start();
    let body = order_body(None, &[(WIDGET, 2), (GADGET, 1)]);
    let first = server
        .post("/api/orders")
        .token(&server.alice.token)
        .header("idempotency-key", "order-42")
        .json(&body)
        .send();
    first.expect_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let order = first.json();
    assert_eq!(order["idempotency_key"], "order-42");
    let seq_after_first = server.last_seq();

    let replay = server
        .post("/api/orders")
        .token(&server.alice.token)
        .header("idempotency-key", "order-42")
        .json(&body)
        .send();
    replay.expect_status(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.json()["id"], order["id"]);
    assert_eq!(replay.json(), order);
    assert_eq!(replay.header("location"), first.header("location"));

    assert_eq!(orders_of(&server, server.alice.customer_id()).len(), 1);
    assert_eq!(reserved(&server, WIDGET), 2);
    assert_eq!(reserved(&server, GADGET), 1);
    assert_eq!(server.last_seq(), seq_after_first, "a replay logs nothing");
}

#[test]
fn the_same_key_with_another_body_is_422() {
    let server = Server::start();
    let key = "reuse-me";
    server
        .post("/api/orders")
        .token(&server.alice.token)
        .header("idempotency-key", key)
        .json(&order_body(None, &[(WIDGET, 1)]))
        .send()
        .expect_status(201);
    let seq = server.last_seq();
    for other in [
        order_body(None, &[(WIDGET, 2)]),
        order_body(None, &[(GADGET, 1)]),
        order_body(None, &[(WIDGET, 1), (GADGET, 1)]),
    ] {
        server
            .post("/api/orders")
            .token(&server.alice.token)
            .header("idempotency-key", key)
            .json(&other)
            .send()
            .problem(422);
    }
    assert_eq!(server.last_seq(), seq);
    assert_eq!(orders_of(&server, server.alice.customer_id()).len(), 1);
    assert_eq!(reserved(&server, WIDGET), 1);
    assert_eq!(reserved(&server, GADGET), 0);
}

#[test]
fn keys_are_scoped_per_user() {
    let server = Server::start();
    let body = order_body(None, &[(WIDGET, 1)]);
    let place = |token: &str| {
        let reply = server
            .post("/api/orders")
            .token(token)
            .header("idempotency-key", "shared-key")
            .json(&body)
            .send();
        reply.expect_status(201);
        (reply.json(), reply.header("idempotent-replayed").is_some())
    };
    let (alice, replayed) = place(&server.alice.token);
    assert!(!replayed);
    let (bob, replayed) = place(&server.bob.token);
    assert!(!replayed, "Bob's first use of the key is not Alice's order");
    assert_ne!(alice["id"], bob["id"]);
    assert_eq!(bob["customer_id"], server.bob.customer_id());
    // The admin's use of the key for Alice is its own too.
    let admin = server
        .post("/api/orders")
        .token(&server.admin.token)
        .header("idempotency-key", "shared-key")
        .json(&order_body(
            Some(server.alice.customer_id()),
            &[(WIDGET, 1)],
        ))
        .send();
    admin.expect_status(201);
    assert_eq!(admin.header("idempotent-replayed"), None);
    assert_eq!(reserved(&server, WIDGET), 3);
}

#[test]
fn malformed_keys_are_400() {
    let server = Server::start();
    let long = "k".repeat(256);
    server
        .post("/api/orders")
        .token(&server.alice.token)
        .header("idempotency-key", &long)
        .json(&order_body(None, &[(WIDGET, 1)]))
        .send()
        .problem(400);
    assert_eq!(reserved(&server, WIDGET), 0);
}

#[test]
fn a_burst_of_identical_requests_places_one_order() {
    let server = Server::start();
    const CLIENTS: usize = 20;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let body = order_body(None, &[(GADGET, 1)]);
    let replies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let server = &server;
                let body = &body;
                scope.spawn(move || {
                    barrier.wait();
                    let reply = server
                        .post("/api/orders")
                        .token(&server.alice.token)
                        .header("idempotency-key", "burst")
                        .json(body)
                        .send();
                    let id = (reply.status == 201).then(|| reply.json()["id"].clone());
                    (reply.status, id, reply.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect::<Vec<_>>()
    });
    let created: Vec<_> = replies.iter().filter(|r| r.0 == 201).collect();
    assert!(!created.is_empty(), "no request succeeded: {replies:?}");
    for (status, _, body) in &replies {
        assert!(
            *status == 201 || *status == 409,
            "unexpected {status}: {body}"
        );
    }
    let first_id = created[0].1.clone();
    assert!(
        created.iter().all(|r| r.1 == first_id),
        "every success is the same order: {replies:?}"
    );
    let orders = orders_of(&server, server.alice.customer_id());
    assert_eq!(orders.len(), 1, "exactly one order placed");
    assert_eq!(json!(orders[0].id), first_id.unwrap());
    assert_eq!(reserved(&server, GADGET), 1);
    assert!(server.store().verify().unwrap().is_clean());
}
