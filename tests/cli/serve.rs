//! End-to-end tests of `oms serve`: the real binary runs as a daemon on
//! `127.0.0.1:0` against a temporary database and is driven over HTTP
//! (ureq), side by side with separate `oms` processes on the same database
//! (DESIGN.md §1, §6, §8).
//!
//! Every daemon lives in a [`Server`] whose `Drop` kills it, so a failing
//! test never leaks a process.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{CONFLICT, Db, INTERNAL, NOT_FOUND, OK, n, oms_bin, s};

/// A 40-byte `OMS_JWT_SECRET`, shared by the daemon and `oms token create`.
const SECRET: &str = "serve-tests-secret-0123456789abcdefghijk";

/// How long the daemon may take to print its address.
const STARTUP: Duration = Duration::from_secs(10);

/// The administrator every test that needs a token creates.
const ADMIN: &str = "admin@x.io";

/// A running `oms serve`, killed on drop.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    base: String,
    /// Stderr lines, read by a thread that drains the pipe until it closes.
    lines: Receiver<String>,
    /// Every stderr line received so far.
    seen: Vec<String>,
}

impl Server {
    /// Starts `oms --db DB serve --listen 127.0.0.1:0 EXTRA...` and waits
    /// (with a deadline) for the line that names its address.
    fn start(db: &Db, extra: &[&str]) -> Server {
        Server::start_with_env(db, extra, &[])
    }

    /// [`Server::start`] with more environment variables set.
    pub(crate) fn start_with_env(db: &Db, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = serve_command(db, SECRET)
            .envs(env.iter().copied())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oms serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        // Keep draining after startup so the daemon never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The receiver may be gone (test over); keep draining anyway.
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            lines,
            seen: Vec::new(),
        };
        let ready = server.wait_line(|l| l.starts_with("oms serving http://"), STARTUP);
        let address = ready
            .strip_prefix("oms serving http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("cannot read the address from {ready:?}"))
            .to_string();
        assert!(
            address.starts_with("127.0.0.1:"),
            "listens on loopback only: {ready}"
        );
        server.base = format!("http://{address}");
        server
    }

    /// `base` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Returns the first stderr line (already seen or arriving before
    /// `timeout`) that matches `pred`; panics with the log otherwise.
    fn wait_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching stderr line in {timeout:?}:\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "oms serve closed stderr (exit {status:?}) before the expected line:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Everything the daemon has written on stderr so far.
    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// `kill -9`: the daemon dies at once, mid-whatever; waits for it.
    pub(crate) fn kill_hard(&mut self) {
        self.child.kill().expect("SIGKILL oms serve");
        self.child.wait().expect("reap oms serve");
    }

    /// Sends SIGTERM (through `kill`, no libc).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits up to `timeout` for the daemon to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll oms serve") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Harmless if it already exited; reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `oms --db DB serve --listen 127.0.0.1:0` with a clean environment and
/// `OMS_JWT_SECRET=secret`.
fn serve_command(db: &Db, secret: &str) -> Command {
    let mut cmd = Command::new(oms_bin());
    cmd.env_remove("OMS_DB")
        .env_remove("OMS_LISTEN")
        .env_remove("OMS_LOG_FORMAT")
        .env_remove("OMS_SMTP_URL")
        .env("OMS_JWT_SECRET", secret)
        .env("OMS_LOG", "warn")
        .current_dir(db.dir())
        .arg("--db")
        .arg(db.location())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    cmd
}

/// Runs `oms ARGS` on `db` with the tests' JWT secret.
fn oms(db: &Db, args: &[&str]) -> Output {
    db.cmd(args)
        .env("OMS_JWT_SECRET", SECRET)
        .timeout(Duration::from_secs(30))
        .output()
        .expect("run oms")
}

/// Creates the administrator and mints a token for it with the CLI.
fn admin_token(db: &Db) -> String {
    db.ok(&[
        "user", "add", "--email", ADMIN, "--name", "Admin", "--role", "admin",
    ]);
    let out = oms(db, &["token", "create", "--email", ADMIN]);
    assert_eq!(
        out.status.code(),
        Some(OK),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("token is UTF-8")
        .trim()
        .to_string()
}

/// An HTTP client that hands back 4xx/5xx answers instead of errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// One HTTP answer: status and body (JSON, or `Null` when empty/not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    text: String,
}

fn reply(mut response: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Reply { status, body, text })
}

