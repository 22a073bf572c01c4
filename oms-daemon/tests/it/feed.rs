//! The long-poll change feed: answers at once when there is news, waits
//! otherwise, is woken by the daemon's own writes and by other processes'
//! writes to the same file, never skips a change, and shows a customer only
//! its own orders.

use std::time::{Duration, Instant};

use oms_core::{Actor, ProductRef, Restock};
use serde_json::Value;

use crate::support::{GADGET, Server, WIDGET};

/// `GET /api/changes` as `token`; the answer and how long it took.
fn poll(server: &Server, token: &str, after: i64, wait: u64) -> (Value, Duration) {
    let started = Instant::now();
    let reply = server
        .get(&format!("/api/changes?after={after}&wait={wait}"))
        .token(token)
        .send();
    reply.expect_status(200);
    (reply.json(), started.elapsed())
}

fn changes(body: &Value) -> &Vec<Value> {
    body["changes"].as_array().expect("changes array")
}

#[test]
fn answers_at_once_when_newer_changes_exist() {
    let server = Server::start();
    let last = server.last_seq();
    assert!(last > 0, "the seed logged changes");
    let (body, took) = poll(&server, &server.admin.token, 0, 2);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(changes(&body).len() as i64, last);
    assert_eq!(body["next"], last);
    let (body, took) = poll(&server, &server.admin.token, last - 1, 2);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(changes(&body).len(), 1);
}

#[test]
fn with_nothing_new_it_waits_then_answers_empty() {
    let server = Server::start();
    let last = server.last_seq();
    let (body, took) = poll(&server, &server.admin.token, last, 1);
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    assert!(changes(&body).is_empty());
    assert_eq!(body["next"], last);
    // wait=0 (the default) answers at once.
    let (body, took) = poll(&server, &server.admin.token, last, 0);
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert!(changes(&body).is_empty());
    assert_eq!(body["next"], last);
}

#[test]
fn a_waiter_is_woken_by_an_http_write() {
    let server = Server::start();
    let last = server.last_seq();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| poll(&server, &server.admin.token, last, 2));
        server.wait_for_waiters(1);
        let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
        let (body, took) = waiter.join().expect("waiter");
        assert!(
            took < Duration::from_millis(1500),
            "woken only after {took:?}"
        );
        let changes = changes(&body);
        assert_eq!(changes[0]["seq"], last + 1);
        assert!(
            changes
                .iter()
                .any(|c| c["type"] == "order.placed" && c["entity_id"] == order["id"]),
            "{body}"
        );
        assert_eq!(body["next"], changes.last().unwrap()["seq"]);
    });
}

#[test]
fn a_waiter_is_woken_by_another_connection() {
    let server = Server::start();
    let last = server.last_seq();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| poll(&server, &server.admin.token, last, 2));
        server.wait_for_waiters(1);
        // Another process (here, another connection) restocks.
        let other = server.store();
        other
            .write(&Actor::cli(), |tx| {
                tx.restock(&ProductRef::parse(GADGET)?, Restock::Add(5))
            })
            .expect("restock through another connection");
        let (body, took) = waiter.join().expect("waiter");
        assert!(
            took < Duration::from_millis(1500),
            "woken only after {took:?}"
        );
        let changes = changes(&body);
        assert!(!changes.is_empty(), "{body}");
        assert_eq!(changes[0]["seq"], last + 1);
        assert_eq!(changes[0]["entity"], "product");
        assert_eq!(changes[0]["actor"], "cli");
    });
    let gadget = server
        .get(&format!("/api/products/{GADGET}"))
        .token(&server.alice.token)
        .send()
        .json();
    assert_eq!(gadget["stock_on_hand"], 15);
}

#[test]
fn a_customer_feed_shows_only_its_own_orders() {
    let server = Server::start();
    let alice = &server.alice.token;
    let start = server.last_seq();
    std::thread::scope(|scope| {
        // Alice waits; Bob's order and a catalogue change do not concern her.
        let waiter = scope.spawn(|| poll(&server, alice, start, 1));
        server.wait_for_waiters(1);
        server.place(&server.bob, None, &[(WIDGET, 1)]);
        server.add_product("NEW-THING", "3.00", 3);
        let (body, took) = waiter.join().expect("waiter");
        assert!(changes(&body).is_empty(), "Alice saw {body}");
        assert_eq!(body["next"], start);
        assert!(
            took >= Duration::from_millis(900),
            "answered after {took:?}"
        );
    });
    let own = server.place(&server.alice, None, &[(GADGET, 1)]);
    let (body, _) = poll(&server, alice, start, 1);
    let changes = changes(&body);
    assert_eq!(changes.len(), 1, "{body}");
    assert_eq!(changes[0]["type"], "order.placed");
    assert_eq!(changes[0]["entity_id"], own["id"]);
    assert_eq!(
        changes[0]["data"]["customer_id"],
        server.alice.customer_id()
    );
    // From the start, every change Alice sees is about herself.
    let (body, _) = poll(&server, alice, 0, 0);
    for change in body["changes"].as_array().unwrap() {
        let mine = match change["entity"].as_str().unwrap() {
            "order" => change["entity_id"] == own["id"],
            "customer" => change["entity_id"] == server.alice.customer_id(),
            "user" => change["entity_id"] == server.alice.user.id.get(),
            _ => false,
        };
        assert!(mine, "Alice sees {change}");
    }
}

#[test]
fn a_follower_sees_every_change_exactly_once() {
    let server = Server::start();
    let start = server.last_seq();
    const WRITERS: usize = 3;
    const ORDERS_EACH: usize = 8;
    let mut seen: Vec<i64> = Vec::new();
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let server = &server;
                scope.spawn(move || {
                    for _ in 0..ORDERS_EACH {
                        server.place(&server.alice, None, &[(WIDGET, 1)]);
                    }
                })
            })
            .collect();
        let expected_last = start + (WRITERS * ORDERS_EACH) as i64;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut after = start;
        while after < expected_last {
            assert!(Instant::now() < deadline, "follower stuck at {after}");
            let reply = server
                .get(&format!("/api/changes?after={after}&limit=5&wait=1"))
                .token(&server.admin.token)
                .send();
            reply.expect_status(200);
            let body = reply.json();
            for change in changes(&body) {
                seen.push(change["seq"].as_i64().unwrap());
            }
            after = body["next"].as_i64().unwrap();
        }
        for writer in writers {
            writer.join().expect("writer");
        }
    });
    let expected: Vec<i64> = (start + 1..=start + (WRITERS * ORDERS_EACH) as i64).collect();
    assert_eq!(seen, expected);
}
