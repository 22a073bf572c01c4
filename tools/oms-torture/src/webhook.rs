//! Payment webhook deliveries replayed and shuffled under HTTP placement
//! load.
//!
//! Orders are placed over HTTP, then a plan of Razorpay events is made
//! for them: plain captures, a failure before the capture, `order.paid`
//! beside `payment.captured`, a capture one unit short before the right
//! one, two captures of one order, a capture racing the admin's cancel,
//! partial and full refunds, failures alone, captures for orders that do
//! not exist, and events oms ignores. Every event is delivered 1 to
//! `--max-copies` times; all deliveries (and the cancels) are shuffled and
//! sent by `--senders` concurrent connections while `--buyers` place new
//! orders. Every delivery must be answered 200.
//!
//! The final check holds the file against the plan: one payment row per
//! provider payment id, each with the outcome the money rules allow for
//! its order; every order's status and `payment_collected` agree with its
//! applied payments (at most one, and exactly as many moves to PAID in the
//! change log); refunded amounts are the sum of the distinct refunds; one
//! `payment.received` change per payment; `oms verify` clean.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use hyper::Method;
use oms_core::payment::{PaymentFilter, PaymentOutcome, PaymentStatus};
use oms_core::prelude::*;
use oms_core::{Db, Location, OrderFilter, Seq, Status};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::client::{Call, Client};
use crate::oms::{Daemon, Oms};
use crate::oversell::{Outcome, cart, order_body, place_http};
use crate::{Common, Result, Verdict, note};

/// The webhook secret the daemon is started with.
const SECRET: &str = "torture-webhook-secret-0123456789";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Orders the webhook events are planned for.
    #[arg(long, default_value_t = 300)]
    pub orders: usize,
    /// Concurrent connections delivering webhook events.
    #[arg(long, default_value_t = 16)]
    pub senders: usize,
    /// Concurrent HTTP buyers placing orders while the events arrive.
    #[arg(long, default_value_t = 8)]
    pub buyers: usize,
    /// Each event is delivered between 1 and this many times.
    #[arg(long, default_value_t = 3)]
    pub max_copies: usize,
    /// Products in the shop.
    #[arg(long, default_value_t = 20)]
    pub skus: usize,
    /// Customers the orders are spread over.
    #[arg(long, default_value_t = 50)]
    pub customers: usize,
}

/// What happens to one planned order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One capture.
    Plain,
    /// A failure of the payment, then its capture.
    FailedFirst,
    /// `payment.captured` and `order.paid` for the same payment.
    WithOrderPaid,
    /// A capture one unit short, then the right one.
    Short,
    /// Two right captures of different payments.
    Twice,
    /// A capture racing the admin's cancel.
    Cancelled,
    /// A capture and two refunds (half, or all of it).
    Refunded,
    /// A failure only.
    FailedOnly,
}

const KINDS: [Kind; 8] = [
    Kind::Plain,
    Kind::FailedFirst,
    Kind::WithOrderPaid,
    Kind::Short,
    Kind::Twice,
    Kind::Cancelled,
    Kind::Refunded,
    Kind::FailedOnly,
];

/// One order of the plan.
#[derive(Debug, Clone)]
struct Planned {
    order: i64,
    total: i64,
    kind: Kind,
    /// Refunds: (refund id, amount).
    refunds: Vec<(String, i64)>,
}

impl Planned {
    fn pay_id(&self, suffix: &str) -> String {
        format!("pay_{}{suffix}", self.order)
    }
}

/// A step of the shuffled load.
#[derive(Debug, Clone)]
enum Action {
    Deliver { event_id: String, body: String },
    Cancel { order: i64 },
}