fn get(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Result<Reply, ureq::Error> {
    let mut req = agent.get(url);
    if let Some(token) = token {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    reply(req.call()?)
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
    body: &Value,
) -> Result<Reply, ureq::Error> {
    let mut req = agent.post(url);
    if let Some(token) = token {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    if let Some(key) = idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    reply(req.send_json(body)?)
}

/// True when a message reports SQLite lock contention.
fn mentions_lock(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("database is locked") || lower.contains("busy")
}

#[test]
fn serve_demo_prints_the_admin_login_that_works() {
    let db = Db::empty();
    let mut server = Server::start(&db, &["--demo"]);
    let creds = server.wait_line(
        |l| l.contains("admin@example.com") && l.contains("demo-admin-password"),
        STARTUP,
    );
    assert!(creds.contains("demo admin"), "credentials line: {creds}");

    let agent = agent();
    let login = post(
        &agent,
        &server.url("/auth/login"),
        None,
        None,
        &json!({"email": "admin@example.com", "password": "demo-admin-password"}),
    )
    .expect("login");
    assert_eq!(login.status, 200, "login: {}", login.text);
    assert_eq!(s(&login.body, "role"), "admin");
    let token = s(&login.body, "token");

    let products = get(&agent, &server.url("/api/products"), Some(token)).expect("products");
    assert_eq!(products.status, 200, "products: {}", products.text);
    let items = products.body["items"].as_array().expect("items array");
    assert_eq!(items.len(), 12, "the demo catalogue: {}", products.text);
}

const RACE_STOCK: i64 = 25;
const HTTP_BUYERS: usize = 40;
const CLI_BUYERS: usize = 10;

#[test]
fn http_and_cli_buyers_racing_for_the_last_units_never_oversell() {
    let db = Db::new();
    db.add_product("RACE", "5.00", RACE_STOCK);
    let customer = db.add_customer("Racer", "racer@example.com");
    let token = admin_token(&db);
    let mut server = Server::start(&db, &[]);
    let url = server.url("/api/orders");
    let agent = agent();

    // The HTTP buyers wait at a barrier; the CLI buyers are spawned first
    // (a process takes milliseconds to reach the database), then the HTTP
    // buyers are released, so both faces hit the last units together.
    let barrier = Arc::new(Barrier::new(HTTP_BUYERS + 1));
    let http_buyers: Vec<_> = (0..HTTP_BUYERS)
        .map(|_| {
            let (agent, url, token, barrier) = (
                agent.clone(),
                url.clone(),
                token.clone(),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                let body = json!({
                    "customer_id": customer,
                    "items": [{"sku": "RACE", "quantity": 1}],
                });
                barrier.wait();
                post(&agent, &url, Some(&token), None, &body).map_err(|e| e.to_string())
            })
        })
        .collect();
    let cli_buyers: Vec<_> = (0..CLI_BUYERS)
        .map(|_| {
            db.std_cmd(&[
                "order",
                "place",
                "--customer",
                "racer@example.com",
                "--item",
                "RACE:1",
                "-q",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oms order place")
        })
        .collect();
    barrier.wait();

    let mut order_ids = BTreeSet::new();
    let mut http_sold = 0;
    for buyer in http_buyers {
        let answer = buyer
            .join()
            .expect("buyer thread")
            .unwrap_or_else(|e| panic!("HTTP buyer failed: {e}"));
        assert!(!mentions_lock(&answer.text), "locked: {}", answer.text);
        match answer.status {
            201 => {
                http_sold += 1;
                assert!(order_ids.insert(n(&answer.body, "id")), "duplicate id");
            }
            409 => {}
            other => panic!("HTTP buyer got {other}: {}", answer.text),
        }
    }
    let mut cli_sold = 0;
    for buyer in cli_buyers {
        let out = buyer.wait_with_output().expect("wait for oms");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!mentions_lock(&stderr), "a CLI buyer hit a lock: {stderr}");
        match out.status.code() {
            Some(OK) => {
                cli_sold += 1;
                let id = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<i64>()
                    .expect("order id on stdout");
                assert!(order_ids.insert(id), "duplicate id {id}");
            }
            Some(CONFLICT) => {}
            other => panic!("CLI buyer exited {other:?}: {stderr}"),
        }
    }
    assert_eq!(
        http_sold + cli_sold,
        RACE_STOCK,
        "sold exactly the stock ({http_sold} over HTTP, {cli_sold} by CLI)"
    );
    let log = server.log();
    assert!(!mentions_lock(&log), "daemon log mentions a lock:\n{log}");

    let product = db.product("RACE");
    assert_eq!(n(&product, "stock_reserved"), RACE_STOCK);
    assert_eq!(n(&product, "stock_available"), 0);
    db.assert_verifies();
}

#[test]
fn long_poll_wakes_on_a_write_by_another_process() {
    let db = Db::new();
    let product_id = db.add_product("WAKE", "2.00", 5);
    let token = admin_token(&db);
    let after = db
        .changes()
        .last()
        .map(|c| n(c, "seq"))
        .expect("the setup wrote changes");
    let server = Server::start(&db, &[]);
    let agent = agent();

    let poll_url = server.url(&format!("/api/changes?after={after}&wait=10"));
    let poller = {
        let (agent, token) = (agent.clone(), token.clone());
        thread::spawn(move || {
            let started = Instant::now();
            let answer = get(&agent, &poll_url, Some(&token)).map_err(|e| e.to_string());
            (answer, started.elapsed())
        })
    };

    // Write only once the request is parked on the feed.
    let metrics = server.url("/metrics");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = get(&agent, &metrics, None).expect("metrics");
        assert_eq!(m.status, 200, "metrics: {}", m.text);
        if m.text.lines().any(|l| l.trim() == "oms_feed_waiters 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the long poll never started waiting:\n{}",
            m.text
        );
        thread::sleep(Duration::from_millis(10));
    }
    db.ok(&["product", "restock", "WAKE", "--add", "1"]);

    let (answer, elapsed) = poller.join().expect("poller thread");
    let answer = answer.unwrap_or_else(|e| panic!("long poll failed: {e}"));
    assert_eq!(answer.status, 200, "long poll: {}", answer.text);
    assert!(
        elapsed < Duration::from_secs(5),
        "woken after {elapsed:?}, not promptly"
    );
    let changes = answer.body["changes"].as_array().expect("changes array");
    let stock = changes
        .iter()
        .find(|c| c["type"] == "product.stock_changed")
        .unwrap_or_else(|| panic!("no product.stock_changed in {}", answer.text));
    assert_eq!(n(stock, "entity_id"), product_id);
    assert!(changes.iter().all(|c| n(c, "seq") > after), "only newer");
    let last = changes.last().expect("non-empty");
    assert_eq!(n(&answer.body, "next"), n(last, "seq"));
}

const LOAD_THREADS: usize = 8;
const ACKED_BEFORE_TERM: usize = 100;

#[test]
fn sigterm_under_load_keeps_every_acknowledged_order() {
    let db = Db::new();
    db.add_product("BULK", "1.00", 1_000_000);
    let customer = db.add_customer("Bulk", "bulk@example.com");
    let token = admin_token(&db);
    let mut server = Server::start(&db, &[]);
    let url = server.url("/api/orders");
    let agent = agent();

    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let term_sent = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let load_deadline = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = (0..LOAD_THREADS)
        .map(|worker| {
            let (agent, url, token) = (agent.clone(), url.clone(), token.clone());
            let (acked, problems) = (Arc::clone(&acked), Arc::clone(&problems));
            let (term_sent, stop) = (Arc::clone(&term_sent), Arc::clone(&stop));
            thread::spawn(move || {
                let body = json!({
                    "customer_id": customer,
                    "items": [{"sku": "BULK", "quantity": 1}],
                });
                for i in 0..10_000 {
                    if stop.load(Ordering::Acquire) || Instant::now() >= load_deadline {
                        break;
                    }
                    let key = format!("sigterm-{worker}-{i}");
                    // Read the flag before sending: a failure is excused only
                    // if the signal was already on its way.
                    let shutting_down = term_sent.load(Ordering::Acquire);
                    match post(&agent, &url, Some(&token), Some(&key), &body) {
                        Ok(answer) if answer.status == 201 => {
                            acked.lock().unwrap().push(n(&answer.body, "id"));
                        }
                        Ok(answer) if answer.status == 503 && shutting_down => break,
                        Ok(answer) => {
                            problems.lock().unwrap().push(format!(
                                "{} (shutting down: {shutting_down}): {}",
                                answer.status, answer.text
                            ));
                            break;
                        }
                        Err(_) if term_sent.load(Ordering::Acquire) => break,
                        Err(e) => {
                            problems
                                .lock()
                                .unwrap()
                                .push(format!("before SIGTERM: {e}"));
                            break;
                        }
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.lock().unwrap().len() < ACKED_BEFORE_TERM {
        if Instant::now() >= deadline || !problems.lock().unwrap().is_empty() {
            stop.store(true, Ordering::Release);
            panic!(
                "only {} orders acknowledged; problems: {:?}",
                acked.lock().unwrap().len(),
                problems.lock().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    term_sent.store(true, Ordering::Release);
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(10));
    stop.store(true, Ordering::Release);
    for worker in workers {
        worker.join().expect("load thread");
    }
    let log = server.log();
    let status = status.unwrap_or_else(|| panic!("no exit 10 s after SIGTERM:\n{log}"));
    assert_eq!(
        status.code(),
        Some(OK),
        "exit after SIGTERM: {status}\n{log}"
    );

    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "unexpected answers: {problems:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_TERM);
    let unique: BTreeSet<i64> = acked.iter().copied().collect();
    assert_eq!(unique.len(), acked.len(), "every 201 is its own order");
    let stored: BTreeSet<i64> = db
        .ids(&["order", "list", "--limit", "0"])
        .into_iter()
        .collect();
    let lost: Vec<_> = unique.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged orders missing after shutdown: {lost:?}"
    );
    db.assert_verifies();
}

#[test]
fn cli_token_is_accepted_by_the_daemon() {
    let db = Db::new();
    db.ok(&[
        "user", "add", "--email", ADMIN, "--name", "Admin", "--role", "admin",
    ]);
    let out = oms(&db, &["token", "create", "--email", ADMIN, "--ttl", "1h"]);
    assert_eq!(
        out.status.code(),
        Some(OK),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).expect("UTF-8");
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let server = Server::start(&db, &[]);
    let agent = agent();
    let orders = get(&agent, &server.url("/api/orders"), Some(token)).expect("orders");
    assert_eq!(orders.status, 200, "with the token: {}", orders.text);
    assert!(orders.body["items"].is_array(), "a list: {}", orders.text);
    let anonymous = get(&agent, &server.url("/api/orders"), None).expect("orders");
    assert_eq!(anonymous.status, 401, "without a token: {}", anonymous.text);

    let out = oms(&db, &["token", "create", "--email", "nobody@x.io"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(NOT_FOUND), "unknown user: {stderr}");
    assert!(stderr.starts_with("error: "), "error line: {stderr}");
    assert!(out.stdout.is_empty(), "no token printed");
}

#[test]
fn weak_jwt_secret_refuses_to_serve() {
    let db = Db::new();
    let out = assert_cmd::Command::from_std(serve_command(&db, "short"))
        .timeout(Duration::from_secs(10))
        .output()
        .expect("run oms serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(INTERNAL), "exit: {stderr}");
    assert!(
        stderr.contains("OMS_JWT_SECRET"),
        "names the variable: {stderr}"
    );
    assert!(!stderr.contains("oms serving"), "must not serve: {stderr}");
}

/// Reads an event stream's raw bytes until `pred` holds for what was read
/// so far, or the stream ends; answers everything read.
fn read_stream_until(stream: &mut std::net::TcpStream, pred: impl Fn(&str) -> bool) -> String {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if pred(&String::from_utf8_lossy(&seen)) {
                    break;
                }
            }
            Err(e) => panic!(
                "reading the stream: {e}\n{}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn event_streams_see_other_processes_and_end_on_sigterm() {
    use std::io::Write;
    let db = Db::new();
    db.add_product("SSE", "2.00", 5);
    let token = admin_token(&db);
    let mut server = Server::start(&db, &[]);
    let addr = server
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/changes/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("send");
    let opened = read_stream_until(&mut stream, |s| s.contains("retry: "));
    assert!(opened.starts_with("HTTP/1.1 200"), "{opened}");
    assert!(opened.contains("text/event-stream"), "{opened}");

    // A write by another process reaches the open stream.
    db.ok(&["product", "restock", "SSE", "--add", "1"]);
    let event = read_stream_until(&mut stream, |s| s.contains("product.stock_changed"));
    assert!(event.contains("\nid: "), "{event}");

    // SIGTERM ends the stream (the chunked body's last chunk) and the
    // daemon exits 0 well within its grace period.
    let started = Instant::now();
    server.terminate();
    let rest = read_stream_until(&mut stream, |s| s.ends_with("0\r\n\r\n"));
    assert!(
        rest.ends_with("0\r\n\r\n"),
        "the stream was not ended cleanly: {rest:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", server.log()));
    assert!(status.success(), "exit {status}:\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "streams held the shutdown for {:?}",
        started.elapsed()
    );
}

/// Mints a token for `email` with `oms token create`.
fn token_for(db: &Db, email: &str) -> String {
    let out = oms(db, &["token", "create", "--email", email]);
    assert_eq!(
        out.status.code(),
        Some(OK),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("token is UTF-8")
        .trim()
        .to_string()
}

/// A removed user, a changed password and a changed role each end every
/// token issued before, at once, though the change is made by another
/// process (`oms user ...`) while the daemon serves.
#[test]
fn user_remove_passwd_and_role_change_end_earlier_tokens_at_once() {
    let db = Db::new();
    let removed = "gone@example.com";
    let rotated = "rotated@example.com";
    let demoted = "demoted@example.com";
    for email in [removed, rotated, demoted] {
        db.ok(&[
            "user", "add", "--email", email, "--name", "N", "--role", "admin",
        ]);
    }
    let tokens: Vec<String> = [removed, rotated, demoted]
        .iter()
        .map(|email| token_for(&db, email))
        .collect();
    let server = Server::start(&db, &[]);
    let agent = agent();
    let create = |token: &str, sku: &str| {
        post(
            &agent,
            &server.url("/api/products"),
            Some(token),
            None,
            &serde_json::json!({"sku": sku, "name": "Widget", "price": "1.00"}),
        )
        .expect("create a product")
    };
    for (n, token) in tokens.iter().enumerate() {
        let made = create(token, &format!("BEFORE-{n}"));
        assert_eq!(made.status, 201, "before the change: {}", made.text);
    }

    db.ok(&["user", "remove", removed]);
    let passwd = db.run_stdin(
        &["user", "passwd", rotated, "--password-stdin"],
        "a-new-long-passphrase\n",
    );
    assert_eq!(passwd.code, OK, "passwd: {}", passwd.stderr);
    db.ok(&["user", "update", demoted, "--role", "customer"]);

    for (n, token) in tokens.iter().enumerate() {
        let refused = create(token, &format!("AFTER-{n}"));
        assert_eq!(
            refused.status, 401,
            "token {n} after the change: {}",
            refused.text
        );
        let list = get(&agent, &server.url("/api/orders"), Some(token)).expect("list");
        assert_eq!(list.status, 401, "token {n} on a read: {}", list.text);
    }
    // Nothing was created after the change, and nothing credits a user
    // that no longer exists.
    let skus: Vec<String> = db
        .json(&["product", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| s(p, "sku").to_string())
        .collect();
    assert!(!skus.iter().any(|s| s.starts_with("AFTER")), "{skus:?}");

    // Tokens issued after the change work with the new grant.
    let fresh = token_for(&db, rotated);
    assert_eq!(create(&fresh, "AFTER-FRESH").status, 201);
    let demoted_now = token_for(&db, demoted);
    let as_customer = create(&demoted_now, "AFTER-DEMOTED");
    assert_eq!(
        as_customer.status, 403,
        "now a customer: {}",
        as_customer.text
    );
}

/// A tmpfs of `mib` MiB mounted on `dir`, unmounted on drop.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts it, or says why not (not root, no mount permission) and
    /// returns `None`.
    fn mount(dir: &std::path::Path, mib: u32) -> Option<SmallDisk> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk {
                dir: dir.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a small tmpfs here ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount ({e})");
                None
            }
        }
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        // Small writes take what the large ones left.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// With the database's filesystem full, every HTTP write is refused with
/// a 503 problem that names the cause and says when to retry, `/healthz`
/// says writes are failing, `/metrics` counts them, the daemon logs the
/// episode once (not per request), the CLI says the disk is full, and all
/// of it recovers the moment space comes back, with nothing lost.
#[test]
fn a_full_disk_is_reported_honestly_and_recovers() {
    if !oms_testdb::sqlite_only("fills the tmpfs that holds the SQLite file") {
        return;
    }
    let db = Db::empty();
    let Some(disk) = SmallDisk::mount(db.dir(), 6) else {
        return;
    };
    db.ok(&["init"]);
    db.ok(&[
        "product", "add", "--sku", "W", "--name", "Widget", "--price", "1.00", "--stock", "1000000",
    ]);
    db.ok(&["customer", "add", "--name", "C", "--email", "c@x.io"]);
    let token = admin_token(&db);
    let mut server = Server::start(&db, &[]);
    let agent = agent();
    let place = |n: usize| {
        post(
            &agent,
            &server.url("/api/orders"),
            Some(&token),
            Some(&format!("disk-{n}")),
            &json!({"customer_id": 1, "items": [{"sku": "W", "quantity": 1}]}),
        )
        .expect("place")
    };
    let mut acknowledged: Vec<i64> = Vec::new();
    for attempt in 0..20 {
        let reply = place(attempt);
        assert_eq!(reply.status, 201, "before the disk is full: {}", reply.text);
        acknowledged.push(n(&reply.body, "id"));
    }

    let filler = disk.fill();
    let mut refused = 0;
    let mut refusal = None;
    for attempt in 20..2020 {
        let reply = place(attempt);
        match reply.status {
            201 => acknowledged.push(n(&reply.body, "id")),
            503 => {
                refused += 1;
                refusal = Some(reply);
                if refused >= 20 {
                    break;
                }
            }
            other => panic!("a write on a full disk answered {other}: {}", reply.text),
        }
    }
    let refusal = refusal.expect("writes on a full disk were refused");
    assert_eq!(refusal.body["status"], 503);
    let detail = s(&refusal.body, "detail");
    assert!(
        detail.contains("disk") && detail.contains("full"),
        "{detail}"
    );

    let mut req = agent.get(&server.url("/healthz"));
    req = req.header("accept", "application/json");
    let health = reply(req.call().expect("healthz")).expect("healthz body");
    assert_eq!(health.status, 503, "healthz while full: {}", health.text);
    assert_eq!(health.body["writes"], "failing", "{}", health.text);
    let metrics = get(&agent, &server.url("/metrics"), None)
        .expect("metrics")
        .text;
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("oms_write_failures_total{cause=\"storage_full\"}"))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        counted >= refused as f64,
        "metrics count {counted} < {refused}:\n{metrics}"
    );

    // A commit that fits in WAL space already allocated still succeeds (the
    // WAL is reused from its start once it was copied back); the first one
    // that needs room fails, and says why.
    let mut cli_refusal = None;
    for _ in 0..200 {
        let cli = db.run(&[
            "order",
            "place",
            "--customer",
            "c@x.io",
            "--item",
            "W:1",
            "-q",
        ]);
        if cli.code == OK {
            acknowledged.push(cli.stdout.trim().parse().expect("an order id"));
            continue;
        }
        cli_refusal = Some(cli);
        break;
    }
    let cli = cli_refusal.expect("the CLI was refused on a full disk");
    assert_eq!(cli.code, INTERNAL, "CLI on a full disk: {}", cli.stderr);
    assert!(
        cli.stderr.contains("disk") && cli.stderr.contains("full"),
        "{}",
        cli.stderr
    );

    // Space comes back: the next write succeeds without a restart.
    std::fs::remove_file(&filler).expect("free the space");
    let back = place(5000);
    assert_eq!(back.status, 201, "after space came back: {}", back.text);
    acknowledged.push(n(&back.body, "id"));
    let health = get(&agent, &server.url("/healthz"), None).expect("healthz");
    assert_eq!(
        health.status, 200,
        "healthz after recovery: {}",
        health.text
    );
    server.wait_line(|l| l.contains("writes succeed again"), STARTUP);
    let log = server.log();
    let episodes = log.matches("writes are failing").count();
    assert_eq!(
        episodes, 1,
        "one log line for the episode, not one per request:\n{log}"
    );

    server.terminate();
    assert!(server.wait_exit(STARTUP).is_some_and(|s| s.success()));
    for id in &acknowledged {
        assert_eq!(s(&db.order(*id), "status"), "PENDING", "order {id}");
    }
    db.assert_verifies();
}

/// A token whose user cannot be read (the database failing under the
/// daemon) is not answered 401 "invalid token": the client's credentials
/// are fine and it must retry, not log in again. Found by oms-torture
/// pg-restart (every authenticated request answered 401 while PostgreSQL
/// was down); here the users table is taken away under a running daemon.
#[test]
fn a_token_that_cannot_be_checked_is_not_called_invalid() {
    let db = Db::empty();
    db.ok(&["init"]);
    let token = admin_token(&db);
    let server = Server::start(&db, &[]);
    let agent = agent();
    let url = server.url("/api/products");
    assert_eq!(get(&agent, &url, Some(&token)).expect("get").status, 200);

    db.sql("ALTER TABLE users RENAME TO users_away");
    let refused = get(&agent, &url, Some(&token)).expect("get");
    assert!(
        refused.status >= 500,
        "a token that cannot be checked answered {}: {}",
        refused.status,
        refused.text
    );
    assert_eq!(refused.body["status"], refused.status, "{}", refused.text);

    db.sql("ALTER TABLE users_away RENAME TO users");
    assert_eq!(get(&agent, &url, Some(&token)).expect("get").status, 200);
}
