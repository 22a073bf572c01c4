//! The harness: a daemon booted in-process on `127.0.0.1:0` over a seeded
//! temporary database, a blocking HTTP client, and small helpers to poll
//! with a deadline and to forge tokens.
//!
//! The database comes from `oms_testdb::TestDb::from_env()`: a SQLite file,
//! or with `OMS_TEST_BACKEND=postgres` a PostgreSQL database of its own, so
//! every test here runs on either backend unchanged.
//!
//! Every test gets its own [`Server`]; dropping it sends the shutdown
//! signal, waits for `serve` to return and for the writer to commit, so no
//! test leaks threads or ports into another.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oms_core::prelude::*;
use oms_core::{
    Actor, Currency, Db, Location, NewCustomer, NewProduct, NewUser, Role, Sku, User, parse_email,
};
use oms_daemon::{App, Config};
use oms_testdb::TestDb;
use serde_json::Value;
use ureq::http;

/// The password of every seeded user.
pub const PASSWORD: &str = "correct horse battery staple";
/// The JWT secret the daemon is started with.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef01234567";

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ALICE_EMAIL: &str = "alice@example.com";
pub const BOB_EMAIL: &str = "bob@example.com";
/// A customer record without a login and without orders.
pub const SPARE_EMAIL: &str = "spare@example.com";

/// Seeded products: (sku, price, stock on hand).
pub const WIDGET: &str = "WIDGET";
pub const GADGET: &str = "GADGET";
const PRODUCTS: &[(&str, &str, i64)] = &[(WIDGET, "9.99", 100), (GADGET, "49.99", 10)];

/// One argon2 hash shared by every fixture (hashing costs ~30 ms each).
fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| oms_core::password::hash(PASSWORD).expect("hash the test password"))
        .clone()
}

/// A seeded user and a token minted for it.
#[derive(Debug, Clone)]
pub struct Who {
    pub user: User,
    pub token: String,
    /// The user's token generation at the start (the `gen` claim).
    pub generation: String,
}

impl Who {
    /// The customer record of a customer user.
    pub fn customer_id(&self) -> i64 {
        self.user
            .customer_id
            .expect("a customer user has a customer record")
            .get()
    }
}

/// A running daemon over its own database.
pub struct Server {
    pub base: String,
    pub app: Arc<App>,
    pub agent: ureq::Agent,
    pub admin: Who,
    pub alice: Who,
    pub bob: Who,
    pub spare_customer_id: i64,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Last: the database goes after the daemon has stopped.
    pub database: TestDb,
}

impl Server {
    /// Seeds a database (admin, customers Alice and Bob with logins, a spare
    /// customer, two products) and boots the daemon on it.
    pub fn start() -> Server {
        Server::start_with(|_| {})
    }

    /// Like [`Server::start`] with a chance to change the configuration.
    pub fn start_with(tune: impl FnOnce(&mut Config)) -> Server {
        let database = TestDb::from_env();
        let (admin, alice, bob, spare_customer_id) = seed(&database.location());

        let mut config = Config::new(database.location());
        config.jwt_secret = Some(SECRET.to_string());
        config.external_poll = Duration::from_millis(20);
        config.shutdown_grace = Duration::from_secs(3);
        tune(&mut config);
        let app = App::open(config).expect("open the daemon");

        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&app);
        let thread = std::thread::Builder::new()
            .name("oms-test-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0");
                    ready_tx
                        .send(listener.local_addr().expect("local address"))
                        .expect("report the address");
                    oms_daemon::serve(listener, Arc::clone(&serving), async {
                        shutdown_rx.await.ok();
                    })
                    .await
                    .expect("serve");
                });
                serving.close();
            })
            .expect("spawn the server thread");
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server reports its address");

        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let grants = open_db(&database.location());
        let mint = |user: User| {
            let grant = grants
                .token_grant(user.id)
                .expect("read the grant")
                .expect("the user exists");
            let (token, _) = app
                .keys()
                .mint(&grant, Duration::from_secs(600))
                .expect("mint a token");
            Who {
                user,
                token,
                generation: grant.generation,
            }
        };
        Server {
            base: format!("http://{addr}"),
            admin: mint(admin),
            alice: mint(alice),
            bob: mint(bob),
            spare_customer_id,
            app,
            agent,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            database,
        }
    }

    /// A second connection to the database, as another process (`oms` on
    /// the command line) would have.
    pub fn store(&self) -> Db {
        open_db(&self.database.location())
    }

    /// The database file, for a test about SQLite itself (which checks
    /// `oms_testdb::sqlite_only` first).
    pub fn db_path(&self) -> &Path {
        self.database
            .sqlite_path()
            .expect("a SQLite-only test: check oms_testdb::sqlite_only first")
    }

    /// Adds a product behind the daemon's back; returns its id.
    pub fn add_product(&self, sku: &str, price: &str, stock: i64) -> i64 {
        add_product(&self.store(), sku, price, stock)
    }

    /// A request to `path` (with its query string).
    pub fn req(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            server: self,
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.req("GET", path)
    }

    pub fn post(&self, path: &str) -> Req<'_> {
        self.req("POST", path)
    }

    pub fn patch(&self, path: &str) -> Req<'_> {
        self.req("PATCH", path)
    }

    pub fn put(&self, path: &str) -> Req<'_> {
        self.req("PUT", path)
    }

    pub fn delete(&self, path: &str) -> Req<'_> {
        self.req("DELETE", path)
    }

    /// Places an order for `who` (a customer places for itself; for the
    /// admin, pass the customer) and returns the created order.
    pub fn place(&self, who: &Who, customer: Option<i64>, items: &[(&str, i64)]) -> Value {
        let reply = self
            .post("/api/orders")
            .token(&who.token)
            .json(&order_body(customer, items))
            .send();
        reply.expect_status(201);
        reply.json()
    }

    /// The newest change-log seq.
    pub fn last_seq(&self) -> i64 {
        self.store().last_seq().expect("last seq").get()
    }

    /// A metric's value from `/metrics` (the first sample of that name).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").send().body;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok())?
        })
    }

    /// Blocks until `count` long-poll requests are parked in the feed.
    pub fn wait_for_waiters(&self, count: usize) {
        wait_until(Duration::from_secs(10), "long-poll waiters to park", || {
            self.metric("oms_feed_waiters") == Some(count as f64)
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic there has been reported by the test already.
            let _ = thread.join();
        }
    }
}

