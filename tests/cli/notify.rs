//! `oms notify` and the daemon's dispatcher, end to end with the real
//! binary and a fake SMTP server (`oms-mailsink`) on 127.0.0.1:0
//! (DESIGN §7): list, send and retry with their exit codes; two
//! dispatchers (the daemon's and `oms notify send` in a loop) on one
//! database never send a row at the same time; `kill -9` of the daemon
//! mid-send loses nothing.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use oms_mailsink::{Action, Message, Sink, duplicates, overlapping};
use serde_json::Value;

use crate::serve::Server;
use crate::support::{CONFLICT, Db, INTERNAL, NOT_FOUND, OK, USAGE, s};

/// A shop with one product, one customer and `orders` PENDING orders
/// (placed by one `oms order import`): one queued mail each.
fn shop(orders: usize) -> Db {
    let db = Db::new();
    db.add_product("MUG", "4.50", 10_000_000);
    db.add_customer("Ada", "ada@example.com");
    if orders > 0 {
        let mut csv = String::from("order_ref,customer_email,sku,quantity\n");
        for n in 1..=orders {
            csv.push_str(&format!("r{n},ada@example.com,MUG,1\n"));
        }
        let file = db.file("orders.csv", &csv);
        db.ok(&["order", "import", &file]);
    }
    db
}

/// The environment of a dispatcher delivering to `sink`, with short
/// timeouts and retries so that tests finish quickly.
fn mail_env(sink: &Sink, timeout: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OMS_SMTP_URL", sink.url()),
        ("OMS_MAIL_FROM", "Shop <shop@example.com>".to_string()),
        ("OMS_PUBLIC_URL", "https://shop.example".to_string()),
        ("OMS_SMTP_TIMEOUT", timeout.to_string()),
        ("OMS_MAIL_RETRY_AFTER", "100ms".to_string()),
    ]
}

