//! E-mail notifications (DESIGN §7) through the daemon's own dispatcher
//! and a fake SMTP server (`oms-mailsink`) on 127.0.0.1:0: every status
//! change is delivered with its recipient, subject and Message-ID;
//! temporary failures (421, a stall past the timeout, a connection dropped
//! after DATA) are retried with backoff; permanent ones (550) end `dead`
//! and `POST /api/notifications/{id}/retry` revives them; customer strings
//! are escaped in the HTML part; `/api/notifications` and the metrics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oms_core::{Actor, CustomerRef, NewOrder, Timestamp};
use oms_daemon::mail::MailConfig;
use oms_mailsink::{Action, Message, Sink};
use serde_json::{Value, json};

use crate::support::{ALICE_EMAIL, BOB_EMAIL, GADGET, Server, WIDGET, wait_until};

/// Settings for tests: quick retries, a short timeout, a fast idle poll.
fn mail_config(sink: &Sink) -> MailConfig {
    let mut config = MailConfig::new(sink.url(), "Shop <shop@example.com>");
    config.public_url = Some("https://shop.example".into());
    config.timeout = Duration::from_secs(3);
    config.retry_after = Duration::from_millis(150);
    config.idle_poll = Duration::from_millis(50);
    config.concurrency = 2;
    config
}

fn start(sink: &Sink, tune: impl FnOnce(&mut MailConfig)) -> Server {
    let mut config = mail_config(sink);
    tune(&mut config);
    Server::start_with(move |c| c.mail = Some(config))
}

/// Every outbox row, through the API.
fn rows(server: &Server, query: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/api/notifications?limit=500{query}"))
        .token(&server.admin.token)
        .send();
    reply.expect_status(200);
    reply.json()["items"].as_array().expect("items").clone()
}

/// Polls until every row of the outbox has left `pending`.
fn wait_settled(server: &Server, what: &str) -> Vec<Value> {
    wait_until(Duration::from_secs(30), what, || {
        rows(server, "&status=pending").is_empty()
    });
    rows(server, "")
}

fn status(server: &Server, order: i64, to: &str) {
    server
        .put(&format!("/api/orders/{order}/status"))
        .token(&server.admin.token)
        .json(&json!({"status": to}))
        .send()
        .expect_status(200);
}

fn id(order: &Value) -> i64 {
    order["id"].as_i64().expect("order id")
}

fn by_message_id(messages: &[Message]) -> HashMap<String, Vec<Message>> {
    let mut out: HashMap<String, Vec<Message>> = HashMap::new();
    for m in messages {
        out.entry(m.message_id().expect("a Message-ID"))
            .or_default()
            .push(m.clone());
    }
    out
}