/// Opens (creating if needed) the database at `location`, as another
/// process (`oms` on the command line) would.
pub fn open_db(location: &Location) -> Db {
    Db::open(location).unwrap_or_else(|e| panic!("open the database {location}: {e}"))
}

/// The body of `POST /api/orders`.
pub fn order_body(customer: Option<i64>, items: &[(&str, i64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, quantity)| serde_json::json!({"sku": sku, "quantity": quantity}))
        .collect();
    let mut body = serde_json::json!({ "items": items });
    if let Some(customer) = customer {
        body["customer_id"] = customer.into();
    }
    body
}

fn seed(location: &Location) -> (User, User, User, i64) {
    let store = open_db(location);
    for (sku, price, stock) in PRODUCTS {
        add_product(&store, sku, price, *stock);
    }
    let hash = password_hash();
    store
        .write(&Actor::cli(), |tx| {
            let user = |email: &str, name: &str, role| NewUser {
                email: email.to_string(),
                name: name.to_string(),
                role,
                password_hash: Some(hash.clone()),
            };
            let admin = tx.add_user(&user(ADMIN_EMAIL, "Ada Admin", Role::Admin))?;
            let alice = tx.add_user(&user(ALICE_EMAIL, "Alice", Role::Customer))?;
            let bob = tx.add_user(&user(BOB_EMAIL, "Bob", Role::Customer))?;
            let spare = tx.add_customer(&NewCustomer {
                name: "Spare".into(),
                email: parse_email(SPARE_EMAIL)?,
                phone: None,
            })?;
            Ok((admin, alice, bob, spare.id.get()))
        })
        .expect("seed users")
}

fn add_product(store: &Db, sku: &str, price: &str, stock: i64) -> i64 {
    store
        .write(&Actor::cli(), |tx| {
            let product = tx.add_product(&NewProduct {
                sku: Sku::parse(sku)?,
                name: format!("{sku} product"),
                price: Currency::USD.parse_amount(price)?,
                stock_on_hand: stock,
                active: true,
            })?;
            Ok(product.id.get())
        })
        .expect("add a product")
}

/// A request being built.
pub struct Req<'a> {
    server: &'a Server,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A token, or none for `None`.
    pub fn maybe_token(self, token: Option<&str>) -> Self {
        match token {
            Some(t) => self.token(t),
            None => self,
        }
    }

    pub fn json(self, body: &Value) -> Self {
        let bytes = serde_json::to_vec(body).expect("encode JSON");
        self.header("content-type", "application/json").raw(bytes)
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn send(self) -> Reply {
        let url = format!("{}{}", self.server.base, self.path);
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(&url);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let what = format!("{} {}", self.method, self.path);
        let response = match self.body {
            Some(body) => self
                .server
                .agent
                .run(builder.body(body).expect("build the request")),
            None => self
                .server
                .agent
                .run(builder.body(()).expect("build the request")),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{what}: transport error: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{what}: cannot read the body: {e}"));
        Reply {
            what,
            status,
            headers,
            body,
        }
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Reply {
    pub what: String,
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.what, self.body))
    }

    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{} answered {} (expected {status}): {}",
            self.what, self.status, self.body
        );
        self
    }

    /// Asserts an RFC 9457 problem with `status` and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        self.expect_status(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}: problem content type",
            self.what
        );
        let body = self.json();
        for field in ["type", "title", "detail"] {
            assert!(
                body[field].is_string(),
                "{}: problem field {field} missing: {body}",
                self.what
            );
        }
        assert_eq!(body["status"], status, "{}: problem status", self.what);
        body
    }
}

/// Polls `check` until it is true, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Base64url without padding (JWT segments).
pub fn b64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes base64url without padding.
pub fn b64url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            other => panic!("not base64url: {other}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
