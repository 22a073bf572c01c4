//! Limits and malformed input: body size (413), malformed JSON (400),
//! wrong types (422), the long-poll waiter cap (503) and request ids.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::support::{Server, WIDGET};

const MIB: usize = 1024 * 1024;

/// A product body padded with spaces to exactly `len` bytes.
fn padded_product(sku: &str, len: usize) -> Vec<u8> {
    let mut body = json!({"sku": sku, "name": "Padded", "price": "1.00"})
        .to_string()
        .into_bytes();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

/// Sends raw bytes on a fresh connection and returns the status code and
/// the whole answer (the request asks the server to close).
fn raw_exchange(server: &Server, request: &[u8]) -> (u16, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // The server may answer and close before reading everything we send.
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

/// A request head for `method path` with `content-length`.
fn head(method: &str, path: &str, token: Option<&str>, length: usize) -> String {
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\n{auth}content-type: application/json\r\n\
         content-length: {length}\r\n\r\n"
    )
}

/// The status codes of every answer in a raw exchange, in order.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn a_body_over_one_mib_is_413_and_ends_the_connection() {
    let server = Server::start();
    let body = padded_product("TOO-BIG", MIB + 1);
    let mut request = head(
        "POST",
        "/api/products",
        Some(&server.admin.token),
        body.len(),
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let (status, text) = raw_exchange(&server, &request);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("1048576"), "the limit is named: {text}");
    // The unread rest of the body ends the connection, and says so.
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    server
        .get("/api/products/TOO-BIG")
        .token(&server.admin.token)
        .send()
        .problem(404);
}

/// Answers given before the body is needed (no route, wrong method, no
/// token, a malformed id or header) still read the body, so the connection
/// stays usable: a request pipelined behind them is answered. Before the
/// fix the daemon answered at once and hyper closed the connection under
/// the client, which then saw a reset or a dead pooled connection.
#[test]
fn early_refusals_read_the_body_and_keep_the_connection() {
    let server = Server::start();
    let body = padded_product("EARLY", 256 * 1024);
    let admin = Some(server.admin.token.as_str());
    let cases: Vec<(String, u16)> = vec![
        (head("POST", "/nope", None, body.len()), 404),
        (head("POST", "/healthz", None, body.len()), 405),
        (head("POST", "/api/orders", None, body.len()), 401),
        (
            head("POST", "/api/products", Some("bad.token.here"), body.len()),
            401,
        ),
        (
            head(
                "POST",
                "/api/products",
                Some(&server.alice.token),
                body.len(),
            ),
            403,
        ),
        (head("PATCH", "/api/orders/abc", admin, body.len()), 404),
        (head("PATCH", "/api/customers/abc", admin, body.len()), 404),
        (
            head("POST", "/api/orders", admin, body.len()).replacen(
                "\r\n\r\n",
                &format!("\r\nidempotency-key: {}\r\n\r\n", "k".repeat(300)),
                1,
            ),
            400,
        ),
    ];
    for (first, expected) in cases {
        let mut request = first.clone().into_bytes();
        request.extend_from_slice(&body);
        request
            .extend_from_slice(b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        let (_, text) = raw_exchange(&server, &request);
        assert_eq!(
            statuses(&text),
            [expected, 200],
            "{}\n---\n{text}",
            first.lines().next().unwrap_or_default()
        );
    }
}

#[test]
fn a_body_of_exactly_one_mib_is_accepted() {
    let server = Server::start();
    server
        .post("/api/products")
        .token(&server.admin.token)
        .header("content-type", "application/json")
        .raw(padded_product("JUST-FITS", MIB))
        .send()
        .expect_status(201);
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let server = Server::start();
    let head = format!(
        "POST /api/products HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        server.admin.token,
        64 * MIB
    );
    // No body at all: the answer must come from the header alone.
    let (status, text) = raw_exchange(&server, head.as_bytes());
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}

#[test]
fn a_chunked_body_over_the_limit_is_413() {
    let server = Server::start();
    let mut request = format!(
        "POST /api/products HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.admin.token
    )
    .into_bytes();
    let body = padded_product("CHUNKED", MIB + 1);
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw_exchange(&server, &request);
    assert_eq!(status, 413, "{text}");
    server
        .get("/api/products/CHUNKED")
        .token(&server.admin.token)
        .send()
        .problem(404);
}

#[test]
fn malformed_json_is_400_and_wrong_types_are_422() {
    let server = Server::start();
    let admin = &server.admin.token;
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let targets = [
        ("POST", "/auth/register".to_string()),
        ("POST", "/auth/login".to_string()),
        ("POST", "/api/products".to_string()),
        ("PATCH", format!("/api/products/{WIDGET}")),
        ("POST", "/api/customers".to_string()),
        (
            "PATCH",
            format!("/api/customers/{}", server.bob.customer_id()),
        ),
        ("POST", "/api/orders".to_string()),
        ("PATCH", format!("/api/orders/{}", order["id"])),
        ("PUT", format!("/api/orders/{}/status", order["id"])),
    ];
    for (method, path) in &targets {
        for bad in ["{\"sku\": ", "not json", "", "[1, 2]", "\"text\"", "{}}"] {
            let problem = server
                .req(method, path)
                .token(admin)
                .header("content-type", "application/json")
                .raw(bad)
                .send()
                .problem(400);
            assert!(
                !problem["detail"].as_str().unwrap().is_empty(),
                "{method} {path}"
            );
        }
    }
    // Well-formed JSON of the wrong shape is a validation error.
    server
        .post("/api/orders")
        .token(admin)
        .json(&json!({"customer_id": "three", "items": [{"sku": WIDGET, "quantity": 1}]}))
        .send()
        .problem(422);
    server
        .post("/api/orders")
        .token(admin)
        .json(&json!({"customer_id": server.bob.customer_id(), "items": [{"sku": WIDGET, "quantity": "two"}]}))
        .send()
        .problem(422);
    server
        .post("/api/products")
        .token(admin)
        .json(&json!({"sku": "T-1", "name": "T", "price": "1.00", "active": "yes"}))
        .send()
        .problem(422);
    assert!(server.store().verify().unwrap().is_clean());
    let after = server
        .get(&format!("/api/orders/{}", order["id"]))
        .token(admin)
        .send()
        .json();
    assert_eq!(after, order, "nothing changed");
}

#[test]
fn the_long_poll_waiter_cap_answers_503() {
    let server = Server::start_with(|config| config.max_waiters = 1);
    let last = server.last_seq();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            server
                .get(&format!("/api/changes?after={last}&wait=2"))
                .token(&server.admin.token)
                .send()
        });
        server.wait_for_waiters(1);
        let refused = server
            .get(&format!("/api/changes?after={last}&wait=2"))
            .token(&server.alice.token)
            .send();
        refused.problem(503);
        assert!(refused.header("retry-after").is_some());
        // A poll with news does not need a slot.
        server
            .get("/api/changes?after=0&wait=2")
            .token(&server.admin.token)
            .send()
            .expect_status(200);
        // Wake the waiter so the test does not wait for its deadline.
        server.place(&server.alice, None, &[(WIDGET, 1)]);
        waiter.join().expect("waiter").expect_status(200);
    });
}

