//! The Razorpay webhook (DESIGN §7) against the stored state, and the
//! payment endpoints.
//!
//! Every delivery of the corpus is checked by what it left in the
//! database afterwards: the payments, the order's status and
//! `payment_collected`, the stock and the change log. "Nothing written"
//! means all of them are exactly as before.

use oms_core::prelude::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{GADGET, Reply, Server, WIDGET};

const SECRET: &str = "whsec_current_0123456789abcdef";
const PREVIOUS: &str = "whsec_previous_fedcba9876543210";

/// A daemon with the current and the previous webhook secret.
fn server() -> Server {
    Server::start_with(|c| {
        c.webhook_secret = Some(SECRET.into());
        c.webhook_secret_previous = Some(PREVIOUS.into());
    })
}

/// WIDGET costs 9.99 (USD): the total of a one-widget order in cents.
const WIDGET_CENTS: i64 = 999;

/// A Razorpay payment entity as the provider sends it (about 1 KiB with
/// its envelope), for `order` and `amount` cents.
fn payment_entity(pay_id: &str, status: &str, notes: Value, amount: i64) -> Value {
    json!({
        "id": pay_id,
        "entity": "payment",
        "amount": amount,
        "currency": "USD",
        "status": status,
        "order_id": "order_DBJOWzybf0sJbb",
        "invoice_id": null,
        "international": false,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": status == "captured",
        "description": "Order from the storefront",
        "card_id": "card_DBJOWzyba0sJbb",
        "bank": null,
        "wallet": null,
        "vpa": null,
        "email": "gaurav.kumar@example.com",
        "contact": "+919876543210",
        "notes": notes,
        "fee": 24,
        "tax": 4,
        "error_code": if status == "failed" { json!("BAD_REQUEST_ERROR") } else { Value::Null },
        "error_description": if status == "failed" { json!("Payment processing failed") } else { Value::Null },
        "acquirer_data": {"auth_code": "828553"},
        "created_at": 1_700_000_000
    })
}

fn envelope(event: &str, contains: &[&str], payload: Value) -> Value {
    json!({
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": event,
        "contains": contains,
        "payload": payload,
        "created_at": 1_700_000_000
    })
}

/// `payment.captured` (or `.failed`) of `pay_id` for `order`.
fn payment_event(event: &str, pay_id: &str, order: i64, amount: i64) -> Value {
    let status = if event == "payment.failed" {
        "failed"
    } else {
        "captured"
    };
    envelope(
        event,
        &["payment"],
        json!({"payment": {"entity": payment_entity(pay_id, status, json!({"order_id": order.to_string()}), amount)}}),
    )
}

fn captured(pay_id: &str, order: i64, amount: i64) -> Value {
    payment_event("payment.captured", pay_id, order, amount)
}

/// `order.paid`: the order id only in the order entity's receipt.
fn order_paid(pay_id: &str, order: i64, amount: i64) -> Value {
    envelope(
        "order.paid",
        &["payment", "order"],
        json!({
            "payment": {"entity": payment_entity(pay_id, "captured", json!([]), amount)},
            "order": {"entity": {"id": "order_DBJOWzybf0sJbb", "entity": "order", "amount": amount,
                                 "amount_paid": amount, "currency": "USD", "receipt": order.to_string(),
                                 "notes": [], "status": "paid"}}
        }),
    )
}

fn refund_event(refund_id: &str, pay_id: &str, amount: i64) -> Value {
    envelope(
        "refund.processed",
        &["refund", "payment"],
        json!({"refund": {"entity": {"id": refund_id, "entity": "refund", "amount": amount,
                                     "currency": "USD", "payment_id": pay_id, "notes": [],
                                     "status": "processed", "created_at": 1_700_000_100}}}),
    )
}

fn sign(secret: &str, body: &[u8]) -> String {
    oms_daemon::webhook::sign(secret, body)
}

/// POSTs raw `body` with the given signature and event id headers.
fn post_raw(
    server: &Server,
    body: &[u8],
    signature: Option<&str>,
    event_id: Option<&str>,
) -> Reply {
    let mut req = server
        .post("/api/payments/webhook")
        .header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("x-razorpay-signature", s);
    }
    if let Some(id) = event_id {
        req = req.header("x-razorpay-event-id", id);
    }
    req.raw(body.to_vec()).send()
}