fn sign(body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Razorpay payment entity (about 1 KiB with its envelope).
fn payment_entity(pay_id: &str, status: &str, notes: Value, amount: i64) -> Value {
    json!({
        "id": pay_id, "entity": "payment", "amount": amount, "currency": "USD",
        "status": status, "order_id": "order_DBJOWzybf0sJbb", "invoice_id": null,
        "international": false, "method": "upi", "amount_refunded": 0, "refund_status": null,
        "captured": status == "captured", "description": "Torture order", "card_id": null,
        "bank": null, "wallet": null, "vpa": "gaurav.kumar@exampleupi", "email": "c@torture.test",
        "contact": "+919876543210", "notes": notes, "fee": 24, "tax": 4,
        "error_code": null, "error_description": null, "created_at": 1_700_000_000
    })
}

fn envelope(event: &str, payload: Value) -> String {
    json!({"entity": "event", "account_id": "acc_torture", "event": event,
           "contains": ["payment"], "payload": payload, "created_at": 1_700_000_000})
    .to_string()
}

fn payment_event(event: &str, pay_id: &str, order: i64, amount: i64) -> String {
    let status = if event == "payment.failed" {
        "failed"
    } else {
        "captured"
    };
    let notes = json!({"order_id": order.to_string()});
    envelope(
        event,
        json!({"payment": {"entity": payment_entity(pay_id, status, notes, amount)}}),
    )
}

fn order_paid(pay_id: &str, order: i64, amount: i64) -> String {
    envelope(
        "order.paid",
        json!({
            "payment": {"entity": payment_entity(pay_id, "captured", json!([]), amount)},
            "order": {"entity": {"id": "order_X", "entity": "order", "amount": amount,
                                 "currency": "USD", "receipt": order.to_string(), "notes": [],
                                 "status": "paid"}}
        }),
    )
}

fn refund_event(refund_id: &str, pay_id: &str, amount: i64) -> String {
    envelope(
        "refund.processed",
        json!({"refund": {"entity": {"id": refund_id, "entity": "refund", "amount": amount,
                                     "currency": "USD", "payment_id": pay_id, "notes": []}}}),
    )
}

/// "12.50" as 1250 (USD).
fn cents(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac: i64 = format!("{frac:0<2}").get(..2)?.parse().ok()?;
    Some(whole.parse::<i64>().ok()? * 100 + frac)
}

/// The events of the plan (each once; copies are made later).
fn events(plan: &[Planned], unknown: usize) -> Vec<Action> {
    let mut out = Vec::new();
    let mut deliver = |event_id: String, body: String| {
        out.push(Action::Deliver { event_id, body });
    };
    for p in plan {
        let (o, t) = (p.order, p.total);
        let e = |what: &str| format!("evt_{o}_{what}");
        match p.kind {
            Kind::Plain | Kind::Cancelled => {
                deliver(
                    e("c"),
                    payment_event("payment.captured", &p.pay_id(""), o, t),
                );
            }
            Kind::FailedFirst => {
                deliver(e("f"), payment_event("payment.failed", &p.pay_id(""), o, t));
                deliver(
                    e("c"),
                    payment_event("payment.captured", &p.pay_id(""), o, t),
                );
            }
            Kind::WithOrderPaid => {
                deliver(
                    e("c"),
                    payment_event("payment.captured", &p.pay_id(""), o, t),
                );
                deliver(e("o"), order_paid(&p.pay_id(""), o, t));
            }
            Kind::Short => {
                deliver(
                    e("s"),
                    payment_event("payment.captured", &p.pay_id("_short"), o, t - 1),
                );
                deliver(
                    e("c"),
                    payment_event("payment.captured", &p.pay_id(""), o, t),
                );
            }
            Kind::Twice => {
                deliver(
                    e("a"),
                    payment_event("payment.captured", &p.pay_id("_a"), o, t),
                );
                deliver(e("b"), order_paid(&p.pay_id("_b"), o, t));
            }
            Kind::Refunded => {
                deliver(
                    e("c"),
                    payment_event("payment.captured", &p.pay_id(""), o, t),
                );
                for (refund_id, amount) in &p.refunds {
                    deliver(
                        e(refund_id),
                        refund_event(refund_id, &p.pay_id(""), *amount),
                    );
                }
            }
            Kind::FailedOnly => {
                deliver(e("f"), payment_event("payment.failed", &p.pay_id(""), o, t));
            }
        }
    }
    for n in 0..unknown {
        let order = 900_000_000 + n as i64;
        deliver(
            format!("evt_unknown_{n}"),
            payment_event("payment.captured", &format!("pay_unknown_{n}"), order, 100),
        );
        // An event oms does not act on.
        let ignored = payment_event("payment.authorized", &format!("pay_auth_{n}"), 1, 100);
        deliver(format!("evt_ignored_{n}"), ignored);
    }
    out
}

/// Counts of how deliveries were answered.
#[derive(Debug, Default)]
struct Answers {
    by_status: BTreeMap<String, u64>,
    failures: Vec<String>,
    latencies_ms: Vec<f64>,
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = Oms::new(&args.common.oms, work.join("webhook.db"));
    oms.shop(work, args.skus, 1_000_000, args.customers).await?;
    let token = oms.admin_token().await?;
    let daemon = Daemon::start_with_env(
        &oms,
        &work.join("webhook-daemon.log"),
        &[],
        &[("OMS_WEBHOOK_SECRET", SECRET)],
    )
    .await?;
    let addr = daemon.addr;
    let mut verdict = Verdict::new("webhook");
    let mut rng = fastrand::Rng::with_seed(args.common.seed);

    // The orders of the plan.
    let mut client = Client::new(addr);
    let mut plan = Vec::with_capacity(args.orders);
    for n in 0..args.orders {
        let body = order_body(
            rng.usize(1..=args.customers),
            &cart(&mut rng, args.skus),
            false,
        );
        let call = Call::json(Method::POST, "/api/orders", &token, body);
        let reply = client
            .send(&call, Duration::from_secs(30))
            .await
            .map_err(|e| format!("placing plan order {n}: {e}"))?;
        let order = reply.json().unwrap_or(Value::Null);
        let (Some(id), Some(total)) = (
            order["id"].as_i64(),
            order["total"].as_str().and_then(cents),
        ) else {
            return Err(format!("placing plan order {n}: HTTP {}: {order}", reply.status).into());
        };
        let kind = KINDS[n % KINDS.len()];
        let refunds = if kind == Kind::Refunded {
            // Half of the amount in two refunds, or all of it.
            let first = total * 3 / 10;
            let second = if (n / KINDS.len()).is_multiple_of(2) {
                total / 5
            } else {
                total - first
            };
            vec![("rfnd1".to_string(), first), ("rfnd2".to_string(), second)]
                .into_iter()
                .map(|(r, a)| (format!("{r}_{id}"), a))
                .collect()
        } else {
            Vec::new()
        };
        plan.push(Planned {
            order: id,
            total,
            kind,
            refunds,
        });
    }

    // Every event 1..=max_copies times, the cancels, shuffled.
    let unknown = (args.orders / 20).max(1);
    let mut actions = Vec::new();
    let distinct = events(&plan, unknown);
    for action in &distinct {
        for _ in 0..rng.usize(1..=args.max_copies.max(1)) {
            actions.push(action.clone());
        }
    }
    for p in plan.iter().filter(|p| p.kind == Kind::Cancelled) {
        actions.push(Action::Cancel { order: p.order });
    }
    rng.shuffle(&mut actions);
    note(format!(
        "webhook: {} orders, {} distinct events, {} deliveries and cancels over {} connections, {} buyers on {addr}",
        plan.len(),
        distinct.len(),
        actions.len(),
        args.senders,
        args.buyers
    ));

    let queue = Arc::new(Mutex::new(actions));
    let answers: Arc<Mutex<Answers>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut buyers = Vec::new();
    for b in 0..args.buyers {
        let (token, stop) = (token.clone(), Arc::clone(&stop));
        let (skus, customers) = (args.skus, args.customers);
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ ((b as u64 + 1) << 16));
        buyers.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let (mut placed, mut other) = (0u64, Vec::new());
            for n in 0.. {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let body = order_body(rng.usize(1..=customers), &cart(&mut rng, skus), false);
                let key = format!("buyer-{b}-{n}");
                match place_http(&mut client, &token, &key, body, Duration::from_secs(30)).await {
                    Outcome::Ok(_) => placed += 1,
                    o => other.push(format!("{key}: {o:?}")),
                }
            }
            (placed, other)
        }));
    }
    let mut senders = Vec::new();
    for _ in 0..args.senders {
        let (queue, answers, token) = (Arc::clone(&queue), Arc::clone(&answers), token.clone());
        senders.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(action) = next else { break };
                let (what, result, took) = match &action {
                    Action::Deliver { event_id, body } => {
                        let signature = sign(body.as_bytes());
                        let headers = [
                            ("x-razorpay-signature", signature.as_str()),
                            ("x-razorpay-event-id", event_id.as_str()),
                        ];
                        let call = Call {
                            method: Method::POST,
                            path: "/api/payments/webhook",
                            token: None,
                            headers: &headers,
                            body: Some(body.clone()),
                        };
                        let t0 = Instant::now();
                        let result = client.send(&call, Duration::from_secs(30)).await;
                        (format!("delivery {event_id}"), result, Some(t0.elapsed()))
                    }
                    Action::Cancel { order } => {
                        let path = format!("/api/orders/{order}/status");
                        let body = json!({"status": "cancelled"}).to_string();
                        let call = Call::json(Method::PUT, &path, &token, body);
                        let result = client.send(&call, Duration::from_secs(30)).await;
                        (format!("cancel of order {order}"), result, None)
                    }
                };
                let Ok(mut a) = answers.lock() else { break };
                match result {
                    Ok(reply) if reply.status == 200 => {
                        if let Some(took) = took {
                            a.latencies_ms.push(took.as_secs_f64() * 1000.0);
                            let status = reply
                                .json()
                                .and_then(|v| v["status"].as_str().map(str::to_string))
                                .unwrap_or_else(|| "no status".into());
                            *a.by_status.entry(status).or_default() += 1;
                        }
                    }
                    Ok(reply) => a.failures.push(format!(
                        "{what} answered {}: {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    )),
                    Err(e) => a.failures.push(format!("{what}: {e}")),
                }
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let deliver_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let mut placed = 0;
    for b in buyers {
        let (n, other) = b.await?;
        placed += n;
        for o in other.iter().take(3) {
            verdict.fail(format!(
                "a placement under webhook load did not succeed: {o}"
            ));
        }
    }
    let answers = std::mem::take(&mut *answers.lock().map_err(|_| "answers poisoned")?);
    for f in answers.failures.iter().take(10) {
        verdict.fail(f.clone());
    }
    if answers.failures.len() > 10 {
        verdict.fail(format!(
            "... and {} more failed requests",
            answers.failures.len() - 10
        ));
    }
    let (code, _) = daemon.term(Duration::from_secs(15)).await?;
    verdict.check(code == Some(0), || {
        format!("the daemon exited {code:?} on SIGTERM")
    });

    let db = oms.db.clone();
    let checked = tokio::task::spawn_blocking(move || check(&db, &plan, unknown))
        .await
        .map_err(|e| format!("check task failed: {e}"))??;
    for problem in checked.problems.iter().take(20) {
        verdict.fail(problem.clone());
    }
    if checked.problems.len() > 20 {
        verdict.fail(format!(
            "... and {} more problems",
            checked.problems.len() - 20
        ));
    }

    let mut latencies = answers.latencies_ms;
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    let count = |s: &str| answers.by_status.get(s).copied().unwrap_or(0);
    verdict.figure("orders", args.orders);
    verdict.figure("events", distinct.len());
    verdict.figure("deliveries", latencies.len());
    verdict.figure("processed", count("processed"));
    verdict.figure("duplicate", count("duplicate"));
    verdict.figure("ignored", count("ignored"));
    verdict.figure("payments", checked.payments);
    verdict.figure("applied", checked.applied);
    verdict.figure("placed_meanwhile", placed);
    verdict.figure("webhook_p99_ms", format!("{p99:.1}"));
    verdict.figure("secs", format!("{deliver_secs:.1}"));
    verdict.check(count("processed") <= distinct.len() as u64, || {
        format!(
            "{} deliveries were processed, more than the {} distinct events",
            count("processed"),
            distinct.len()
        )
    });
    Ok(verdict)
}

/// What the final check found.
struct Checked {
    payments: usize,
    applied: usize,
    problems: Vec<String>,
}

/// Holds the database against the plan (see the module doc).
fn check(db: &std::path::Path, plan: &[Planned], unknown: usize) -> Result<Checked> {
    let store = Db::open(&Location::File(db.to_path_buf()))?;
    let mut problems = Vec::new();
    let report = store.verify()?;
    if !report.is_clean() {
        problems.push(format!("oms verify: {:?}", report.problems));
    }
    let payments = store.payments(&PaymentFilter::default())?;
    let by_provider_id: HashMap<&str, Vec<_>> = payments.iter().fold(HashMap::new(), |mut m, p| {
        m.entry(p.provider_payment_id.as_str()).or_default().push(p);
        m
    });
    for (id, rows) in &by_provider_id {
        if rows.len() != 1 {
            problems.push(format!("payment {id} is recorded {} times", rows.len()));
        }
    }
    let changes = store.changes_after(Seq(0), u64::MAX, None)?;
    let mut paid_moves: HashMap<i64, usize> = HashMap::new();
    let mut received: HashMap<i64, usize> = HashMap::new();
    for c in &changes {
        match c.kind.as_str() {
            "order.status_changed" if c.data["to"] == "PAID" => {
                *paid_moves.entry(c.entity_id).or_default() += 1;
            }
            "payment.received" => *received.entry(c.entity_id).or_default() += 1,
            _ => {}
        }
    }
    for p in &payments {
        let n = received.get(&p.id.get()).copied().unwrap_or(0);
        if n != 1 {
            problems.push(format!("payment {} has {n} payment.received changes", p.id));
        }
    }

    // Every order: status and payment_collected agree with its applied
    // payments (nothing else pays an order in this harness).
    let orders = store.orders(&OrderFilter::default())?;
    let mut applied_by_order: HashMap<i64, usize> = HashMap::new();
    for p in payments
        .iter()
        .filter(|p| p.outcome == PaymentOutcome::Applied)
    {
        if let Some(o) = p.order_id {
            *applied_by_order.entry(o.get()).or_default() += 1;
        }
    }
    let cancelled_kind: std::collections::HashSet<i64> = plan
        .iter()
        .filter(|p| p.kind == Kind::Cancelled)
        .map(|p| p.order)
        .collect();
    for order in &orders {
        let id = order.id.get();
        let applied = applied_by_order.get(&id).copied().unwrap_or(0);
        let moves = paid_moves.get(&id).copied().unwrap_or(0);
        let expected_status = match (applied, cancelled_kind.contains(&id)) {
            (_, true) => Status::Cancelled,
            (0, false) => Status::Pending,
            (_, false) => Status::Paid,
        };
        if applied > 1
            || moves != applied
            || order.payment_collected != (applied == 1)
            || order.status != expected_status
        {
            problems.push(format!(
                "order {id}: {applied} applied payment(s), {moves} move(s) to PAID, status {}, payment_collected {} (expected {expected_status})",
                order.status, order.payment_collected
            ));
        }
    }

    // Every planned payment has the outcome the rules allow.
    let outcome = |id: &str| by_provider_id.get(id).and_then(|r| r.first()).copied();
    let expect = |pay_id: String, allowed: &[PaymentOutcome], status: PaymentStatus| match outcome(
        &pay_id,
    ) {
        None => Some(format!("payment {pay_id} was never recorded")),
        Some(p) if !allowed.contains(&p.outcome) || p.status != status => Some(format!(
            "payment {pay_id}: {} / {} (expected {status} with one of {allowed:?})",
            p.status, p.outcome
        )),
        Some(_) => None,
    };
    use PaymentOutcome as O;
    use PaymentStatus as S;
    let mut expected_rows = 0;
    for p in plan {
        match p.kind {
            Kind::Plain | Kind::FailedFirst | Kind::WithOrderPaid => {
                problems.extend(expect(p.pay_id(""), &[O::Applied], S::Captured));
                expected_rows += 1;
            }
            Kind::Short => {
                problems.extend(expect(p.pay_id(""), &[O::Applied], S::Captured));
                // Before the right one: a mismatch; after it: not payable.
                problems.extend(expect(
                    p.pay_id("_short"),
                    &[O::AmountMismatch, O::NotPayable],
                    S::Captured,
                ));
                expected_rows += 2;
            }
            Kind::Twice => {
                let a = outcome(&p.pay_id("_a")).map(|x| x.outcome);
                let b = outcome(&p.pay_id("_b")).map(|x| x.outcome);
                let mut both = [a, b];
                both.sort_by_key(|o| o.map(|o| o.as_str()));
                if both != [Some(O::Applied), Some(O::NotPayable)] {
                    problems.push(format!(
                        "order {}: two captures ended {a:?} and {b:?}, not one applied and one not_payable",
                        p.order
                    ));
                }
                expected_rows += 2;
            }
            Kind::Cancelled => {
                problems.extend(expect(
                    p.pay_id(""),
                    &[O::Applied, O::NotPayable],
                    S::Captured,
                ));
                expected_rows += 1;
            }
            Kind::Refunded => {
                let sum: i64 = p.refunds.iter().map(|(_, a)| a).sum::<i64>().min(p.total);
                let status = if sum == p.total {
                    S::Refunded
                } else {
                    S::Captured
                };
                problems.extend(expect(p.pay_id(""), &[O::Applied], status));
                if let Some(pay) = outcome(&p.pay_id(""))
                    && pay.refunded_amount.minor() != sum
                {
                    problems.push(format!(
                        "payment {}: refunded {} but the distinct refunds sum to {sum} cents",
                        pay.provider_payment_id,
                        pay.refunded_amount.minor()
                    ));
                }
                expected_rows += 1;
            }
            Kind::FailedOnly => {
                problems.extend(expect(p.pay_id(""), &[O::Failed], S::Failed));
                expected_rows += 1;
            }
        }
    }
    for p in payments
        .iter()
        .filter(|p| p.provider_payment_id.starts_with("pay_unknown_"))
    {
        if p.outcome != O::UnknownOrder {
            problems.push(format!(
                "payment {}: {} (expected unknown_order)",
                p.provider_payment_id, p.outcome
            ));
        }
    }
    if payments
        .iter()
        .any(|p| p.provider_payment_id.starts_with("pay_auth_"))
    {
        problems.push("an ignored event (payment.authorized) recorded a payment".into());
    }
    if payments.len() != expected_rows + unknown {
        problems.push(format!(
            "{} payment rows, expected {} for the plan and {unknown} for unknown orders",
            payments.len(),
            expected_rows
        ));
    }
    Ok(Checked {
        payments: payments.len(),
        applied: applied_by_order.values().sum(),
        problems,
    })
}