#[test]
fn every_status_change_is_delivered_with_its_recipient_subject_and_message_id() {
    let sink = Sink::start().unwrap();
    let server = start(&sink, |_| {});
    let alice = server.alice.customer_id();

    // Placed, paid, fulfilled: over HTTP by the admin.
    let a = server.place(&server.admin, Some(alice), &[(WIDGET, 2)]);
    status(&server, id(&a), "paid");
    status(&server, id(&a), "paid"); // a no-op writes no mail
    status(&server, id(&a), "fulfilled");
    // Placed and cancelled by the customer itself.
    let b = server.place(&server.alice, None, &[(GADGET, 1)]);
    server
        .patch(&format!("/api/orders/{}/status", id(&b)))
        .token(&server.alice.token)
        .json(&json!({"status": "cancelled"}))
        .send()
        .expect_status(200);
    // Placed by another process on the same file, then expired there: the
    // daemon's dispatcher delivers those too.
    let store = server.store();
    let c = store
        .write(&Actor::cli(), |tx| {
            tx.place_order(&NewOrder {
                customer: CustomerRef::Email(BOB_EMAIL.into()),
                items: vec![oms_core::ItemRequest::parse("WIDGET:1")?],
                paid: false,
                idempotency_key: None,
            })
        })
        .unwrap()
        .order;
    store
        .write(&Actor::cli(), |tx| {
            tx.expire_pending(Timestamp::now().plus(Duration::from_secs(1)))
        })
        .unwrap();

    let expected: Vec<(i64, &str, &str, String)> = vec![
        (
            id(&a),
            "order.placed",
            ALICE_EMAIL,
            format!("Order #{} received", id(&a)),
        ),
        (
            id(&a),
            "order.paid",
            ALICE_EMAIL,
            format!("Order #{}: payment received", id(&a)),
        ),
        (
            id(&a),
            "order.fulfilled",
            ALICE_EMAIL,
            format!("Order #{} has shipped", id(&a)),
        ),
        (
            id(&b),
            "order.placed",
            ALICE_EMAIL,
            format!("Order #{} received", id(&b)),
        ),
        (
            id(&b),
            "order.cancelled",
            ALICE_EMAIL,
            format!("Order #{} cancelled", id(&b)),
        ),
        (
            c.id.get(),
            "order.placed",
            BOB_EMAIL,
            format!("Order #{} received", c.id),
        ),
        (
            c.id.get(),
            "order.cancelled",
            BOB_EMAIL,
            format!("Order #{} expired", c.id),
        ),
    ];
    let settled = wait_settled(&server, "every mail to be delivered");
    assert_eq!(settled.len(), expected.len(), "{settled:#?}");
    let delivered = by_message_id(&sink.accepted());
    for (row, (order, kind, to, subject)) in settled.iter().zip(&expected) {
        assert_eq!(row["order_id"], *order, "{row}");
        assert_eq!(row["kind"], *kind, "{row}");
        assert_eq!(row["recipient"], *to, "{row}");
        assert_eq!(row["status"], "sent", "{row}");
        assert_eq!(row["attempts"], 1, "{row}");
        assert!(row["sent_at"].is_string(), "{row}");
        let message_id = row["message_id"].as_str().unwrap();
        assert!(
            message_id.starts_with(&format!("<notification-{}.", row["id"]))
                && message_id.ends_with("@example.com>"),
            "{message_id}"
        );
        let mails = delivered
            .get(message_id)
            .unwrap_or_else(|| panic!("no mail with {message_id}"));
        assert_eq!(mails.len(), 1, "{message_id} delivered twice");
        let mail = &mails[0];
        assert_eq!(mail.rcpt_to, [*to]);
        assert_eq!(mail.mail_from, "shop@example.com");
        assert_eq!(mail.subject().as_deref(), Some(subject.as_str()));
        assert!(mail.header("from").unwrap().contains("shop@example.com"));
        let text = mail.part("text/plain").unwrap();
        let html = mail.part("text/html").unwrap();
        assert!(text.contains(&format!("Order #{order}")), "{text}");
        assert!(html.contains("https://shop.example/track/TRK"), "{html}");
    }
    assert_eq!(sink.count(), expected.len(), "nothing else was sent");
    assert!(
        sink.connections() < expected.len() as u64,
        "connections are reused: {} for {} mails",
        sink.connections(),
        expected.len()
    );

    // Metrics: outcomes counted, nothing left in the backlog.
    let sent = server.metric("oms_notifications_total{outcome=\"sent\"}");
    assert_eq!(sent, Some(expected.len() as f64));
    assert_eq!(server.metric("oms_outbox_backlog"), Some(0.0));
    assert_eq!(
        server.metric("oms_outbox_oldest_due_age_seconds"),
        Some(0.0)
    );
}

#[test]
fn temporary_failures_are_retried_with_backoff() {
    // 421 twice, then accepted.
    let sink = Sink::with(|_, before| {
        if before < 2 {
            Action::Temporary
        } else {
            Action::Accept
        }
    })
    .unwrap();
    let server = start(&sink, |_| {});
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let settled = wait_settled(&server, "the mail to get through");
    let row = &settled[0];
    assert_eq!(row["status"], "sent", "{row}");
    assert_eq!(row["attempts"], 3, "{row}");
    assert_eq!(row["order_id"], id(&order));
    assert!(row["last_error"].as_str().unwrap().contains("421"), "{row}");

    let tries = sink.messages();
    assert_eq!(tries.len(), 3);
    assert!(
        tries
            .iter()
            .all(|m| m.message_id() == tries[0].message_id())
    );
    // The first retry waits about retry_after, the second about twice that
    // (each ±25%), measured between the sink's answers and the next tries.
    let gaps: Vec<Duration> = tries
        .windows(2)
        .map(|w| w[1].started.duration_since(w[0].finished))
        .collect();
    assert!(gaps[0] >= Duration::from_millis(150 * 3 / 4), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(300 * 3 / 4), "{gaps:?}");
    assert!(gaps[1] > gaps[0] / 2, "{gaps:?}");
    assert_eq!(
        server.metric("oms_notifications_total{outcome=\"rescheduled\"}"),
        Some(2.0)
    );
}