/// Delivers `event` signed with the current secret; returns the answer.
fn deliver(server: &Server, event_id: &str, event: &Value) -> Reply {
    let body = serde_json::to_vec(event).expect("encode");
    post_raw(server, &body, Some(&sign(SECRET, &body)), Some(event_id))
}

/// Delivers and expects 200 with `status`; returns the answer's JSON.
fn expect(server: &Server, event_id: &str, event: &Value, status: &str) -> Value {
    let reply = deliver(server, event_id, event);
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(body["status"], status, "{event_id}: {body}");
    body
}

/// Everything a delivery may change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    payments: Vec<Value>,
    orders: Vec<Value>,
    products: Vec<Value>,
    last_seq: i64,
}

fn snapshot(server: &Server) -> Snapshot {
    let admin = &server.admin.token;
    let items = |path: &str| -> Vec<Value> {
        let reply = server.get(path).token(admin).send();
        reply.expect_status(200);
        reply.json()["items"].as_array().expect("items").clone()
    };
    Snapshot {
        payments: items("/api/payments?limit=500"),
        orders: items("/api/orders?limit=500"),
        products: items("/api/products?limit=500"),
        last_seq: server.last_seq(),
    }
}

fn order(server: &Server, id: i64) -> Value {
    server
        .get(&format!("/api/orders/{id}"))
        .token(&server.admin.token)
        .send()
        .json()
}

fn payments(server: &Server) -> Vec<Value> {
    snapshot(server).payments
}

/// A PENDING one-widget order of Alice; its id.
fn pending(server: &Server) -> i64 {
    server.place(&server.alice, None, &[(WIDGET, 1)])["id"]
        .as_i64()
        .expect("order id")
}

/// The `order.status_changed` rows of `order` that moved it to PAID.
fn paid_changes(server: &Server, order: i64) -> usize {
    server
        .store()
        .changes_after(oms_core::Seq(0), 100_000, None)
        .expect("changes")
        .iter()
        .filter(|c| {
            c.kind == "order.status_changed" && c.entity_id == order && c.data["to"] == "PAID"
        })
        .count()
}

fn change_kinds(server: &Server, after: i64) -> Vec<String> {
    server
        .store()
        .changes_after(oms_core::Seq(after), 1000, None)
        .expect("changes")
        .into_iter()
        .map(|c| c.kind)
        .collect()
}

#[test]
fn a_valid_capture_pays_the_order_once_durably() {
    let server = server();
    let id = pending(&server);
    let before = server.last_seq();
    let answer = expect(
        &server,
        "evt_1",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(answer["outcome"], "applied");
    let paid = order(&server, id);
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["payment_collected"], true);
    let all = payments(&server);
    assert_eq!(all.len(), 1);
    let p = &all[0];
    assert_eq!(p["id"], answer["payment_id"]);
    assert_eq!(
        (
            &p["order_id"],
            &p["provider"],
            &p["provider_payment_id"],
            &p["event_id"]
        ),
        (
            &json!(id),
            &json!("razorpay"),
            &json!("pay_1"),
            &json!("evt_1")
        )
    );
    assert_eq!(
        (&p["amount"], &p["currency"]),
        (&json!("9.99"), &json!("USD"))
    );
    assert_eq!(
        (&p["status"], &p["outcome"]),
        (&json!("captured"), &json!("applied"))
    );
    assert_eq!(p["refunded_amount"], "0.00");
    assert_eq!(
        change_kinds(&server, before),
        ["payment.received", "order.status_changed"]
    );
    assert_eq!(paid_changes(&server, id), 1);
    // Stock is as placement left it: reserved, not shipped.
    let widget = server
        .get(&format!("/api/products/{WIDGET}"))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(
        (&widget["stock_on_hand"], &widget["stock_reserved"]),
        (&json!(100), &json!(1))
    );
    // The answer came after the commit: a second connection sees it.
    let stored = server
        .store()
        .payment(oms_core::PaymentId(p["id"].as_i64().unwrap()))
        .unwrap();
    assert_eq!(stored.outcome, oms_core::payment::PaymentOutcome::Applied);
    assert!(server.store().verify().unwrap().is_clean());
    // Counted by event and outcome.
    let text = server.get("/metrics").send().body;
    assert!(
        text.contains(
            r#"oms_webhook_deliveries_total{event="payment.captured",outcome="applied"} 1"#
        ),
        "{text}"
    );
}