/// `oms ARGS` with the mail environment.
fn run_with(db: &Db, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    db.cmd(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run oms")
}

/// `oms notify send --format json` with `env`: (exit code, report, stderr).
fn send(db: &Db, env: &[(&str, String)]) -> (i32, Value, String) {
    let out = run_with(db, env, &["notify", "send", "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every outbox row.
fn rows(db: &Db) -> Vec<Value> {
    db.json(&["notify", "list", "--limit", "0"])
        .as_array()
        .expect("a JSON array")
        .clone()
}

fn pending(db: &Db) -> usize {
    db.ids(&["notify", "list", "--status", "pending", "--limit", "0"])
        .len()
}

/// The row id inside `<notification-ID.SHOP@domain>`.
fn row_of(message: &Message) -> i64 {
    message
        .message_id()
        .and_then(|m| {
            m.strip_prefix("<notification-")?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("not an oms Message-ID: {:?}", message.message_id()))
}

fn n(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {report}"))
}

#[test]
fn notify_send_needs_a_mail_server_and_a_sender() {
    let db = shop(1);
    let err = db.fails(&["notify", "send"], USAGE);
    assert!(err.contains("OMS_SMTP_URL"), "{err}");
    let out = db
        .cmd(&["notify", "send"])
        .env("OMS_SMTP_URL", "smtp://127.0.0.1:25?tls=none")
        .env_remove("OMS_MAIL_FROM")
        .output()
        .expect("run oms");
    assert_eq!(out.status.code(), Some(USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OMS_MAIL_FROM"));
    let out = db
        .cmd(&["notify", "send"])
        .env("OMS_SMTP_URL", "http://mail.example")
        .env("OMS_MAIL_FROM", "shop@example.com")
        .output()
        .expect("run oms");
    assert_eq!(out.status.code(), Some(USAGE));
    // `oms serve` refuses the same settings before it serves.
    let out = db
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .env("OMS_SMTP_URL", "smtps://mail.example?tls=none")
        .env("OMS_MAIL_FROM", "shop@example.com")
        .timeout(Duration::from_secs(20))
        .output()
        .expect("run oms serve");
    assert_eq!(out.status.code(), Some(USAGE), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("OMS_SMTP_URL"));
    // Nothing was attempted.
    assert_eq!(rows(&db)[0]["attempts"], 0);
}

#[test]
fn notify_send_list_and_retry_follow_the_contract() {
    // Row 1 is refused for good the first time, row 2 refused for now
    // the first time, row 3 accepted.
    let sink = Sink::with(|m, before| match (row_of(m), before) {
        (1, 0) => Action::Permanent,
        (2, 0) => Action::Temporary,
        _ => Action::Accept,
    })
    .expect("start the sink");
    let env = mail_env(&sink, "5s");
    let db = shop(3);

    let listed = rows(&db);
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r["kind"] == "order.placed"
        && r["status"] == "pending"
        && r["recipient"] == "ada@example.com"));

    let (code, report, stderr) = send(&db, &env);
    assert_eq!(code, OK, "{stderr}");
    assert_eq!(
        (
            n(&report, "due"),
            n(&report, "sent"),
            n(&report, "rescheduled"),
            n(&report, "dead")
        ),
        (3, 1, 1, 1),
        "{report}"
    );
    let dead = db.ids(&["notify", "list", "--status", "dead"]);
    assert_eq!(dead, [1]);
    let row = &rows(&db)[0];
    assert!(s(row, "last_error").contains("550"), "{row}");
    let second = &rows(&db)[1];
    assert_eq!(second["status"], "pending");
    assert!(s(second, "last_error").contains("421"), "{second}");

    // Retry: only a dead row, and an unknown one is not found.
    let revived = db.json(&["notify", "retry", "1"]);
    assert_eq!(revived["status"], "pending");
    assert_eq!(revived["attempts"], 0);
    let err = db.fails(&["notify", "retry", "3"], CONFLICT);
    assert!(err.contains("only dead notifications"), "{err}");
    db.fails(&["notify", "retry", "99"], NOT_FOUND);

    // Send until the retried rows are through (row 2 waits out its backoff).
    let deadline = Instant::now() + Duration::from_secs(30);
    while pending(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "rows still pending: {:?}",
            rows(&db)
        );
        let (code, _, stderr) = send(&db, &env);
        assert_eq!(code, OK, "{stderr}");
        thread::sleep(Duration::from_millis(50));
    }
    let all = rows(&db);
    assert!(all.iter().all(|r| r["status"] == "sent"), "{all:?}");
    let accepted: BTreeSet<i64> = sink.accepted().iter().map(row_of).collect();
    assert_eq!(accepted, BTreeSet::from([1, 2, 3]));
    for row in &all {
        let mid = s(row, "message_id");
        assert!(
            sink.accepted()
                .iter()
                .any(|m| m.message_id().as_deref() == Some(mid)),
            "{mid} never accepted"
        );
    }
    // Nothing due: exit 0 with zeros.
    let (code, report, _) = send(&db, &env);
    assert_eq!((code, n(&report, "due")), (OK, 0));
    // Rows due and none delivered: exit 1 with the reason.
    let refusing = Sink::with(|_, _| Action::Permanent).expect("start the sink");
    db.place("ada@example.com", &["MUG:1"]);
    let (code, report, stderr) = send(&db, &mail_env(&refusing, "5s"));
    assert_eq!(code, INTERNAL, "{report} {stderr}");
    assert_eq!(n(&report, "dead"), 1);
    assert!(
        stderr.starts_with("error: 1 notification(s) were due and none could be delivered")
            && stderr.contains("550"),
        "{stderr}"
    );
}

#[test]
fn two_dispatchers_on_one_database_never_send_a_row_at_the_same_time() {
    const ROWS: usize = 1000;
    // Every 97th row's first delivery loses its connection after DATA:
    // the only Message-IDs that may arrive twice.
    let dropped = |row: i64| row % 97 == 0;
    let sink = Sink::with(move |m, before| {
        if before == 0 && dropped(row_of(m)) {
            Action::DropAfterData
        } else {
            Action::AcceptAfter(Duration::from_millis(1))
        }
    })
    .expect("start the sink");
    let db = Arc::new(shop(ROWS));
    let env = mail_env(&sink, "5s");
    let server_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_with_env(&db, &[], &server_env);

    // `oms notify send` in a loop, as cron would run it, until done.
    let done = Arc::new(AtomicBool::new(false));
    let cron = {
        let (db, env, done) = (Arc::clone(&db), env.clone(), Arc::clone(&done));
        thread::spawn(move || {
            let mut sent = 0;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                let (code, report, stderr) = send(&db, &env);
                assert!(code == OK || code == INTERNAL, "{stderr}");
                sent += report["sent"].as_u64().unwrap_or(0);
            }
            sent
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} rows still pending",
            pending(&db)
        );
        thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::Release);
    let cli_sent = cron.join().expect("the cron loop");
    let daemon_sent = metric(&server, "oms_notifications_total{outcome=\"sent\"}");

    let all = rows(&db);
    assert_eq!(all.len(), ROWS);
    assert!(
        all.iter().all(|r| r["status"] == "sent"),
        "a row did not end sent"
    );
    // Both delivered some; together every row exactly once as recorded.
    assert!(
        cli_sent > 0 && daemon_sent > 0,
        "cli {cli_sent}, daemon {daemon_sent}"
    );
    assert_eq!(cli_sent + daemon_sent, ROWS as u64);

    let messages = sink.messages();
    let accepted: HashSet<String> = sink
        .accepted()
        .iter()
        .filter_map(Message::message_id)
        .collect();
    let expected: HashSet<String> = all.iter().map(|r| s(r, "message_id").to_string()).collect();
    assert_eq!(accepted, expected, "every row delivered");
    let overlaps = overlapping(&messages);
    assert!(
        overlaps.is_empty(),
        "{} Message-ID(s) were being sent by two dispatchers at once, e.g. {:?}",
        overlaps.len(),
        overlaps.first().map(|(a, _)| a.message_id())
    );
    let twice = duplicates(&messages);
    for (mid, count) in &twice {
        let row: i64 = mid
            .trim_start_matches("<notification-")
            .split('.')
            .next()
            .and_then(|r| r.parse().ok())
            .expect("a row id");
        assert!(dropped(row), "{mid} arrived {count} times without a drop");
    }
    assert_eq!(
        twice.len(),
        ROWS / 97,
        "each dropped message came again once"
    );
}

/// A metric's value from the daemon's `/metrics` (loopback needs no token).
fn metric(server: &Server, name: &str) -> u64 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let text = agent
        .get(server.url("/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn kill_9_while_sending_then_restart_loses_no_mail() {
    const ROWS: usize = 400;
    // A slow server: the daemon is always in the middle of sending.
    let sink =
        Sink::with(|_, _| Action::AcceptAfter(Duration::from_millis(10))).expect("start the sink");
    let db = shop(ROWS);
    // A 500 ms timeout makes the lease 5 s: what the killed daemon held
    // comes back that soon.
    let env = mail_env(&sink, "500ms");
    let server_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut first = Server::start_with_env(&db, &[], &server_env);
    sink.wait_for(Duration::from_secs(30), "the daemon to be sending", |m| {
        m.len() >= 40
    });
    first.kill_hard();
    let at_kill = sink.count();
    let left = pending(&db);
    assert!(left > 0, "the kill came after every mail was sent");
    // Rows the dead daemon had claimed are still leased to it.
    let leased = rows(&db)
        .iter()
        .filter(|r| r["status"] == "pending" && r["attempts"] == 1)
        .count();
    assert!(leased > 0, "no row was in flight at the kill");

    let _second = Server::start_with_env(&db, &[], &server_env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} rows still pending after the restart",
            pending(&db)
        );
        thread::sleep(Duration::from_millis(100));
    }
    let all = rows(&db);
    assert_eq!(all.len(), ROWS);
    assert!(
        all.iter().all(|r| r["status"] == "sent"),
        "every row ends sent: {:?}",
        all.iter().find(|r| r["status"] != "sent")
    );
    // At least once: every row's Message-ID reached the server; only
    // what was in flight at the kill may have arrived twice.
    let accepted: HashSet<String> = sink
        .accepted()
        .iter()
        .filter_map(Message::message_id)
        .collect();
    for row in &all {
        assert!(
            accepted.contains(s(row, "message_id")),
            "{row} never arrived"
        );
    }
    let twice = duplicates(&sink.messages());
    assert!(
        twice.len() <= leased,
        "{} duplicates, {leased} rows in flight at the kill ({at_kill} sent before it)",
        twice.len()
    );
    db.assert_verifies();
}