#[test]
fn permanent_failures_end_dead_and_retry_revives_them() {
    // 550 the first time, accepted after an admin's retry.
    let sink = Sink::with(|_, before| {
        if before == 0 {
            Action::Permanent
        } else {
            Action::Accept
        }
    })
    .unwrap();
    let server = start(&sink, |_| {});
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    let settled = wait_settled(&server, "the refusal to be recorded");
    let row = &settled[0];
    assert_eq!(row["status"], "dead", "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
    assert!(row["last_error"].as_str().unwrap().contains("550"), "{row}");
    assert_eq!(
        server.metric("oms_notifications_total{outcome=\"dead\"}"),
        Some(1.0)
    );
    let dead = rows(&server, "&status=dead");
    assert_eq!(dead.len(), 1);

    let path = format!("/api/notifications/{}/retry", row["id"]);
    // Only an admin may retry.
    server
        .post(&path)
        .token(&server.alice.token)
        .send()
        .problem(403);
    let revived = server.post(&path).token(&server.admin.token).send();
    revived.expect_status(200);
    let revived = revived.json();
    assert_eq!(revived["status"], "pending");
    assert_eq!(revived["attempts"], 0);
    assert_eq!(revived["message_id"], row["message_id"]);

    let settled = wait_settled(&server, "the retried mail to be delivered");
    assert_eq!(settled[0]["status"], "sent", "{}", settled[0]);
    assert_eq!(sink.accepted().len(), 1);
    assert_eq!(
        sink.accepted()[0].message_id().as_deref(),
        row["message_id"].as_str()
    );
    // A sent row cannot be retried; an unknown one is not found; a body
    // with fields is refused.
    server
        .post(&path)
        .token(&server.admin.token)
        .send()
        .problem(409);
    server
        .post("/api/notifications/999999/retry")
        .token(&server.admin.token)
        .send()
        .problem(404);
    server
        .post(&path)
        .token(&server.admin.token)
        .json(&json!({"status": "pending"}))
        .send()
        .problem(422);
}

#[test]
fn a_server_that_stalls_past_the_timeout_is_retried() {
    let sink = Sink::with(|_, before| {
        if before == 0 {
            Action::Stall
        } else {
            Action::Accept
        }
    })
    .unwrap();
    let server = start(&sink, |c| c.timeout = Duration::from_millis(400));
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    let settled = wait_settled(&server, "the mail to get through after the stall");
    let row = &settled[0];
    assert_eq!(
        (row["status"].as_str(), row["attempts"].as_i64()),
        (Some("sent"), Some(2))
    );
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{row}"
    );
    assert_eq!(sink.messages()[0].action, Action::Stall);
}

#[test]
fn a_connection_dropped_after_data_is_sent_again_with_the_same_message_id() {
    let sink = Sink::with(|_, before| {
        if before == 0 {
            Action::DropAfterData
        } else {
            Action::Accept
        }
    })
    .unwrap();
    let server = start(&sink, |_| {});
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    let settled = wait_settled(&server, "the mail to be sent again");
    assert_eq!(settled[0]["status"], "sent");
    assert_eq!(settled[0]["attempts"], 2);
    // At least once: the receiver got it twice, and can drop the second
    // copy by its Message-ID.
    let all = sink.messages();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].message_id(), all[1].message_id());
    assert_eq!(
        all[0].message_id().as_deref(),
        settled[0]["message_id"].as_str()
    );
}