/// Every refused delivery: 401 and nothing written.
#[test]
fn bad_signatures_are_refused_and_write_nothing() {
    let server = server();
    let id = pending(&server);
    let body = serde_json::to_vec(&captured("pay_1", id, WIDGET_CENTS)).unwrap();
    let good = sign(SECRET, &body);
    let mut flipped = body.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    // The same JSON, re-serialised with other spacing: other bytes.
    let pretty =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_ne!(pretty, body);
    let before = snapshot(&server);
    let cases: Vec<(&str, &[u8], Option<String>)> = vec![
        ("one byte of the body flipped", &flipped, Some(good.clone())),
        (
            "re-serialised with the original signature",
            &pretty,
            Some(good.clone()),
        ),
        ("wrong secret", &body, Some(sign("whsec_wrong", &body))),
        ("missing header", &body, None),
        ("non-hex header", &body, Some("z".repeat(64))),
        ("empty header", &body, Some(String::new())),
        ("truncated signature", &body, Some(good[..63].to_string())),
        ("signature of an empty body", &body, Some(sign(SECRET, b""))),
    ];
    for (what, body, signature) in cases {
        let reply = post_raw(&server, body, signature.as_deref(), Some("evt_bad"));
        let problem = reply.problem(401);
        assert!(
            problem["detail"].as_str().unwrap().contains("Signature"),
            "{what}: {problem}"
        );
    }
    assert_eq!(snapshot(&server), before);
    // The genuine delivery, with the same event id, is then applied: the
    // refused ones did not burn the id.
    let reply = post_raw(&server, &body, Some(&good), Some("evt_bad"));
    reply.expect_status(200);
    assert_eq!(reply.json()["status"], "processed");
    assert_eq!(order(&server, id)["status"], "PAID");
}

#[test]
fn the_previous_secret_is_accepted_during_a_rotation_only() {
    let server = server();
    let id = pending(&server);
    let body = serde_json::to_vec(&captured("pay_old", id, WIDGET_CENTS)).unwrap();
    let reply = post_raw(&server, &body, Some(&sign(PREVIOUS, &body)), Some("evt_r"));
    reply.expect_status(200);
    assert_eq!(reply.json()["outcome"], "applied");
    // Once the rotation is over (no previous secret), it is refused.
    let after = Server::start_with(|c| c.webhook_secret = Some(SECRET.into()));
    let other = pending(&after);
    let body = serde_json::to_vec(&captured("pay_old", other, WIDGET_CENTS)).unwrap();
    post_raw(&after, &body, Some(&sign(PREVIOUS, &body)), Some("evt_r")).problem(401);
    assert!(payments(&after).is_empty());
}

#[test]
fn garbage_with_a_valid_signature_is_a_bad_request_and_writes_nothing() {
    let server = server();
    pending(&server);
    let before = snapshot(&server);
    let bodies: Vec<Vec<u8>> = vec![
        b"\x00\xffnot json at all".to_vec(),
        b"[1, 2, 3]".to_vec(),
        br#"{"event": "payment.captured"}"#.to_vec(),
        br#"{"event": "payment.captured", "payload": {"payment": {"entity": {"id": "pay_1", "amount": "999", "currency": "USD"}}}}"#.to_vec(),
        br#"{"event": "refund.processed", "payload": {"refund": {"entity": {"id": "rfnd_1", "amount": 5}}}}"#.to_vec(),
    ];
    for body in bodies {
        post_raw(&server, &body, Some(&sign(SECRET, &body)), Some("evt_g")).problem(400);
    }
    assert_eq!(snapshot(&server), before);
}

/// Sends raw bytes on a fresh connection and returns the status code and
/// the answer.
fn raw_exchange(server: &Server, request: &[u8]) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The server answers 413 before reading everything we send.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

