//! `POST /api/payments/webhook` (Razorpay, DESIGN §7), `GET /api/payments`,
//! `GET /api/payments/{id}` and `GET /api/orders/{id}/payments`.
//!
//! The webhook is authenticated by its signature alone: the raw body is
//! read (at most 1 MiB), its HMAC checked against the configured secrets,
//! and only then parsed. Its whole effect is one job of the writer's group
//! commit, answered after the COMMIT: fast (the provider is waiting) and
//! durable before the 2xx.

use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, StatusCode};
use oms_core::payment::{DeliveryStatus, PaymentFilter, PaymentOutcome};
use oms_core::{Actor, OrderId, PaymentId};
use serde_json::json;

use super::Ctx;
use super::products::MAX_LIMIT;
use crate::http::{self, Page, Response};
use crate::problem::Problem;
use crate::webhook::{self, Decoded};

/// Answers a delivery; counts it by event and outcome.
pub async fn webhook(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let metrics = &ctx.app.metrics;
    let Some(keys) = ctx.app.webhook_keys.as_ref() else {
        // Nothing is read: without a secret no body can be trusted. The
        // connection is closed, since its body was not drained.
        metrics.webhook_delivery("unverified", "unavailable");
        let mut res = http::problem(&Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payment webhook is not configured: set OMS_WEBHOOK_SECRET and restart oms serve",
        ));
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return Ok(res);
    };
    let signature = req
        .headers()
        .get(webhook::SIGNATURE_HEADER)
        .map(|v| v.as_bytes().to_vec());
    let event_id = req
        .headers()
        .get(webhook::EVENT_ID_HEADER)
        .map(|v| v.to_str().map(|s| s.trim().to_string()));
    let body = match http::read_body(req, webhook::MAX_BODY).await {
        Ok(body) => body,
        Err(problem) => {
            metrics.webhook_delivery("unverified", "refused");
            return Err(problem);
        }
    };
    let verified = signature
        .as_deref()
        .is_some_and(|signature| keys.verify(&body, signature));
    if !verified {
        metrics.webhook_delivery("unverified", "bad_signature");
        return Err(Problem::unauthorized(if signature.is_none() {
            "the X-Razorpay-Signature header is missing"
        } else {
            "the X-Razorpay-Signature does not match the body"
        }));
    }
    let event_id = match event_id {
        None => None,
        Some(Ok(id)) if oms_core::payment::check_provider_id("event id", &id).is_ok() => Some(id),
        Some(_) => {
            metrics.webhook_delivery("other", "bad_request");
            return Err(Problem::bad_request(
                "X-Razorpay-Event-Id must be 1 to 128 printable ASCII characters",
            ));
        }
    };
    let delivery = match webhook::decode_razorpay(&body, event_id) {
        Ok(Decoded::Delivery(delivery)) => delivery,
        Ok(Decoded::Ignored { event }) => {
            metrics.webhook_delivery(webhook::event_label(&event), "ignored");
            return Ok(http::json(StatusCode::OK, &json!({"status": "ignored"})));
        }
        Err(problem) => {
            metrics.webhook_delivery("other", "bad_request");
            return Err(problem);
        }
    };
    let label = webhook::event_label(&delivery.event_name);
    let outcome = match ctx
        .app
        .db
        .write_async(Actor::system("razorpay"), move |tx| {
            tx.apply_payment_event(&delivery)
        })
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            metrics.webhook_delivery(label, "error");
            return Err(e.into());
        }
    };
    metrics.webhook_delivery(label, outcome.effect);
    if outcome.status == DeliveryStatus::Processed {
        tracing::info!(
            target: "oms::payments",
            event = label,
            effect = outcome.effect,
            payment = outcome.payment.as_ref().map(|p| p.id.get()),
            order = outcome.payment.as_ref().and_then(|p| p.order_id).map(OrderId::get),
            "webhook delivery processed"
        );
    }
    let mut answer = json!({"status": outcome.status.as_str()});
    if let Some(payment) = &outcome.payment {
        answer["payment_id"] = json!(payment.id);
        answer["outcome"] = json!(payment.outcome);
    }
    Ok(http::json(StatusCode::OK, &answer))
}

/// `GET /api/payments?order=&outcome=&limit=&after=` (admin).
pub async fn list(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let order = http::query_num::<i64>(&q, "order")?.map(OrderId);
    let outcome = q
        .get("outcome")
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<PaymentOutcome>()
                .map_err(|e| Problem::bad_request(e.to_string()))
        })
        .transpose()?;
    let filter = PaymentFilter {
        order,
        outcome,
        limit: Some(limit),
        after: http::query_num::<i64>(&q, "after")?.map(PaymentId),
    };
    let items = ctx
        .app
        .db
        .read_async(move |store| store.payments(&filter))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |p| p.id.get()),
    ))
}

/// `GET /api/payments/{id}` (admin).
pub async fn get(ctx: Ctx<'_>) -> Result<Response, Problem> {
    let id = PaymentId(ctx.id()?);
    let payment = ctx.app.db.lookup(move |store| store.payment(id)).await?;
    Ok(http::json(StatusCode::OK, &payment))
}

/// `GET /api/orders/{id}/payments?limit=&after=`: the admin, or the
/// order's customer (another customer's order is 404, as for the order).
pub async fn of_order(ctx: Ctx<'_>, req: Request<Incoming>) -> Result<Response, Problem> {
    let id = OrderId(ctx.id()?);
    let q = http::query(req.uri());
    let limit = http::query_num::<u64>(&q, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    let after = http::query_num::<i64>(&q, "after")?.map(PaymentId);
    let order = ctx.app.db.lookup(move |store| store.order(id)).await?;
    if !ctx.access.can_see(order.customer_id) {
        return Err(Problem::not_found(format!("order {id} not found")));
    }
    let filter = PaymentFilter {
        order: Some(id),
        outcome: None,
        limit: Some(limit),
        after,
    };
    let items = ctx
        .app
        .db
        .read_async(move |store| store.payments(&filter))
        .await?;
    Ok(http::json(
        StatusCode::OK,
        &Page::new(items, limit, |p| p.id.get()),
    ))
}
