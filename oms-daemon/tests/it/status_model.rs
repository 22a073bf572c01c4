//! The status machine of DESIGN §4 through HTTP, against a reference model.
//!
//! A property test drives random sequences of place / pay / fulfil / cancel
//! (by the admin and by customers, on their own and on others' orders) /
//! edit / expire (by another connection, as `oms order expire` from cron
//! would) through a daemon on 127.0.0.1:0. After every step the answer's
//! status code, every order's status and items, both products' stock and
//! the order changes appended to `/api/changes` must be what the model
//! says; refused moves must be RFC 9457 problems with the documented code
//! (409 for an illegal transition or stock, 403 for a customer asking for
//! anything but a cancel, 404 for another customer's order).
//!
//! The library-level model (stock, imports, idempotency) lives in
//! `oms-core/tests/it/invariants.rs`; this one is about the HTTP face.
//! A second test races an admin's pay against the customer's own cancel.
//!
//! Figures: `cargo test -p oms-daemon --test it status_model -- --nocapture`.

// The harness methods are test code: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use oms_core::{Actor, Status, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Value, json};

use crate::support::{GADGET, Server, WIDGET, Who, order_body};

/// Stock seeded by `Server::start`.
const SKUS: [(&str, i64); 2] = [(WIDGET, 100), (GADGET, 10)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Customer {
    Alice,
    Bob,
}

type Cart = Vec<(usize, i64)>;

#[derive(Debug, Clone)]
enum Op {
    /// Alice places for herself, or the admin places for Bob.
    Place { by_admin: bool, cart: Cart },
    /// The admin moves the n-th order (wrapping) to a status.
    AdminStatus { pick: usize, to: Status },
    /// A customer asks for a status on the n-th order (theirs or not).
    CustomerStatus {
        pick: usize,
        who: Customer,
        to: Status,
    },
    /// The admin replaces the items of the n-th order.
    Edit { pick: usize, cart: Cart },
    /// Another connection expires every PENDING order.
    Expire,
}

fn cart() -> impl Strategy<Value = Cart> {
    prop::collection::vec((0..2usize, 1..=4i64), 1..=2)
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        1 => Just(Status::Pending),
        3 => Just(Status::Paid),
        3 => Just(Status::Fulfilled),
        3 => Just(Status::Cancelled),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let who = prop_oneof![Just(Customer::Alice), Just(Customer::Bob)];
    let customer_to = prop_oneof![3 => Just(Status::Cancelled), 1 => status()];
    prop_oneof![
        5 => (any::<bool>(), cart()).prop_map(|(by_admin, cart)| Op::Place { by_admin, cart }),
        6 => (0..32usize, status()).prop_map(|(pick, to)| Op::AdminStatus { pick, to }),
        3 => (0..32usize, who, customer_to)
            .prop_map(|(pick, who, to)| Op::CustomerStatus { pick, who, to }),
        2 => (0..32usize, cart()).prop_map(|(pick, cart)| Op::Edit { pick, cart }),
        1 => Just(Op::Expire),
    ]
}

#[derive(Debug, Clone)]
struct ModelOrder {
    owner: Customer,
    status: Status,
    lines: BTreeMap<usize, i64>,
}

/// One order change the model expects in the feed: type, order id and, for
/// a status change, `(from, to)`.
type Logged = (String, i64, Option<(Status, Status)>);

struct Harness {
    server: Server,
    on_hand: [i64; 2],
    orders: BTreeMap<i64, ModelOrder>,
    seq: i64,
    /// What the steps did, for the figure line.
    answers: BTreeMap<u16, usize>,
}

/// DESIGN §4: `None` = refused; `Some(ships)` otherwise.
fn design_transition(from: Status, to: Status) -> Option<bool> {
    use Status::*;
    match (from, to) {
        (a, b) if a == b => Some(false),
        (Pending, Paid) | (Pending, Cancelled) | (Paid, Cancelled) => Some(false),
        (Paid, Fulfilled) => Some(true),
        _ => None,
    }
}

fn merged(cart: &Cart) -> BTreeMap<usize, i64> {
    let mut lines = BTreeMap::new();
    for &(sku, qty) in cart {
        *lines.entry(sku).or_insert(0) += qty;
    }
    lines
}

fn items(cart: &Cart) -> Vec<(&'static str, i64)> {
    cart.iter().map(|&(sku, qty)| (SKUS[sku].0, qty)).collect()
}

impl Harness {
    fn new() -> Harness {
        let server = Server::start();
        let seq = server.last_seq();
        Harness {
            server,
            on_hand: [SKUS[0].1, SKUS[1].1],
            orders: BTreeMap::new(),
            seq,
            answers: BTreeMap::new(),
        }
    }

    fn who(&self, c: Customer) -> &Who {
        match c {
            Customer::Alice => &self.server.alice,
            Customer::Bob => &self.server.bob,
        }
    }

    fn reserved(&self, sku: usize) -> i64 {
        self.orders
            .values()
            .filter(|o| o.status.holds_stock())
            .map(|o| o.lines.get(&sku).copied().unwrap_or(0))
            .sum()
    }

    fn available(&self, sku: usize) -> i64 {
        self.on_hand[sku] - self.reserved(sku)
    }

    /// The id of the n-th order (wrapping); a missing id when there are none.
    fn pick(&self, n: usize) -> i64 {
        let ids: Vec<i64> = self.orders.keys().copied().collect();
        if ids.is_empty() {
            1_000_000
        } else {
            ids[n % ids.len()]
        }
    }

    fn set_status(&self, who: &Who, id: i64, to: Status) -> crate::support::Reply {
        self.server
            .put(&format!("/api/orders/{id}/status"))
            .token(&who.token)
            .json(&json!({ "status": to.as_str().to_ascii_lowercase() }))
            .send()
    }

    /// Runs one op; returns the order changes it must have logged.
    fn step(&mut self, op: &Op) -> Vec<Logged> {
        let mut logged = Vec::new();
        let status_code = match op {
            Op::Place { by_admin, cart } => {
                let lines = merged(cart);
                let fits = lines.iter().all(|(&sku, &qty)| self.available(sku) >= qty);
                let (who, owner, customer) = if *by_admin {
                    let bob = self.server.bob.customer_id();
                    (&self.server.admin, Customer::Bob, Some(bob))
                } else {
                    (&self.server.alice, Customer::Alice, None)
                };
                let reply = self
                    .server
                    .post("/api/orders")
                    .token(&who.token)
                    .json(&order_body(customer, &items(cart)))
                    .send();
                if fits {
                    reply.expect_status(201);
                    let id = reply.json()["id"].as_i64().unwrap();
                    logged.push(("order.placed".to_string(), id, None));
                    self.orders.insert(
                        id,
                        ModelOrder {
                            owner,
                            status: Status::Pending,
                            lines,
                        },
                    );
                } else {
                    reply.problem(409);
                }
                reply.status
            }
            Op::AdminStatus { pick, to } => {
                let id = self.pick(*pick);
                let reply = self.set_status(&self.server.admin, id, *to);
                match self.orders.get(&id).map(|o| o.status) {
                    None => {
                        reply.problem(404);
                    }
                    Some(from) => self.expect_move(&reply, id, from, *to, &mut logged),
                }
                reply.status
            }
            Op::CustomerStatus { pick, who, to } => {
                let id = self.pick(*pick);
                let reply = self.set_status(self.who(*who), id, *to);
                match self.orders.get(&id).map(|o| (o.owner, o.status)) {
                    Some((owner, from)) if owner == *who => {
                        if *to != Status::Cancelled {
                            reply.problem(403);
                        } else if matches!(from, Status::Pending | Status::Cancelled) {
                            self.expect_move(&reply, id, from, *to, &mut logged);
                        } else {
                            reply.problem(409);
                        }
                    }
                    // Someone else's order, or none: it does not exist for them.
                    _ => {
                        reply.problem(404);
                    }
                }
                reply.status
            }
            Op::Edit { pick, cart } => {
                let id = self.pick(*pick);
                let reply = self
                    .server
                    .patch(&format!("/api/orders/{id}"))
                    .token(&self.server.admin.token)
                    .json(&json!({ "items": order_body(None, &items(cart))["items"] }))
                    .send();
                let lines = merged(cart);
                match self.orders.get(&id) {
                    None => {
                        reply.problem(404);
                    }
                    Some(o) if o.status != Status::Pending => {
                        reply.problem(409);
                    }
                    Some(o) => {
                        let fits = lines.iter().all(|(&sku, &qty)| {
                            let delta = qty - o.lines.get(&sku).copied().unwrap_or(0);
                            delta <= 0 || self.available(sku) >= delta
                        });
                        if fits {
                            reply.expect_status(200);
                            logged.push(("order.updated".to_string(), id, None));
                            self.orders.get_mut(&id).unwrap().lines = lines;
                        } else {
                            reply.problem(409);
                        }
                    }
                }
                reply.status
            }
            Op::Expire => {
                let cutoff = Timestamp::parse("2999-01-01").unwrap();
                let out = self
                    .server
                    .store()
                    .write(&Actor::system("expire"), |tx| tx.expire_pending(cutoff))
                    .unwrap();
                let expected: Vec<i64> = self
                    .orders
                    .iter()
                    .filter(|(_, o)| o.status == Status::Pending)
                    .map(|(id, _)| *id)
                    .collect();
                let got: Vec<i64> = out.cancelled.iter().map(|id| id.get()).collect();
                assert_eq!(got, expected, "expired orders");
                for id in expected {
                    self.orders.get_mut(&id).unwrap().status = Status::Cancelled;
                    let moved = Some((Status::Pending, Status::Cancelled));
                    logged.push(("order.status_changed".to_string(), id, moved));
                }
                0
            }
        };
        *self.answers.entry(status_code).or_default() += 1;
        logged
    }

    /// Checks an allowed or refused status move and applies it to the model.
    fn expect_move(
        &mut self,
        reply: &crate::support::Reply,
        id: i64,
        from: Status,
        to: Status,
        logged: &mut Vec<Logged>,
    ) {
        match design_transition(from, to) {
            None => {
                let problem = reply.problem(409);
                let detail = problem["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains(from.as_str()),
                    "{}: the refusal names the current status: {problem}",
                    reply.what
                );
            }
            Some(ships) => {
                reply.expect_status(200);
                assert_eq!(reply.json()["status"], to.as_str(), "{}", reply.what);
                if from != to {
                    let o = self.orders.get_mut(&id).unwrap();
                    if ships {
                        for (&sku, &qty) in &o.lines {
                            self.on_hand[sku] -= qty;
                        }
                    }
                    o.status = to;
                    logged.push(("order.status_changed".to_string(), id, Some((from, to))));
                }
            }
        }
    }

    /// Orders, stock and the change feed agree with the model.
    fn check(&mut self, op: &Op, logged: Vec<Logged>) {
        let admin = &self.server.admin.token;
        let list = self
            .server
            .get("/api/orders?limit=1000")
            .token(admin)
            .send();
        list.expect_status(200);
        let got: BTreeMap<i64, (Status, BTreeMap<String, i64>)> = list.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let lines = o["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| {
                        (
                            i["sku"].as_str().unwrap().to_string(),
                            i["quantity"].as_i64().unwrap(),
                        )
                    })
                    .collect();
                let status: Status = o["status"].as_str().unwrap().parse().unwrap();
                (o["id"].as_i64().unwrap(), (status, lines))
            })
            .collect();
        let want: BTreeMap<i64, (Status, BTreeMap<String, i64>)> = self
            .orders
            .iter()
            .map(|(&id, o)| {
                let lines = o
                    .lines
                    .iter()
                    .map(|(&sku, &q)| (SKUS[sku].0.to_string(), q))
                    .collect();
                (id, (o.status, lines))
            })
            .collect();
        assert_eq!(got, want, "after {op:?}: orders");

        for (i, (sku, _)) in SKUS.iter().enumerate() {
            let p = self
                .server
                .get(&format!("/api/products/{sku}"))
                .token(admin)
                .send()
                .json();
            assert_eq!(
                (p["stock_on_hand"].as_i64(), p["stock_reserved"].as_i64()),
                (Some(self.on_hand[i]), Some(self.reserved(i))),
                "after {op:?}: stock of {sku}"
            );
        }

        let feed = self
            .server
            .get(&format!(
                "/api/changes?after={}&limit=1000&wait=0",
                self.seq
            ))
            .token(admin)
            .send();
        feed.expect_status(200);
        let feed = feed.json();
        let changes = feed["changes"].as_array().unwrap();
        let status = |v: &Value| v.as_str().unwrap().parse::<Status>().unwrap();
        let appended: Vec<Logged> = changes
            .iter()
            .map(|c| {
                assert_eq!(c["entity"], "order", "after {op:?}: {c}");
                let kind = c["type"].as_str().unwrap().to_string();
                let moved = (kind == "order.status_changed")
                    .then(|| (status(&c["data"]["from"]), status(&c["data"]["to"])));
                (kind, c["entity_id"].as_i64().unwrap(), moved)
            })
            .collect();
        assert_eq!(appended, logged, "after {op:?}: the change feed");
        if let Some(next) = feed["next"].as_i64() {
            self.seq = next;
        }
    }
}

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(32);
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x0004_57A7);
    }
    config.failure_persistence = None;
    config
}