#[test]
fn a_two_mib_body_is_413_and_writes_nothing() {
    let server = server();
    let id = pending(&server);
    let before = snapshot(&server);
    // A valid capture padded with spaces to 2 MiB, correctly signed.
    let mut body = serde_json::to_vec(&captured("pay_big", id, WIDGET_CENTS)).unwrap();
    body.resize(2 * 1024 * 1024, b' ');
    let signature = sign(SECRET, &body);
    for chunked in [false, true] {
        let mut request = format!(
            "POST /api/payments/webhook HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
             x-razorpay-signature: {signature}\r\nx-razorpay-event-id: evt_big\r\n"
        )
        .into_bytes();
        if chunked {
            request.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for chunk in body.chunks(64 * 1024) {
                request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                request.extend_from_slice(chunk);
                request.extend_from_slice(b"\r\n");
            }
            request.extend_from_slice(b"0\r\n\r\n");
        } else {
            request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(&body);
        }
        let (status, text) = raw_exchange(&server, &request);
        assert_eq!(status, 413, "chunked={chunked}: {text}");
        assert!(text.contains("application/problem+json"), "{text}");
    }
    assert_eq!(snapshot(&server), before);
}

#[test]
fn without_a_secret_the_webhook_is_503_and_reads_nothing() {
    let server = Server::start();
    let id = pending(&server);
    let before = snapshot(&server);
    let body = serde_json::to_vec(&captured("pay_1", id, WIDGET_CENTS)).unwrap();
    let reply = post_raw(&server, &body, Some(&sign(SECRET, &body)), Some("evt_1"));
    let problem = reply.problem(503);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("OMS_WEBHOOK_SECRET"),
        "{problem}"
    );
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(snapshot(&server), before);
}

#[test]
fn the_same_event_three_times_is_applied_once() {
    let server = server();
    let id = pending(&server);
    let event = captured("pay_1", id, WIDGET_CENTS);
    expect(&server, "evt_1", &event, "processed");
    let after_first = snapshot(&server);
    for _ in 0..2 {
        expect(&server, "evt_1", &event, "duplicate");
    }
    assert_eq!(snapshot(&server), after_first);
    assert_eq!(paid_changes(&server, id), 1);
}

