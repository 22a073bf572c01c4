//! `oms payment list|show|record` (DESIGN §7), and `oms serve` taking the
//! webhook secret from the environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{CONFLICT, Db, INVALID, NOT_FOUND, csv_records, ids, oms_bin, s};

/// A shop with product A at 12.50 and one PENDING order of two A (25.00).
fn shop() -> (Db, i64) {
    let db = Db::new();
    db.add_product("A", "12.50", 10);
    db.add_customer("Cara", "cara@example.com");
    let order = db.place("cara@example.com", &["A:2"]);
    (db, order)
}

#[test]
fn record_pays_a_pending_order_with_its_exact_total() {
    let (db, order) = shop();
    let id = order.to_string();
    let payment = db.json(&[
        "payment",
        "record",
        &id,
        "--amount",
        "25",
        "--reference",
        "BANK-42",
    ]);
    assert_eq!(payment["order_id"], order);
    assert_eq!(s(&payment, "provider"), "manual");
    assert_eq!(s(&payment, "provider_payment_id"), "BANK-42");
    assert_eq!(s(&payment, "amount"), "25.00");
    assert_eq!(s(&payment, "currency"), "USD");
    assert_eq!(s(&payment, "status"), "captured");
    assert_eq!(s(&payment, "outcome"), "applied");
    assert_eq!(s(&payment, "refunded_amount"), "0.00");
    assert_eq!(payment["event_id"], serde_json::Value::Null);
    let paid = db.order(order);
    assert_eq!(s(&paid, "status"), "PAID");
    assert_eq!(paid["payment_collected"], true);
    let kinds: Vec<String> = db
        .changes()
        .iter()
        .map(|c| s(c, "type").to_string())
        .collect();
    assert!(
        kinds.ends_with(&["payment.received".into(), "order.status_changed".into()]),
        "{kinds:?}"
    );

    let payment_id = payment["id"].as_i64().unwrap();
    assert_eq!(
        db.json(&["payment", "show", &payment_id.to_string()]),
        payment
    );
    assert_eq!(db.ids(&["payment", "list"]), [payment_id]);
    assert_eq!(db.ids(&["payment", "list", "--order", &id]), [payment_id]);
    assert!(
        db.ids(&["payment", "list", "--outcome", "not_payable"])
            .is_empty()
    );
    assert!(
        db.ids(&["payment", "list", "--after", &payment_id.to_string()])
            .is_empty()
    );
    let csv = csv_records(&db.ok(&["payment", "list", "--format", "csv"]));
    assert_eq!(csv[0]["provider_payment_id"], "BANK-42");
    assert_eq!(csv[0]["outcome"], "applied");
    let table = db.ok(&["payment", "list"]);
    assert!(
        table.contains("BANK-42") && table.contains("applied"),
        "{table}"
    );
    db.assert_verifies();
}

#[test]
fn record_refuses_anything_but_the_exact_total_of_a_pending_order() {
    let (db, order) = shop();
    let id = order.to_string();
    let before = db.change_count();
    for amount in ["24.99", "25.01", "0"] {
        let err = db.fails(&["payment", "record", &id, "--amount", amount], CONFLICT);
        assert!(err.contains("25.00"), "the total is named: {err}");
    }
    db.fails(&["payment", "record", &id, "--amount", "25.001"], INVALID);
    db.fails(&["payment", "record", &id, "--amount", "lots"], INVALID);
    db.fails(
        &["payment", "record", "999", "--amount", "25.00"],
        NOT_FOUND,
    );
    assert_eq!(db.change_count(), before, "nothing written");
    assert_eq!(s(&db.order(order), "status"), "PENDING");
    assert!(db.ids(&["payment", "list"]).is_empty());

    // Without a reference: oms-order-ID. Paid now, so a second one is a
    // conflict; a reference used before is a duplicate (exit 4 too).
    let first = db.json(&["payment", "record", &id, "--amount", "25.00"]);
    assert_eq!(
        s(&first, "provider_payment_id"),
        format!("oms-order-{order}")
    );
    let err = db.fails(&["payment", "record", &id, "--amount", "25.00"], CONFLICT);
    assert!(err.contains("PAID"), "{err}");
    let other = db.place("cara@example.com", &["A:1"]).to_string();
    let reused = format!("oms-order-{order}");
    db.fails(
        &[
            "payment",
            "record",
            &other,
            "--amount",
            "12.50",
            "--reference",
            &reused,
        ],
        CONFLICT,
    );
    let cancelled = db.place("cara@example.com", &["A:1"]).to_string();
    db.ok(&["order", "cancel", &cancelled]);
    db.fails(
        &["payment", "record", &cancelled, "--amount", "12.50"],
        CONFLICT,
    );
    // The paid order keeps its record of money.
    db.fails(&["order", "remove", &id], CONFLICT);
    db.assert_verifies();
}

#[test]
fn payment_commands_validate_their_arguments() {
    let (db, _) = shop();
    db.fails(&["payment", "show", "7"], NOT_FOUND);
    let err = db.usage_error(&["payment", "list", "--outcome", "paid"]);
    assert!(
        err.contains("amount_mismatch"),
        "the outcomes are listed: {err}"
    );
    db.usage_error(&["payment", "record", "1"]);
    db.usage_error(&["payment", "show", "x"]);
    assert_eq!(ids(&db.ok(&["payment", "list", "-q"])), Vec::<i64>::new());
}

/// The status of `POST /api/payments/webhook` with an unsigned body from a
/// daemon started with `env`.
fn unsigned_webhook_status(env: &[(&str, &str)]) -> u16 {
    let db = Db::new();
    let mut cmd = Command::new(oms_bin());
    cmd.env_remove("OMS_WEBHOOK_SECRET")
        .env_remove("OMS_WEBHOOK_SECRET_PREVIOUS")
        .env("OMS_LOG", "warn")
        .arg("--db")
        .arg(db.location())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn oms serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("oms serving http://") {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_string());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("oms serve prints its address");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let status = agent
        .post(&format!("http://{addr}/api/payments/webhook"))
        .header("x-razorpay-signature", &"0".repeat(64))
        .send("{\"event\":\"payment.captured\"}")
        .expect("an answer")
        .status()
        .as_u16();
    let _ = child.kill();
    let _ = child.wait();
    status
}

#[test]
fn serve_reads_the_webhook_secret_from_the_environment() {
    assert_eq!(
        unsigned_webhook_status(&[]),
        503,
        "no secret: not configured"
    );
    assert_eq!(
        unsigned_webhook_status(&[("OMS_WEBHOOK_SECRET", "whsec_cli_test")]),
        401,
        "a secret: the bad signature is refused"
    );
    let help = Db::new().ok(&["--help"]);
    assert!(help.contains("OMS_WEBHOOK_SECRET_PREVIOUS"), "{help}");
}