/// Cases and steps, to check the generator reaches every answer.
static FIGURES: std::sync::Mutex<(usize, usize, BTreeMap<u16, usize>)> =
    std::sync::Mutex::new((0, 0, BTreeMap::new()));

proptest! {
    #![proptest_config(config())]

    #[test]
    fn http_status_machine_matches_the_model(ops in prop::collection::vec(op(), 15..=25)) {
        let mut harness = Harness::new();
        for op in &ops {
            let logged = harness.step(op);
            harness.check(op, logged);
        }
        let mut figures = FIGURES.lock().unwrap();
        figures.0 += 1;
        figures.1 += ops.len();
        for (code, n) in &harness.answers {
            *figures.2.entry(*code).or_default() += n;
        }
        let (cases, steps, answers) = &*figures;
        if *cases == config().cases as usize {
            println!(
                "status model (HTTP): {cases} cases, {steps} steps, answers {answers:?} \
                 (0 = expire by another connection)"
            );
            for code in [200, 201, 403, 404, 409] {
                assert!(answers.get(&code) >= Some(&5), "rarely answered {code}: {answers:?}");
            }
        }
    }
}

/// Pay (admin) racing the customer's own cancel over HTTP: the daemon's
/// writer serialises them, and exactly one wins. A customer may cancel only
/// a PENDING order, so if the pay commits first the cancel is 409 and the
/// order stays PAID; if the cancel commits first the pay is 409.
#[test]
fn admin_pay_racing_customer_cancel_has_one_winner() {
    const ROUNDS: usize = 1_000;
    let server = Server::start();
    let barrier = Arc::new(Barrier::new(2));
    let (mut paid_wins, mut cancel_wins) = (0, 0);
    for round in 0..ROUNDS {
        let placed = server.place(&server.alice, None, &[(GADGET, 1)]);
        let id = placed["id"].as_i64().unwrap();
        let seq = server.last_seq();
        let path = format!("/api/orders/{id}/status");
        let (pay, cancel) = std::thread::scope(|scope| {
            let race = |who: &Who, to: &'static str| {
                let (barrier, path, server) = (Arc::clone(&barrier), &path, &server);
                let token = who.token.clone();
                scope.spawn(move || {
                    let body = json!({ "status": to });
                    barrier.wait();
                    server.put(path).token(&token).json(&body).send()
                })
            };
            let pay = race(&server.admin, "paid");
            let cancel = race(&server.alice, "cancelled");
            (pay.join().unwrap(), cancel.join().unwrap())
        });
        let (final_status, winner) = match (pay.status, cancel.status) {
            (200, 409) => {
                paid_wins += 1;
                (Status::Paid, "paid")
            }
            (409, 200) => {
                cancel_wins += 1;
                (Status::Cancelled, "cancelled")
            }
            other => panic!(
                "round {round}: answers {other:?} are not one legal history: {} / {}",
                pay.body, cancel.body
            ),
        };
        let order = server
            .get(&format!("/api/orders/{id}"))
            .token(&server.admin.token)
            .send()
            .json();
        assert_eq!(order["status"], final_status.as_str(), "round {round}");
        assert_eq!(order["version"], 2, "round {round}: one move only");
        let changes = server
            .get(&format!("/api/changes?after={seq}&wait=0"))
            .token(&server.admin.token)
            .send()
            .json();
        let moves: Vec<(Value, Value)> = changes["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["data"]["from"].clone(), c["data"]["to"].clone()))
            .collect();
        assert_eq!(
            moves,
            vec![(json!("PENDING"), json!(final_status.as_str()))],
            "round {round}: {winner} won"
        );
        // A paid order keeps its unit: the admin cancels it (PAID -> CANCELLED)
        // so GADGET never runs out.
        if final_status == Status::Paid {
            let reply = server
                .put(&path)
                .token(&server.admin.token)
                .json(&json!({"status": "cancelled"}))
                .send();
            reply.expect_status(200);
        }
        let gadget = server
            .get(&format!("/api/products/{GADGET}"))
            .token(&server.admin.token)
            .send()
            .json();
        assert_eq!(gadget["stock_reserved"], 0, "round {round}");
        assert_eq!(gadget["stock_on_hand"], 10, "round {round}");
    }
    let report = server.store().verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    println!(
        "status race (HTTP, admin pay vs customer cancel): {ROUNDS} rounds, \
         pay won {paid_wins}, cancel won {cancel_wins}, illegal 0"
    );
}