#[test]
fn order_paid_beside_payment_captured_is_one_payment_and_one_status_change() {
    let server = server();
    let (a, b) = (pending(&server), pending(&server));
    // Either order of arrival.
    expect(
        &server,
        "evt_c1",
        &captured("pay_a", a, WIDGET_CENTS),
        "processed",
    );
    let answer = expect(
        &server,
        "evt_o1",
        &order_paid("pay_a", a, WIDGET_CENTS),
        "duplicate",
    );
    assert_eq!(answer["outcome"], "applied");
    let answer = expect(
        &server,
        "evt_o2",
        &order_paid("pay_b", b, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(
        answer["outcome"], "applied",
        "order.paid finds the order by its receipt"
    );
    expect(
        &server,
        "evt_c2",
        &captured("pay_b", b, WIDGET_CENTS),
        "duplicate",
    );
    let all = payments(&server);
    assert_eq!(all.len(), 2, "{all:?}");
    for id in [a, b] {
        assert_eq!(order(&server, id)["status"], "PAID");
        assert_eq!(paid_changes(&server, id), 1);
    }
}

#[test]
fn a_capture_after_a_failure_of_the_same_payment_is_applied() {
    let server = server();
    let id = pending(&server);
    let before = server.last_seq();
    let failed = expect(
        &server,
        "evt_f",
        &payment_event("payment.failed", "pay_1", id, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(order(&server, id)["status"], "PENDING");
    let p = &payments(&server)[0];
    assert_eq!(
        (&p["status"], &p["outcome"]),
        (&json!("failed"), &json!("failed"))
    );
    expect(
        &server,
        "evt_c",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    let all = payments(&server);
    assert_eq!(all.len(), 1, "the failed row became the captured one");
    assert_eq!(
        (&all[0]["status"], &all[0]["outcome"]),
        (&json!("captured"), &json!("applied"))
    );
    assert_eq!(all[0]["event_id"], "evt_c");
    assert_eq!(order(&server, id)["status"], "PAID");
    assert_eq!(
        change_kinds(&server, before),
        [
            "payment.received",
            "payment.updated",
            "order.status_changed"
        ]
    );
}

#[test]
fn a_failure_after_the_capture_changes_nothing() {
    let server = server();
    let id = pending(&server);
    expect(
        &server,
        "evt_c",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    let after_capture = snapshot(&server);
    expect(
        &server,
        "evt_f",
        &payment_event("payment.failed", "pay_1", id, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(snapshot(&server), after_capture, "forward only");
    assert_eq!(order(&server, id)["status"], "PAID");
    assert_eq!(payments(&server)[0]["status"], "captured");
}

#[test]
fn a_capture_for_a_cancelled_order_is_not_payable_and_leaves_stock_alone() {
    let server = server();
    let id = server.place(&server.alice, None, &[(GADGET, 2)])["id"]
        .as_i64()
        .unwrap();
    server
        .put(&format!("/api/orders/{id}/status"))
        .token(&server.admin.token)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);
    let before = snapshot(&server);
    let answer = expect(
        &server,
        "evt_1",
        &captured("pay_late", id, 9998),
        "processed",
    );
    assert_eq!(answer["outcome"], "not_payable");
    let after = snapshot(&server);
    assert_eq!(after.products, before.products, "stock untouched");
    assert_eq!(after.orders, before.orders, "order untouched");
    assert_eq!(after.payments.len(), 1);
    assert_eq!(after.payments[0]["status"], "captured");
    assert_eq!(change_kinds(&server, before.last_seq), ["payment.received"]);
    // The order may not be removed now: it holds a record of money.
    server
        .delete(&format!("/api/orders/{id}"))
        .token(&server.admin.token)
        .send()
        .problem(409);
}

#[test]
fn a_second_payment_of_a_paid_order_is_not_payable() {
    let server = server();
    let id = pending(&server);
    expect(
        &server,
        "evt_1",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    let answer = expect(
        &server,
        "evt_2",
        &captured("pay_2", id, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(answer["outcome"], "not_payable");
    assert_eq!(paid_changes(&server, id), 1);
    let list = server
        .get("/api/payments?outcome=not_payable")
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["provider_payment_id"], "pay_2");
}

#[test]
fn one_minor_unit_short_is_an_amount_mismatch() {
    let server = server();
    let id = pending(&server);
    let before = snapshot(&server);
    let answer = expect(
        &server,
        "evt_1",
        &captured("pay_1", id, WIDGET_CENTS - 1),
        "processed",
    );
    assert_eq!(answer["outcome"], "amount_mismatch");
    let after = snapshot(&server);
    assert_eq!(after.orders, before.orders);
    assert_eq!(after.payments[0]["amount"], "9.98");
    // Another currency is a mismatch too, even with the same number.
    let mut other = captured("pay_2", id, WIDGET_CENTS);
    other["payload"]["payment"]["entity"]["currency"] = json!("INR");
    let answer = expect(&server, "evt_2", &other, "processed");
    assert_eq!(answer["outcome"], "amount_mismatch");
    assert_eq!(order(&server, id)["status"], "PENDING");
}

#[test]
fn unknown_orders_and_empty_notes_are_recorded_as_unknown_order() {
    let server = server();
    let before = snapshot(&server);
    let answer = expect(
        &server,
        "evt_1",
        &captured("pay_1", 999_999, 500),
        "processed",
    );
    assert_eq!(answer["outcome"], "unknown_order");
    // `notes: []`, as the provider sends when none were set.
    let mut no_notes = captured("pay_2", 1, 500);
    no_notes["payload"]["payment"]["entity"]["notes"] = json!([]);
    let answer = expect(&server, "evt_2", &no_notes, "processed");
    assert_eq!(answer["outcome"], "unknown_order");
    let all = payments(&server);
    assert_eq!(all[0]["order_id"], 999_999);
    assert_eq!(all[1]["order_id"], Value::Null);
    assert_eq!(snapshot(&server).orders, before.orders);
}

#[test]
fn notes_as_an_empty_array_are_read_for_a_known_order_too() {
    let server = server();
    let id = pending(&server);
    // order.paid with `notes: []` everywhere but the receipt.
    let answer = expect(
        &server,
        "evt_1",
        &order_paid("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    assert_eq!(answer["outcome"], "applied");
}

#[test]
fn an_unknown_event_type_is_ignored_and_writes_nothing() {
    let server = server();
    let id = pending(&server);
    let before = snapshot(&server);
    for (i, event) in [
        "payment.authorized",
        "order.notification.delivered",
        "refund.created",
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = captured("pay_1", id, WIDGET_CENTS);
        body["event"] = json!(event);
        let answer = expect(&server, &format!("evt_{i}"), &body, "ignored");
        assert_eq!(answer, json!({"status": "ignored"}));
    }
    assert_eq!(snapshot(&server), before);
    // Ignored deliveries burn no event id: the same id, now a capture,
    // is processed.
    expect(
        &server,
        "evt_0",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
}

#[test]
fn refunds_add_up_once_each_and_never_touch_the_order() {
    let server = server();
    let id = pending(&server);
    expect(
        &server,
        "evt_c",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    let order_before = order(&server, id);
    expect(
        &server,
        "evt_r1",
        &refund_event("rfnd_1", "pay_1", 400),
        "processed",
    );
    // Replayed, and redelivered under another event id: once.
    expect(
        &server,
        "evt_r1",
        &refund_event("rfnd_1", "pay_1", 400),
        "duplicate",
    );
    expect(
        &server,
        "evt_r1b",
        &refund_event("rfnd_1", "pay_1", 400),
        "duplicate",
    );
    let p = &payments(&server)[0];
    assert_eq!(
        (&p["refunded_amount"], &p["status"]),
        (&json!("4.00"), &json!("captured"))
    );
    expect(
        &server,
        "evt_r2",
        &refund_event("rfnd_2", "pay_1", 599),
        "processed",
    );
    let p = &payments(&server)[0];
    assert_eq!(
        (&p["refunded_amount"], &p["status"]),
        (&json!("9.99"), &json!("refunded"))
    );
    assert_eq!(
        p["outcome"], "applied",
        "the outcome says what it did to the order"
    );
    assert_eq!(
        order(&server, id),
        order_before,
        "a refund never changes the order"
    );
    // A late capture replay of the refunded payment changes nothing.
    expect(
        &server,
        "evt_c2",
        &order_paid("pay_1", id, WIDGET_CENTS),
        "duplicate",
    );
}

#[test]
fn fifty_concurrent_deliveries_of_ten_events_pay_each_order_once() {
    let server = server();
    let ids: Vec<i64> = (0..10).map(|_| pending(&server)).collect();
    // Ten distinct captures, five deliveries each, in a shuffled order.
    let mut deliveries: Vec<(String, Vec<u8>)> = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let body = serde_json::to_vec(&captured(&format!("pay_{n}"), *id, WIDGET_CENTS)).unwrap();
        for _ in 0..5 {
            deliveries.push((format!("evt_{n}"), body.clone()));
        }
    }
    let mut rng = fastrand::Rng::with_seed(7);
    rng.shuffle(&mut deliveries);
    let barrier = Arc::new(Barrier::new(deliveries.len()));
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = deliveries
            .iter()
            .map(|(event_id, body)| {
                let (server, barrier) = (&server, Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    let reply = post_raw(server, body, Some(&sign(SECRET, body)), Some(event_id));
                    reply.expect_status(200);
                    reply.json()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("delivery"))
            .collect()
    });
    let processed = answers
        .iter()
        .filter(|a| a["status"] == "processed")
        .count();
    let duplicates = answers
        .iter()
        .filter(|a| a["status"] == "duplicate")
        .count();
    assert_eq!((processed, duplicates), (10, 40), "{answers:?}");
    let all = payments(&server);
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|p| p["outcome"] == "applied"), "{all:?}");
    for id in ids {
        assert_eq!(order(&server, id)["status"], "PAID");
        assert_eq!(paid_changes(&server, id), 1, "order {id}");
    }
    assert!(server.store().verify().unwrap().is_clean());
}

#[test]
fn customers_see_the_payments_of_their_own_orders_only() {
    let server = server();
    let id = pending(&server);
    let seq = server.last_seq();
    expect(
        &server,
        "evt_1",
        &captured("pay_1", id, WIDGET_CENTS),
        "processed",
    );
    let path = format!("/api/orders/{id}/payments");
    let mine = server.get(&path).token(&server.alice.token).send();
    mine.expect_status(200);
    let mine = mine.json();
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(mine["next"], Value::Null);
    server
        .get(&path)
        .token(&server.bob.token)
        .send()
        .problem(404);
    server
        .get("/api/orders/424242/payments")
        .token(&server.admin.token)
        .send()
        .problem(404);
    let payment_id = mine["items"][0]["id"].as_i64().unwrap();
    server
        .get(&format!("/api/payments/{payment_id}"))
        .token(&server.alice.token)
        .send()
        .problem(403);
    let one = server
        .get(&format!("/api/payments/{payment_id}"))
        .token(&server.admin.token)
        .send();
    one.expect_status(200);
    assert_eq!(one.json(), mine["items"][0]);
    server
        .get("/api/payments/99")
        .token(&server.admin.token)
        .send()
        .problem(404);
    // The change feed: Alice sees her payment, Bob nothing of it.
    let feed = |token: &str| -> Vec<String> {
        server
            .get(&format!("/api/changes?after={seq}"))
            .token(token)
            .send()
            .json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        feed(&server.alice.token),
        ["payment.received", "order.status_changed"]
    );
    assert!(feed(&server.bob.token).is_empty());
}

#[test]
fn payment_lists_filter_and_paginate() {
    let server = server();
    let ids: Vec<i64> = (0..3).map(|_| pending(&server)).collect();
    expect(
        &server,
        "e1",
        &captured("pay_1", ids[0], WIDGET_CENTS),
        "processed",
    );
    expect(&server, "e2", &captured("pay_2", ids[1], 1), "processed");
    expect(
        &server,
        "e3",
        &captured("pay_3", ids[2], WIDGET_CENTS),
        "processed",
    );
    let admin = &server.admin.token;
    let get = |path: &str| server.get(path).token(admin).send();
    let page = get("/api/payments?limit=2").json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().expect("a full page has a cursor");
    let rest = get(&format!("/api/payments?limit=2&after={next}")).json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);
    let mismatched = get("/api/payments?outcome=amount_mismatch").json();
    assert_eq!(mismatched["items"][0]["provider_payment_id"], "pay_2");
    let of_order = get(&format!("/api/payments?order={}", ids[2])).json();
    assert_eq!(of_order["items"][0]["provider_payment_id"], "pay_3");
    get("/api/payments?outcome=paid").problem(400);
    get("/api/payments?order=x").problem(400);
}

/// Razorpay's own signature check (PyPI `razorpay` 2.0,
/// `Utility.verify_webhook_signature`) agrees with ours on which
/// signatures are valid. Skipped, saying why, when python3 or the package
/// is missing (`.ci/run` installs it).
#[test]
fn razorpays_own_check_agrees_with_ours() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import razorpay"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            println!(
                "skipped: python3 with the razorpay package (pip install razorpay) is not available"
            );
            return;
        }
    }
    let keys = oms_daemon::webhook::Keys::new(Some(SECRET), None).unwrap();
    let body = serde_json::to_string(&captured("pay_1", 7, WIDGET_CENTS)).unwrap();
    let good = sign(SECRET, body.as_bytes());
    let mut cases: Vec<(String, String, String)> = vec![
        (body.clone(), good.clone(), SECRET.into()),
        (body.replacen("9", "8", 1), good.clone(), SECRET.into()),
        (format!("{body} "), good.clone(), SECRET.into()),
        (body.clone(), sign("other", body.as_bytes()), SECRET.into()),
        (body.clone(), good[1..].to_string(), SECRET.into()),
        ("{}".into(), sign(SECRET, b"{}"), SECRET.into()),
        (
            "ünïcödé ✓".into(),
            sign(SECRET, "ünïcödé ✓".as_bytes()),
            SECRET.into(),
        ),
    ];
    // Many random bodies, half of them signed correctly.
    let mut rng = fastrand::Rng::with_seed(11);
    for i in 0..50 {
        let text: String = (0..rng.usize(0..200)).map(|_| rng.alphanumeric()).collect();
        let signature = if i % 2 == 0 {
            sign(SECRET, text.as_bytes())
        } else {
            sign(&format!("{SECRET}{i}"), text.as_bytes())
        };
        cases.push((text, signature, SECRET.into()));
    }
    let script = r#"
import json, sys, razorpay
utility = razorpay.Utility(None)
for body, signature, secret in json.load(sys.stdin):
    try:
        utility.verify_webhook_signature(body, signature, secret)
        print("valid")
    except razorpay.errors.SignatureVerificationError:
        print("invalid")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .expect("write the cases");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<bool> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "valid")
        .collect();
    assert_eq!(verdicts.len(), cases.len());
    for ((body, signature, _), theirs) in cases.iter().zip(&verdicts) {
        let ours = keys.verify(body.as_bytes(), signature.as_bytes());
        assert_eq!(ours, *theirs, "body {body:?}, signature {signature}");
    }
    assert!(
        verdicts.iter().filter(|v| **v).count() >= 25,
        "valid cases were tested"
    );
    println!("razorpay oracle: {} cases agree", cases.len());
}