/// Reads from `stream` until `done` says the bytes so far hold a whole
/// answer, or the connection ends; returns what came.
fn read_until(stream: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if done(&String::from_utf8_lossy(&answer)) {
            break;
        }
    }
    String::from_utf8_lossy(&answer).to_string()
}

/// hyper restarts the header read timeout as soon as an answer was
/// written, so a keep-alive connection idle for that long is closed (what
/// README's "Connections" says). oms-bench's `idle-conns` kept one such
/// connection for `/metrics` while it opened 10,000 long-polls, and failed
/// with "connection closed by the server" once that took longer than
/// 10 s. A request that waits inside the daemon (a long-poll) is not idle
/// and is not cut, however long the timeout is exceeded.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout_a_long_poll_is_not() {
    let server = Server::start_with(|config| {
        config.header_read_timeout = Duration::from_millis(300);
    });
    let addr = server.base.trim_start_matches("http://");
    let mut idle = TcpStream::connect(addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
        .expect("send");
    let answer = read_until(&mut idle, |a| a.ends_with('}'));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Nothing more is sent: the daemon ends the connection (a read gives
    // end of file long before the 10 s read timeout).
    let started = std::time::Instant::now();
    let mut rest = [0u8; 64];
    let n = idle.read(&mut rest).expect("end of file, not a timeout");
    assert_eq!(n, 0, "closed without another answer");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A long-poll that waits 1 s (over three timeouts) gets its answer on
    // its connection.
    let last = server.last_seq();
    let mut poll = TcpStream::connect(addr).expect("connect");
    poll.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request = format!(
        "GET /api/changes?after={last}&wait=1 HTTP/1.1\r\nhost: test\r\n\
         authorization: Bearer {}\r\n\r\n",
        server.admin.token
    );
    poll.write_all(request.as_bytes()).expect("send");
    let answer = read_until(&mut poll, |a| a.ends_with('}'));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"changes\":[]"), "{answer}");
}

