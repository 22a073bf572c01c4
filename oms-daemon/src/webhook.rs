//! The Razorpay webhook's two pure halves: the signature check on the raw
//! body and the decoding of a verified body into a [`Delivery`]. The HTTP
//! handler (`handlers/payments.rs`) reads the body, calls these, and hands
//! the delivery to the writer.

use hmac::{Hmac, Mac};
use oms_core::Currency;
use oms_core::payment::{
    Delivery, OrderRef, PaymentEvent, Provider, ProviderPayment, ProviderRefund,
};
use serde_json::Value;
use sha2::Sha256;

use crate::problem::Problem;

/// The largest webhook body read (413 above). Razorpay's payloads are a
/// few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// The header carrying the hex HMAC-SHA256 of the raw body.
pub const SIGNATURE_HEADER: &str = "x-razorpay-signature";
/// The header carrying the event's id, the same on every retry.
pub const EVENT_ID_HEADER: &str = "x-razorpay-event-id";

/// The webhook secrets: `OMS_WEBHOOK_SECRET` and, during a rotation,
/// `OMS_WEBHOOK_SECRET_PREVIOUS`. Each is kept as an HMAC already keyed,
/// so a check hashes only the body.
#[derive(Clone)]
pub struct Keys {
    keyed: Vec<Hmac<Sha256>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "webhook::Keys({} secret(s), redacted)", self.keyed.len())
    }
}

impl Keys {
    /// Keys from the current secret and an optional previous one; `None`
    /// without a current secret (the webhook then answers 503).
    pub fn new(current: Option<&str>, previous: Option<&str>) -> Option<Keys> {
        let current = current.filter(|s| !s.is_empty())?;
        let keyed = std::iter::once(current)
            .chain(previous.filter(|s| !s.is_empty()))
            .filter_map(|secret| Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok())
            .collect();
        Some(Keys { keyed })
    }

    /// Whether `signature` (the header's value) is the hex HMAC-SHA256 of
    /// `body` under one of the secrets. The comparison is constant-time
    /// (`verify_slice`); a value that is not 64 hex digits never matches.
    pub fn verify(&self, body: &[u8], signature: &[u8]) -> bool {
        let Some(expected) = decode_hex_32(signature) else {
            return false;
        };
        // Every secret is tried, so the time taken does not tell which
        // one matched.
        let mut matched = false;
        for keyed in &self.keyed {
            let mut mac = keyed.clone();
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        matched
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`, as a provider signs it
/// (tests, the torture and bench harnesses).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 64 hex digits (either case) as 32 bytes; anything else is `None`.
fn decode_hex_32(text: &[u8]) -> Option<[u8; 32]> {
    let text = text.trim_ascii();
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// A verified body, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// An event oms does not act on: answered `ignored`, nothing written.
    Ignored {
        event: String,
    },
    Delivery(Delivery),
}

/// The events oms acts on, as metric labels; anything else is `other`.
pub fn event_label(event: &str) -> &'static str {
    match event {
        "payment.captured" => "payment.captured",
        "order.paid" => "order.paid",
        "payment.failed" => "payment.failed",
        "refund.processed" => "refund.processed",
        _ => "other",
    }
}

/// Decodes a verified Razorpay body (envelope `{entity: "event", event,
/// contains, payload, created_at}`). Unknown fields are allowed: the
/// provider adds fields over time and the signature already vouches for
/// the sender. A known event missing what it needs is a 400.
pub fn decode_razorpay(body: &[u8], event_id: Option<String>) -> Result<Decoded, Problem> {
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    let event = envelope
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad_request("the body has no `event` name"))?
        .to_string();
    let payload = &envelope["payload"];
    let decoded = match event.as_str() {
        "payment.captured" => {
            let entity = entity(payload, "payment")?;
            PaymentEvent::Captured(payment(entity, order_ref(&[&entity["notes"]["order_id"]]))?)
        }
        "payment.failed" => {
            let entity = entity(payload, "payment")?;
            PaymentEvent::Failed(payment(entity, order_ref(&[&entity["notes"]["order_id"]]))?)
        }
        "order.paid" => {
            let entity = entity(payload, "payment")?;
            let order = &payload["order"]["entity"];
            let reference = order_ref(&[
                &entity["notes"]["order_id"],
                &order["notes"]["order_id"],
                &order["receipt"],
            ]);
            PaymentEvent::Captured(payment(entity, reference)?)
        }
        "refund.processed" => {
            let entity = entity(payload, "refund")?;
            PaymentEvent::Refunded(ProviderRefund {
                provider: Provider::Razorpay,
                provider_refund_id: text(entity, "refund", "id")?,
                provider_payment_id: text(entity, "refund", "payment_id")?,
                amount: amount(entity, "refund")?,
            })
        }
        _ => return Ok(Decoded::Ignored { event }),
    };
    Ok(Decoded::Delivery(Delivery {
        event_id,
        event_name: event,
        event: decoded,
    }))
}

/// `payload.<what>.entity`, which must be an object.
fn entity<'a>(payload: &'a Value, what: &str) -> Result<&'a Value, Problem> {
    let entity = &payload[what]["entity"];
    if entity.is_object() {
        Ok(entity)
    } else {
        Err(Problem::bad_request(format!(
            "payload.{what}.entity is missing"
        )))
    }
}

fn text(entity: &Value, what: &str, field: &str) -> Result<String, Problem> {
    let value = entity[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Problem::bad_request(format!("payload.{what}.entity.{field} must be a string"))
        })?;
    oms_core::payment::check_provider_id(field, value)
        .map_err(|e| Problem::bad_request(format!("payload.{what}.entity.{field}: {e}")))?;
    Ok(value.to_string())
}

