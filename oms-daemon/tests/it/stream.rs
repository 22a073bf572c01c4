//! `GET /api/changes/stream` at the HTTP level (DESIGN §9): Server-Sent
//! Events read off a raw socket, so nothing between the daemon and the
//! test buffers or reconnects.

use oms_core::prelude::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use oms_core::{Actor, ProductRef, Restock};
use serde_json::Value;

use crate::support::{Server, WIDGET};

/// One event of the stream: its `id:` and parsed `data:` (None for a block
/// without data, such as the opening `retry:`/`id:`), or a comment.
#[derive(Debug)]
enum Item {
    Event {
        id: Option<i64>,
        data: Option<Value>,
    },
    Comment(String),
}

/// A client of the event stream over a raw socket (HTTP/1.1, chunked).
struct Sse {
    reader: BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    /// Bytes of the body already de-chunked but not yet parsed.
    body: Vec<u8>,
    ended: bool,
}

impl Sse {
    fn open(server: &Server, query: &str, extra: &[(&str, &str)]) -> Sse {
        let addr = server.base.trim_start_matches("http://");
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut request = format!(
            "GET /api/changes/stream{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n"
        );
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (&stream).write_all(request.as_bytes()).expect("send");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (name, value) = l.split_once(':').expect("a header");
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        Sse {
            reader,
            status,
            headers,
            body: Vec::new(),
            ended: false,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads one chunk of the chunked body; false at its end.
    fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).expect("chunk size") == 0 {
            return false;
        }
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).expect("chunk");
        self.body.extend_from_slice(&chunk[..size]);
        size > 0
    }

    /// The next event or comment; None when the stream ended.
    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(end) = find(&self.body, b"\n\n") {
                let block: Vec<u8> = self.body.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8");
                return Some(parse(&text));
            }
            if self.ended || !self.read_chunk() {
                self.ended = true;
                return None;
            }
        }
    }

    /// The next `n` events with data, skipping comments and data-less blocks.
    fn changes(&mut self, n: usize) -> Vec<(i64, Value)> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next() {
                Some(Item::Event {
                    id: Some(id),
                    data: Some(data),
                }) => out.push((id, data)),
                Some(_) => {}
                None => panic!("the stream ended after {} of {n} changes", out.len()),
            }
        }
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(block: &str) -> Item {
    if let Some(comment) = block.strip_prefix(':') {
        return Item::Comment(comment.trim().to_string());
    }
    let mut id = None;
    let mut data = None;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("a numeric id"));
        } else if let Some(v) = line.strip_prefix("data: ") {
            assert!(data.is_none(), "one data line per event: {block:?}");
            data = Some(serde_json::from_str(v).expect("data is JSON"));
        } else if !line.is_empty() && !line.starts_with("retry: ") {
            panic!("unexpected line {line:?} in {block:?}");
        }
    }
    Item::Event { id, data }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Restocks WIDGET `n` times in one transaction: `n` changes, written by
/// another connection as another process would.
fn restock_many(server: &Server, n: usize) {
    let store = server.store();
    store
        .write(&Actor::system("test"), |tx| {
            let widget = ProductRef::parse(WIDGET)?;
            for _ in 0..n {
                tx.restock(&widget, Restock::Add(1))?;
            }
            Ok(())
        })
        .expect("restock");
}

#[test]
fn opens_after_the_newest_change_with_its_id() {
    let server = Server::start();
    let newest = server.last_seq();
    let mut sse = Sse::open(
        &server,
        "",
        &[("Authorization", &bearer(&server.admin.token))],
    );
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-store"));
    match sse.next() {
        Some(Item::Event { id, data: None }) => assert_eq!(id, Some(newest)),
        other => panic!("expected the opening id, got {other:?}"),
    }
    // Nothing older is replayed; the next change is the next event.
    let order = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let changes = sse.changes(1);
    assert_eq!(changes[0].0, newest + 1);
    assert_eq!(changes[0].1["type"], "order.placed");
    assert_eq!(changes[0].1["seq"], newest + 1);
    assert_eq!(changes[0].1["entity_id"], order["id"]);
    assert_eq!(changes[0].1["data"]["id"], order["id"]);
}

#[test]
fn resumes_after_last_event_id_across_1000_changes_each_once_in_order() {
    let server = Server::start();
    let auth = bearer(&server.admin.token);
    let mut sse = Sse::open(&server, "", &[("Authorization", &auth)]);
    let start = server.last_seq();
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    let seen = sse.changes(1);
    let resume_from = seen[0].0;
    assert_eq!(resume_from, start + 1);
    drop(sse);

    // 1,000 changes while the client is away, then one more through the
    // daemon after it is back.
    restock_many(&server, 1000);
    let mut sse = Sse::open(
        &server,
        // Last-Event-ID wins over ?after=.
        "?after=1",
        &[
            ("Authorization", &auth),
            ("Last-Event-ID", &resume_from.to_string()),
        ],
    );
    let changes = sse.changes(1000);
    let seqs: Vec<i64> = changes.iter().map(|(id, _)| *id).collect();
    let expected: Vec<i64> = (resume_from + 1..=resume_from + 1000).collect();
    assert_eq!(seqs, expected, "every change once, in order");
    for (id, data) in &changes {
        assert_eq!(data["seq"], *id, "id: is the change's seq");
        assert_eq!(data["type"], "product.stock_changed");
    }
    server.place(&server.bob, None, &[(WIDGET, 1)]);
    let live = sse.changes(1);
    assert_eq!(live[0].0, resume_from + 1001);
    assert_eq!(live[0].1["type"], "order.placed");
}