#[test]
fn request_ids_are_echoed_or_generated() {
    let server = Server::start();
    let reply = server
        .get("/healthz")
        .header("x-request-id", "trace-me-123")
        .send();
    assert_eq!(reply.header("x-request-id"), Some("trace-me-123"));
    let a = server.get("/healthz").send();
    let b = server.get("/nope").send();
    let (a, b) = (a.header("x-request-id"), b.header("x-request-id"));
    assert!(a.is_some() && b.is_some());
    assert_ne!(a, b);
}

/// Found by schemathesis (negative_data_rejection): `"email": null` was
/// read as "absent" and answered 200 without changing the e-mail, so a
/// client's explicit value was silently ignored. Only documented nullable
/// fields (a customer's phone) may be null; any other null is 422.
#[test]
fn a_null_for_a_field_that_is_not_nullable_is_422_and_changes_nothing() {
    let server = Server::start();
    let admin = &server.admin.token;
    let bob = server.bob.customer_id();
    let before = server
        .get(&format!("/api/customers/{bob}"))
        .token(admin)
        .send()
        .json();
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let cases = [
        (
            "PATCH",
            format!("/api/customers/{bob}"),
            json!({"email": null}),
            "email",
        ),
        (
            "PATCH",
            format!("/api/customers/{bob}"),
            json!({"name": null}),
            "name",
        ),
        (
            "POST",
            "/api/customers".to_string(),
            json!({"name": "N", "email": null}),
            "email",
        ),
        (
            "PATCH",
            format!("/api/products/{WIDGET}"),
            json!({"price": null}),
            "price",
        ),
        (
            "POST",
            "/api/products".to_string(),
            json!({"sku": "NULLS", "name": "N", "price": "1.00", "active": null}),
            "active",
        ),
        (
            "POST",
            "/api/orders".to_string(),
            json!({"customer_id": bob, "items": [{"sku": null, "product_id": 1, "quantity": 1}]}),
            "items[0].sku",
        ),
        (
            "PATCH",
            format!("/api/orders/{}", order["id"]),
            json!({"items": [{"sku": WIDGET, "quantity": null}]}),
            "items[0].quantity",
        ),
        (
            "PUT",
            format!("/api/orders/{}/status", order["id"]),
            json!({"status": null}),
            "status",
        ),
    ];
    for (method, path, body, field) in &cases {
        let problem = server
            .req(method, path)
            .token(admin)
            .json(body)
            .send()
            .problem(422);
        assert_eq!(
            problem["errors"][0]["field"], *field,
            "{method} {path} {body}: {problem}"
        );
    }
    let after = server
        .get(&format!("/api/customers/{bob}"))
        .token(admin)
        .send()
        .json();
    assert_eq!(after, before, "nothing changed");
    server
        .get("/api/products/NULLS")
        .token(admin)
        .send()
        .problem(404);
    // The phone is documented as nullable: null clears it.
    let cleared = server
        .patch(&format!("/api/customers/{bob}"))
        .token(admin)
        .json(&json!({"phone": null}))
        .send();
    cleared.expect_status(200);
    assert_eq!(cleared.json()["phone"], serde_json::Value::Null);
    server
        .post("/api/customers")
        .token(admin)
        .json(&json!({"name": "No Phone", "email": "nophone@example.com", "phone": null}))
        .send()
        .expect_status(201);
}

/// Found by schemathesis (negative_data_rejection): `by_order=AAA` was read
/// as false and exported one row per item. The document allows true, 1,
/// false and 0; anything else is a 400 before any CSV is sent.
#[test]
fn export_by_order_other_than_a_boolean_is_400() {
    let server = Server::start();
    let admin = &server.admin.token;
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    for bad in ["AAA", "yes", "2", "truee"] {
        let reply = server
            .get(&format!("/api/orders/export.csv?by_order={bad}"))
            .token(admin)
            .send();
        let problem = reply.problem(400);
        assert!(
            problem["detail"].as_str().unwrap().contains("by_order"),
            "{problem}"
        );
    }
    for (value, by_order) in [
        ("true", true),
        ("1", true),
        ("false", false),
        ("0", false),
        ("", false),
    ] {
        let reply = server
            .get(&format!("/api/orders/export.csv?by_order={value}"))
            .token(admin)
            .send();
        reply.expect_status(200);
        let header = reply.body.lines().next().unwrap_or_default();
        assert_eq!(header.contains(",items,"), by_order, "{value}: {header}");
    }
}