/// An amount in minor units: a non-negative integer (never a float).
fn amount(entity: &Value, what: &str) -> Result<i64, Problem> {
    entity["amount"]
        .as_u64()
        .and_then(|a| i64::try_from(a).ok())
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "payload.{what}.entity.amount must be a whole number of minor units"
            ))
        })
}

fn payment(entity: &Value, order: OrderRef) -> Result<ProviderPayment, Problem> {
    let currency = entity["currency"]
        .as_str()
        .ok_or_else(|| Problem::bad_request("payload.payment.entity.currency must be a string"))
        .and_then(|c| {
            Currency::parse(c)
                .map_err(|e| Problem::bad_request(format!("payload.payment.entity.currency: {e}")))
        })?;
    Ok(ProviderPayment {
        provider: Provider::Razorpay,
        provider_payment_id: text(entity, "payment", "id")?,
        order,
        amount: amount(entity, "payment")?,
        currency,
    })
}

/// The first of `candidates` that is present (`notes` may be an object or
/// an empty array `[]`, where nothing is present), read as an order id.
fn order_ref(candidates: &[&Value]) -> OrderRef {
    for value in candidates {
        match value {
            Value::String(s) if !s.trim().is_empty() => return OrderRef::from_text(s),
            Value::Number(n) => {
                return n.as_i64().map_or(OrderRef::Unreadable, |id| {
                    OrderRef::from_text(&id.to_string())
                });
            }
            Value::Null | Value::String(_) => {}
            _ => return OrderRef::Unreadable,
        }
    }
    OrderRef::Unreadable
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_core::OrderId;
    use serde_json::json;

    const SECRET: &str = "whsec_test";

    #[test]
    fn signatures_are_checked_on_the_raw_bytes_with_either_secret() {
        let body = br#"{"event":"payment.captured"}"#;
        let keys = Keys::new(Some(SECRET), Some("old")).unwrap();
        let good = sign(SECRET, body);
        assert!(keys.verify(body, good.as_bytes()));
        assert!(keys.verify(body, good.to_uppercase().as_bytes()));
        assert!(keys.verify(body, sign("old", body).as_bytes()));
        assert!(!keys.verify(body, sign("other", body).as_bytes()));
        assert!(!keys.verify(br#"{"event": "payment.captured"}"#, good.as_bytes()));
        for bad in [
            "",
            "zz",
            &good[..62],
            &format!("{good}00"),
            &good.replace('a', "g"),
        ] {
            assert!(!keys.verify(body, bad.as_bytes()), "{bad:?}");
        }
        // Without the previous secret, its signatures fail.
        let current_only = Keys::new(Some(SECRET), None).unwrap();
        assert!(!current_only.verify(body, sign("old", body).as_bytes()));
        assert!(Keys::new(None, Some("old")).is_none());
        assert!(Keys::new(Some(""), None).is_none());
        assert!(!format!("{keys:?}").contains(SECRET));
    }

    /// The example of RFC 4231 (test case 2): the HMAC itself is right.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn decode(body: &Value) -> Result<Decoded, Problem> {
        decode_razorpay(&serde_json::to_vec(body).unwrap(), Some("evt_1".into()))
    }

    fn captured(notes: Value) -> Value {
        json!({
            "entity": "event", "event": "payment.captured", "contains": ["payment"],
            "payload": {"payment": {"entity": {
                "id": "pay_1", "amount": 4999, "currency": "INR", "status": "captured",
                "notes": notes
            }}},
            "created_at": 1700000000
        })
    }

    fn order_of(decoded: Result<Decoded, Problem>) -> OrderRef {
        match decoded {
            Ok(Decoded::Delivery(Delivery {
                event: PaymentEvent::Captured(p) | PaymentEvent::Failed(p),
                ..
            })) => p.order,
            other => panic!("not a payment: {other:?}"),
        }
    }

    #[test]
    fn notes_may_be_an_object_or_an_empty_array() {
        assert_eq!(
            order_of(decode(&captured(json!({"order_id": "42"})))),
            OrderRef::Id(OrderId(42))
        );
        assert_eq!(
            order_of(decode(&captured(json!({"order_id": 42})))),
            OrderRef::Id(OrderId(42))
        );
        for notes in [
            json!([]),
            json!({}),
            json!(null),
            json!({"order_id": "abc"}),
            json!(["42"]),
        ] {
            assert_eq!(
                order_of(decode(&captured(notes.clone()))),
                OrderRef::Unreadable,
                "{notes}"
            );
        }
    }

    #[test]
    fn order_paid_falls_back_to_the_order_entity() {
        let body = |payment_notes: Value, order_notes: Value, receipt: Value| {
            json!({
                "event": "order.paid",
                "payload": {
                    "payment": {"entity": {"id": "pay_1", "amount": 100, "currency": "INR",
                                            "notes": payment_notes}},
                    "order": {"entity": {"id": "order_X", "notes": order_notes, "receipt": receipt}}
                }
            })
        };
        let id = |n| OrderRef::Id(OrderId(n));
        assert_eq!(
            order_of(decode(&body(
                json!({"order_id": "1"}),
                json!({"order_id": "2"}),
                json!("3")
            ))),
            id(1)
        );
        assert_eq!(
            order_of(decode(&body(
                json!([]),
                json!({"order_id": "2"}),
                json!("3")
            ))),
            id(2)
        );
        assert_eq!(
            order_of(decode(&body(json!([]), json!([]), json!("3")))),
            id(3)
        );
        assert_eq!(
            order_of(decode(&body(json!([]), json!([]), json!(null)))),
            OrderRef::Unreadable
        );
    }

    #[test]
    fn refunds_and_other_events() {
        let refund = json!({"event": "refund.processed", "payload": {"refund": {"entity": {
            "id": "rfnd_1", "payment_id": "pay_1", "amount": 500, "currency": "INR"}}}});
        match decode(&refund).unwrap() {
            Decoded::Delivery(Delivery {
                event: PaymentEvent::Refunded(r),
                ..
            }) => {
                assert_eq!(
                    (
                        r.provider_refund_id.as_str(),
                        r.provider_payment_id.as_str(),
                        r.amount
                    ),
                    ("rfnd_1", "pay_1", 500)
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decode(&json!({"event": "payment.authorized", "payload": {}})).unwrap(),
            Decoded::Ignored {
                event: "payment.authorized".into()
            }
        );
    }

    #[test]
    fn known_events_without_what_they_need_are_bad_requests() {
        let bad = [
            json!([]),
            json!({"payload": {}}),
            json!({"event": 7}),
            json!({"event": "payment.captured", "payload": {}}),
            json!({"event": "payment.captured", "payload": {"payment": {"entity": {"id": "pay_1", "amount": 1.5, "currency": "INR"}}}}),
            json!({"event": "payment.captured", "payload": {"payment": {"entity": {"id": "pay_1", "amount": -1, "currency": "INR"}}}}),
            json!({"event": "payment.captured", "payload": {"payment": {"entity": {"id": "pay_1", "amount": 1, "currency": "rupees"}}}}),
            json!({"event": "payment.captured", "payload": {"payment": {"entity": {"id": "", "amount": 1, "currency": "INR"}}}}),
            json!({"event": "refund.processed", "payload": {"refund": {"entity": {"id": "rfnd_1", "amount": 1}}}}),
        ];
        for body in bad {
            let err = decode(&body).unwrap_err();
            assert_eq!(err.status, hyper::StatusCode::BAD_REQUEST, "{body}");
        }
        assert!(decode_razorpay(b"\xff\x00garbage", None).is_err());
    }
}