#[test]
fn a_script_in_a_customer_name_is_escaped_in_the_html_part() {
    let sink = Sink::start().unwrap();
    let server = start(&sink, |_| {});
    let evil = "<script>alert(1)</script>";
    let created = server
        .post("/api/customers")
        .token(&server.admin.token)
        .json(&json!({"name": evil, "email": "evil@example.com"}))
        .send();
    created.expect_status(201);
    let customer = created.json()["id"].as_i64().unwrap();
    server.place(&server.admin, Some(customer), &[(WIDGET, 1)]);
    sink.wait_for(Duration::from_secs(30), "the mail", |m| m.len() == 1);
    let mail = &sink.messages()[0];
    assert_eq!(mail.rcpt_to, ["evil@example.com"]);
    let html = mail.part("text/html").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,"),
        "{html}"
    );
    let text = mail.part("text/plain").unwrap();
    assert!(text.contains(&format!("Hello {evil},")), "{text}");
}

#[test]
fn placement_goes_on_while_a_send_is_stalled() {
    // The first mail stalls until the client gives up (3 s); meanwhile
    // orders are placed and answered: the dispatcher holds no lock and no
    // transaction while it talks to the server.
    let stalled = std::sync::atomic::AtomicBool::new(false);
    let sink = Sink::with(move |_, _| {
        if stalled.swap(true, std::sync::atomic::Ordering::AcqRel) {
            Action::Accept
        } else {
            Action::Stall
        }
    })
    .unwrap();
    let server = start(&sink, |c| {
        c.timeout = Duration::from_secs(3);
        c.concurrency = 1;
    });
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    // Wait until the dispatcher is inside the stalled exchange: the row is
    // claimed (attempt 1, under lease) and nothing has come back.
    wait_until(Duration::from_secs(10), "the first send to start", || {
        rows(&server, "")[0]["attempts"] == 1
    });
    let started = Instant::now();
    for _ in 0..20 {
        server.place(&server.alice, None, &[(WIDGET, 1)]);
    }
    assert_eq!(
        sink.count(),
        0,
        "the stalled send was still going while 20 orders were placed ({:?})",
        started.elapsed()
    );
    let settled = wait_settled(&server, "every mail after the stall");
    assert_eq!(settled.len(), 21);
    assert!(settled.iter().all(|r| r["status"] == "sent"));
}

#[test]
fn the_notification_list_filters_pages_and_is_for_admins() {
    // No dispatcher: rows stay pending.
    let server = Server::start();
    let a = server.place(&server.alice, None, &[(WIDGET, 1)]);
    status(&server, id(&a), "cancelled");
    let b = server.place(&server.bob, None, &[(WIDGET, 1)]);

    let all = rows(&server, "");
    assert_eq!(all.len(), 3);
    let mut keys: Vec<&String> = all[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attempts",
            "created_at",
            "id",
            "kind",
            "last_error",
            "message_id",
            "next_attempt_at",
            "order_id",
            "recipient",
            "sent_at",
            "status"
        ]
    );
    assert_eq!(all[0]["status"], "pending");
    assert_eq!(all[0]["message_id"], Value::Null);
    assert_eq!(rows(&server, &format!("&order={}", id(&a))).len(), 2);
    assert_eq!(rows(&server, &format!("&order={}", id(&b))).len(), 1);
    assert!(rows(&server, "&status=sent").is_empty());
    assert_eq!(rows(&server, "&status=PENDING").len(), 3);

    let page = server
        .get("/api/notifications?limit=2")
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().unwrap();
    let rest = server
        .get(&format!("/api/notifications?limit=2&after={next}"))
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], Value::Null);

    server
        .get("/api/notifications?status=lost")
        .token(&server.admin.token)
        .send()
        .problem(400);
    server
        .get("/api/notifications?order=x")
        .token(&server.admin.token)
        .send()
        .problem(400);
    server
        .get("/api/notifications")
        .token(&server.alice.token)
        .send()
        .problem(403);
    server.get("/api/notifications").send().problem(401);
    // Without a dispatcher the backlog shows in the metrics.
    assert_eq!(server.metric("oms_outbox_backlog"), Some(3.0));
    assert!(server.metric("oms_outbox_oldest_due_age_seconds").unwrap() >= 0.0);
}