#[test]
fn after_starts_where_it_says_without_last_event_id() {
    let server = Server::start();
    let start = server.last_seq();
    restock_many(&server, 5);
    let mut sse = Sse::open(
        &server,
        &format!("?after={}", start + 2),
        &[("Authorization", &bearer(&server.admin.token))],
    );
    let seqs: Vec<i64> = sse.changes(3).iter().map(|(id, _)| *id).collect();
    assert_eq!(seqs, vec![start + 3, start + 4, start + 5]);
}

#[test]
fn a_customer_sees_only_its_own_changes() {
    let server = Server::start();
    let mut alice = Sse::open(
        &server,
        "?after=0",
        &[("Authorization", &bearer(&server.alice.token))],
    );
    let everything = server
        .store()
        .changes_after(oms_core::Seq(0), 100_000, None);
    let own_before = everything
        .expect("changes")
        .iter()
        .filter(|c| c.customer_id.map(|c| c.get()) == Some(server.alice.customer_id()))
        .count();
    let bobs = server.place(&server.bob, None, &[(WIDGET, 1)]);
    restock_many(&server, 3);
    let hers = server.place(&server.alice, None, &[(WIDGET, 2)]);
    let changes = alice.changes(own_before + 1);
    for (_, change) in &changes {
        assert_ne!(change["entity"], "product", "{change}");
        let is_bobs = change["entity"] == "order" && change["entity_id"] == bobs["id"];
        assert!(!is_bobs, "{change}");
    }
    let last = &changes.last().expect("a change").1;
    assert_eq!(last["type"], "order.placed");
    assert_eq!(last["entity_id"], hers["id"]);
    // Nothing else is queued for her: the next thing is the heartbeat or
    // her next change, never Bob's.
    server.place(&server.bob, None, &[(WIDGET, 1)]);
    let mine = server.place(&server.alice, None, &[(WIDGET, 1)]);
    let next = alice.changes(1);
    assert_eq!(next[0].1["entity_id"], mine["id"]);
}

#[test]
fn an_idle_stream_sends_heartbeat_comments() {
    let server = Server::start_with(|c| c.stream_heartbeat = Duration::from_millis(100));
    let mut sse = Sse::open(
        &server,
        "",
        &[("Authorization", &bearer(&server.admin.token))],
    );
    assert!(matches!(sse.next(), Some(Item::Event { data: None, .. })));
    let started = Instant::now();
    match sse.next() {
        Some(Item::Comment(text)) => assert_eq!(text, "keep-alive"),
        other => panic!("expected a comment, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // And it is still a live stream afterwards.
    server.place(&server.alice, None, &[(WIDGET, 1)]);
    assert_eq!(sse.changes(1)[0].1["type"], "order.placed");
}

#[test]
fn streams_need_a_token_and_count_against_the_waiter_cap() {
    let server = Server::start_with(|c| c.max_waiters = 2);
    let none = Sse::open(&server, "", &[]);
    assert_eq!(none.status, 401);
    let bad = Sse::open(
        &server,
        "",
        &[
            ("Last-Event-ID", "x"),
            ("Authorization", &bearer(&server.admin.token)),
        ],
    );
    assert_eq!(bad.status, 400);
    let auth = bearer(&server.admin.token);
    let mut one = Sse::open(&server, "", &[("Authorization", &auth)]);
    let mut two = Sse::open(&server, "", &[("Authorization", &auth)]);
    assert_eq!((one.status, two.status), (200, 200));
    one.next();
    two.next();
    let three = Sse::open(&server, "", &[("Authorization", &auth)]);
    assert_eq!(three.status, 503);
    assert!(three.header("retry-after").is_some());
    // A closed stream gives its slot back.
    drop(one);
    crate::support::wait_until(Duration::from_secs(5), "the slot to free", || {
        Sse::open(&server, "", &[("Authorization", &auth)]).status == 200
    });
}

#[test]
fn shutdown_ends_open_streams_at_once() {
    let server = Server::start();
    let auth = bearer(&server.admin.token);
    let mut streams: Vec<Sse> = (0..3)
        .map(|_| Sse::open(&server, "", &[("Authorization", &auth)]))
        .collect();
    for s in &mut streams {
        s.next();
    }
    let started = Instant::now();
    let stopping = std::thread::spawn(move || drop(server));
    for mut s in streams {
        while let Some(item) = s.next() {
            assert!(matches!(item, Item::Comment(_)), "{item:?}");
        }
    }
    stopping.join().expect("the server stops");
    // Well inside the 3 s grace period of the test server: the streams
    // were released, not cut off when the grace ran out.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_session_cookie_authenticates_the_stream() {
    let server = Server::start();
    let login = server
        .post("/auth/session")
        .header("Origin", &server.base)
        .json(&serde_json::json!({"email": crate::support::ALICE_EMAIL, "password": crate::support::PASSWORD}))
        .send();
    login.expect_status(200);
    let cookie = login
        .header("set-cookie")
        .expect("a session cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let mut sse = Sse::open(&server, "", &[("Cookie", &cookie)]);
    assert_eq!(sse.status, 200);
    sse.next();
    let hers = server.place(&server.alice, None, &[(WIDGET, 1)]);
    assert_eq!(sse.changes(1)[0].1["entity_id"], hers["id"]);
}
