//! `webhook-events`: signed Razorpay `payment.captured` deliveries for the
//! PENDING orders of a database, one per order, written for
//! `scripts/wrk/webhook.lua`.
//!
//! Each line is `SIGNATURE<TAB>EVENT-ID<TAB>BODY`: the body (about 1 KiB,
//! the size of a real payment event) pays the order exactly, so the daemon
//! applies every delivery (PENDING -> PAID). Lines go round-robin to
//! `--files` files (`OUT.1`, `OUT.2`, ...), one per wrk thread, so no two
//! threads send the same event. Signing happens here, before the run: wrk
//! only reads lines.

use std::io::{BufWriter, Write};

use hmac::{Hmac, Mac};
use oms_core::prelude::*;
use oms_core::{Db, Location, OrderFilter, Status};
use serde_json::json;
use sha2::Sha256;

use crate::{Result, WebhookArgs};

pub fn run(args: &WebhookArgs) -> Result<()> {
    let store = Db::open(&Location::File(args.db.clone()))?;
    let orders = store.orders(&OrderFilter {
        status: Some(Status::Pending),
        limit: Some(args.count),
        ..OrderFilter::default()
    })?;
    let files = args.files.max(1);
    let mut outs = Vec::with_capacity(files);
    for i in 1..=files {
        let path = format!("{}.{i}", args.out.display());
        outs.push(BufWriter::new(std::fs::File::create(&path)?));
    }
    let key = Hmac::<Sha256>::new_from_slice(args.secret.as_bytes())
        .map_err(|e| format!("bad secret: {e}"))?;
    let mut bytes = 0usize;
    for (n, order) in orders.iter().enumerate() {
        let body = json!({
            "entity": "event",
            "account_id": "acc_BFQ7uQEaa7j2z7",
            "event": "payment.captured",
            "contains": ["payment"],
            "payload": {"payment": {"entity": {
                "id": format!("pay_bench_{}_{}", args.run, order.id),
                "entity": "payment",
                "amount": order.total.minor(),
                "currency": order.currency.code(),
                "status": "captured",
                "order_id": "order_DBJOWzybf0sJbb",
                "invoice_id": null,
                "international": false,
                "method": "card",
                "amount_refunded": 0,
                "refund_status": null,
                "captured": true,
                "description": "Order from the storefront",
                "card_id": "card_DBJOWzyba0sJbb",
                "bank": null,
                "wallet": null,
                "vpa": null,
                "email": "gaurav.kumar@example.com",
                "contact": "+919876543210",
                "notes": {"order_id": order.id.to_string(), "source": "bench"},
                "fee": 24,
                "tax": 4,
                "error_code": null,
                "error_description": null,
                "acquirer_data": {
                    "auth_code": "828553",
                    "rrn": "313413123856",
                    "authentication_reference_number": "100222021120200000000742753928"
                },
                "base_amount": order.total.minor(),
                "base_currency": order.currency.code(),
                "offer_id": null,
                "token_id": "token_4lsdksD31GaZ09",
                "reward": null,
                "created_at": 1_700_000_000
            }}},
            "created_at": 1_700_000_000
        })
        .to_string();
        let mut mac = key.clone();
        mac.update(body.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        bytes += body.len();
        writeln!(
            outs[n % files],
            "{signature}\tevt_bench_{}_{}\t{body}",
            args.run,
            order.id
        )?;
    }
    for mut out in outs {
        out.flush()?;
    }
    let mean = if orders.is_empty() {
        0
    } else {
        bytes / orders.len()
    };
    println!(
        "events={} mean_body_bytes={mean} files={files}",
        orders.len()
    );
    Ok(())
}
