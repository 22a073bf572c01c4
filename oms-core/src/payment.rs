//! Payments (DESIGN §7): what a payment provider told us, what we recorded,
//! and the money rules as pure functions with no I/O.
//!
//! The rules, decided by [`decide`] and [`refund`] and applied by the store
//! (`store/payments.rs`) inside the transaction that records them:
//!
//! - A capture is **applied** (the order moves PENDING → PAID) only when the
//!   order is PENDING and the amount and currency equal its total and
//!   currency. Otherwise it is recorded with the outcome that says why not,
//!   and the order is left as it is: `amount_mismatch`, `not_payable`
//!   (CANCELLED, FULFILLED, or already PAID by something else: money to give
//!   back, never a re-reservation of stock) or `unknown_order`.
//! - Forward only: a failure never undoes a capture (a late `payment.failed`
//!   changes nothing), and a capture after a failure of the same payment is
//!   applied like any capture (late authorisation).
//! - A payment is recorded once: a second capture of the same provider
//!   payment id (a replay, or `order.paid` beside `payment.captured`) is a
//!   duplicate.
//! - A refund adds to `refunded_amount` (at most up to the amount); at the
//!   amount the payment's status becomes `refunded`. A refund never changes
//!   the order.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::{Currency, Error, Money, OrderId, PaymentId, Status, Timestamp};

/// Who collected the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Razorpay, through the webhook.
    Razorpay,
    /// Cash or a bank transfer, recorded by hand (`oms payment record`).
    Manual,
}

/// Where a payment stands with its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Captured,
    Failed,
    Refunded,
}

/// What a payment did to its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentOutcome {
    /// It paid the order: PENDING → PAID.
    Applied,
    /// Its amount or currency differs from the order's: money to give back.
    AmountMismatch,
    /// The order was CANCELLED, FULFILLED or already paid: money to give back.
    NotPayable,
    /// No order by the id the provider sent: money to look into.
    UnknownOrder,
    /// The payment failed; nothing was collected.
    Failed,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+ $(,)?) => {
        impl $ty {
            /// Every value, for help texts and table tests.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The lower-case name used in JSON, the database and the CLI.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> crate::Result<$ty> {
                let wanted = s.trim().to_ascii_lowercase();
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == wanted)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $ty::ALL.iter().map(|v| v.as_str()).collect();
                        Error::invalid(format!(
                            "unknown {} {s:?}: use {}",
                            $what,
                            names.join(", ")
                        ))
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

text_enum!(Provider, "payment provider", Razorpay => "razorpay", Manual => "manual");
text_enum!(PaymentStatus, "payment status",
    Captured => "captured", Failed => "failed", Refunded => "refunded");
text_enum!(PaymentOutcome, "payment outcome",
    Applied => "applied",
    AmountMismatch => "amount_mismatch",
    NotPayable => "not_payable",
    UnknownOrder => "unknown_order",
    Failed => "failed",
);

/// A recorded payment, with the external field names of DESIGN §7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub id: PaymentId,
    /// The order it was meant for; `None` when the provider named no order
    /// we could read as an id (`unknown_order`).
    pub order_id: Option<OrderId>,
    pub provider: Provider,
    /// The provider's id of the payment (`pay_...`); unique per provider.
    pub provider_payment_id: String,
    /// The webhook delivery (`x-razorpay-event-id`) that set its status;
    /// `None` for manual payments.
    pub event_id: Option<String>,
    pub amount: Money,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub outcome: PaymentOutcome,
    pub refunded_amount: Money,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Filters of `oms payment list` and `GET /api/payments`.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub order: Option<OrderId>,
    pub outcome: Option<PaymentOutcome>,
    pub limit: Option<u64>,
    /// Cursor: only payments with a larger id.
    pub after: Option<PaymentId>,
}

/// Longest provider id (payment, refund or event id) accepted.
pub const MAX_PROVIDER_ID: usize = 128;

/// Checks an id the provider sent (payment, refund, event): 1 to
/// [`MAX_PROVIDER_ID`] printable ASCII characters.
pub fn check_provider_id(what: &str, id: &str) -> crate::Result<()> {
    if id.is_empty() || id.len() > MAX_PROVIDER_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(format!(
            "{what} must be 1 to {MAX_PROVIDER_ID} printable ASCII characters"
        )));
    }
    Ok(())
}

/// The order a provider names, as it named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// A positive integer: an order id (which may not exist).
    Id(OrderId),
    /// Missing, or text that is no order id of ours.
    Unreadable,
}

impl OrderRef {
    /// Reads an order reference: `42`, `"42"` or `" 42 "`; anything else is
    /// unreadable.
    pub fn from_text(text: &str) -> OrderRef {
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map_or(OrderRef::Unreadable, |id| OrderRef::Id(OrderId(id)))
    }

    pub fn id(&self) -> Option<OrderId> {
        match self {
            OrderRef::Id(id) => Some(*id),
            OrderRef::Unreadable => None,
        }
    }
}

/// A payment as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPayment {
    pub provider: Provider,
    pub provider_payment_id: String,
    pub order: OrderRef,
    /// Minor units.
    pub amount: i64,
    pub currency: Currency,
}

/// A refund as the provider reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub provider: Provider,
    /// The provider's id of the refund (`rfnd_...`): refunds are
    /// deduplicated on it.
    pub provider_refund_id: String,
    /// The payment it gives money back from.
    pub provider_payment_id: String,
    /// Minor units.
    pub amount: i64,
}

/// What a webhook delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    /// `payment.captured`, or `order.paid` (the same capture).
    Captured(ProviderPayment),
    /// `payment.failed`.
    Failed(ProviderPayment),
    /// `refund.processed`.
    Refunded(ProviderRefund),
}

impl PaymentEvent {
    fn provider(&self) -> Provider {
        match self {
            PaymentEvent::Captured(p) | PaymentEvent::Failed(p) => p.provider,
            PaymentEvent::Refunded(r) => r.provider,
        }
    }
}

/// One verified webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's event id (`x-razorpay-event-id`): a delivery whose id
    /// was seen before is a duplicate. `None` when the header was absent;
    /// the payment and refund ids still deduplicate.
    pub event_id: Option<String>,
    /// The event name as sent (`payment.captured`, ...), kept with the id.
    pub event_name: String,
    pub event: PaymentEvent,
}

impl Delivery {
    pub fn provider(&self) -> Provider {
        self.event.provider()
    }
}

/// How a delivery was answered: `{"status": "processed" | "duplicate"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// New: its effect (possibly none, like a late failure) was applied now.
    Processed,
    /// Its effect was already there (the same event id, or the same payment
    /// or refund recorded by an earlier delivery); nothing changed.
    Duplicate,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Processed => "processed",
            DeliveryStatus::Duplicate => "duplicate",
        }
    }
}

/// What a delivery did, for the answer, the logs and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub status: DeliveryStatus,
    /// The payment it recorded or touched, as it is after the delivery.
    pub payment: Option<Payment>,
    /// One word for the metrics: an outcome (`applied`, ...), `refund`,
    /// `refund_pending` (its payment is not recorded yet), `late_failure`
    /// or `duplicate`.
    pub effect: &'static str,
}

/// What we know about the order a capture or failure names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderView {
    pub status: Status,
    /// The payment's amount and currency equal the order's total and
    /// currency.
    pub amount_matches: bool,
}

/// A capture or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Capture,
    Failure,
}

/// What to do with a capture or failure of one provider payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The payment is already recorded in this state: nothing to do.
    Duplicate,
    /// A failure of a payment already captured (or refunded): forward only,
    /// nothing changes.
    LateFailure,
    /// Record the payment (a new row, or the failed row turned captured)
    /// with this status and outcome; `Applied` also moves the order to PAID.
    Record {
        status: PaymentStatus,
        outcome: PaymentOutcome,
    },
}

/// The money rules for one capture or failure: `existing` is the status of
/// the row already recorded for the same provider payment id, `order` what
/// we know of the order it names (`None`: no such order).
pub fn decide(
    attempt: Attempt,
    existing: Option<PaymentStatus>,
    order: Option<OrderView>,
) -> Decision {
    match (attempt, existing) {
        (Attempt::Capture, Some(PaymentStatus::Captured | PaymentStatus::Refunded)) => {
            Decision::Duplicate
        }
        (Attempt::Capture, None | Some(PaymentStatus::Failed)) => Decision::Record {
            status: PaymentStatus::Captured,
            outcome: capture_outcome(order),
        },
        (Attempt::Failure, Some(PaymentStatus::Failed)) => Decision::Duplicate,
        (Attempt::Failure, Some(PaymentStatus::Captured | PaymentStatus::Refunded)) => {
            Decision::LateFailure
        }
        (Attempt::Failure, None) => Decision::Record {
            status: PaymentStatus::Failed,
            outcome: PaymentOutcome::Failed,
        },
    }
}

/// What a capture does to the order it names.
fn capture_outcome(order: Option<OrderView>) -> PaymentOutcome {
    match order {
        None => PaymentOutcome::UnknownOrder,
        // Never re-reserves: a CANCELLED order released its stock, and a
        // PAID one was paid by something else.
        Some(OrderView {
            status: Status::Paid | Status::Fulfilled | Status::Cancelled,
            ..
        }) => PaymentOutcome::NotPayable,
        Some(OrderView {
            status: Status::Pending,
            amount_matches: false,
        }) => PaymentOutcome::AmountMismatch,
        Some(OrderView {
            status: Status::Pending,
            amount_matches: true,
        }) => PaymentOutcome::Applied,
    }
}

/// A payment's refunded amount and status after a refund of `refund`
/// minor units: the total is capped at the amount (a provider never
/// refunds more than it captured; if one said so, the payment is simply
/// refunded in full), and a captured payment refunded in full becomes
/// `refunded`. A failed payment keeps its status.
pub fn refund(
    status: PaymentStatus,
    amount: i64,
    refunded_before: i64,
    refund: i64,
) -> (i64, PaymentStatus) {
    let refunded = refunded_before.saturating_add(refund.max(0)).min(amount);
    (refunded, status_with_refunds(status, amount, refunded))
}

/// The status of a payment with `refunded` of its `amount` given back: a
/// captured payment refunded in full is `refunded`; any other keeps its
/// status (refunds only ever add).
pub fn status_with_refunds(status: PaymentStatus, amount: i64, refunded: i64) -> PaymentStatus {
    match status {
        PaymentStatus::Captured if refunded > 0 && refunded >= amount => PaymentStatus::Refunded,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Attempt::{Capture, Failure};
    use PaymentOutcome as O;
    use PaymentStatus as S;

    fn order(status: Status, amount_matches: bool) -> Option<OrderView> {
        Some(OrderView {
            status,
            amount_matches,
        })
    }

    fn record(status: PaymentStatus, outcome: PaymentOutcome) -> Decision {
        Decision::Record { status, outcome }
    }

    /// Every (attempt × recorded payment × order) with what must happen.
    #[test]
    fn decisions_follow_the_money_rules() {
        use Status::*;
        let cases: &[(Attempt, Option<PaymentStatus>, Option<OrderView>, Decision)] = &[
            // A new capture.
            (
                Capture,
                None,
                order(Pending, true),
                record(S::Captured, O::Applied),
            ),
            (
                Capture,
                None,
                order(Pending, false),
                record(S::Captured, O::AmountMismatch),
            ),
            (
                Capture,
                None,
                order(Paid, true),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                None,
                order(Paid, false),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                None,
                order(Fulfilled, true),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                None,
                order(Cancelled, true),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                None,
                order(Cancelled, false),
                record(S::Captured, O::NotPayable),
            ),
            (Capture, None, None, record(S::Captured, O::UnknownOrder)),
            // A capture after a failure of the same payment: late
            // authorisation, judged like a new capture.
            (
                Capture,
                Some(S::Failed),
                order(Pending, true),
                record(S::Captured, O::Applied),
            ),
            (
                Capture,
                Some(S::Failed),
                order(Pending, false),
                record(S::Captured, O::AmountMismatch),
            ),
            (
                Capture,
                Some(S::Failed),
                order(Cancelled, true),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                Some(S::Failed),
                order(Paid, true),
                record(S::Captured, O::NotPayable),
            ),
            (
                Capture,
                Some(S::Failed),
                None,
                record(S::Captured, O::UnknownOrder),
            ),
            // The same capture again (replay, or order.paid beside
            // payment.captured): whatever the order is now, nothing happens.
            (
                Capture,
                Some(S::Captured),
                order(Paid, true),
                Decision::Duplicate,
            ),
            (
                Capture,
                Some(S::Captured),
                order(Pending, true),
                Decision::Duplicate,
            ),
            (
                Capture,
                Some(S::Captured),
                order(Cancelled, true),
                Decision::Duplicate,
            ),
            (Capture, Some(S::Captured), None, Decision::Duplicate),
            (
                Capture,
                Some(S::Refunded),
                order(Paid, true),
                Decision::Duplicate,
            ),
            (
                Capture,
                Some(S::Refunded),
                order(Pending, true),
                Decision::Duplicate,
            ),
            // A new failure: recorded, the order untouched whatever it is.
            (
                Failure,
                None,
                order(Pending, true),
                record(S::Failed, O::Failed),
            ),
            (
                Failure,
                None,
                order(Paid, true),
                record(S::Failed, O::Failed),
            ),
            (
                Failure,
                None,
                order(Cancelled, false),
                record(S::Failed, O::Failed),
            ),
            (Failure, None, None, record(S::Failed, O::Failed)),
            // Forward only: a failure after the capture changes nothing.
            (
                Failure,
                Some(S::Captured),
                order(Paid, true),
                Decision::LateFailure,
            ),
            (
                Failure,
                Some(S::Captured),
                order(Fulfilled, true),
                Decision::LateFailure,
            ),
            (
                Failure,
                Some(S::Refunded),
                order(Cancelled, true),
                Decision::LateFailure,
            ),
            // The same failure again.
            (
                Failure,
                Some(S::Failed),
                order(Pending, true),
                Decision::Duplicate,
            ),
            (Failure, Some(S::Failed), None, Decision::Duplicate),
        ];
        for (attempt, existing, order, expected) in cases {
            assert_eq!(
                decide(*attempt, *existing, *order),
                *expected,
                "{attempt:?} with payment {existing:?} on order {order:?}"
            );
        }
    }

    /// Exhaustive over every input: only a capture of a PENDING order with
    /// the right amount is applied, so no other path can move an order.
    #[test]
    fn only_a_matching_capture_of_a_pending_order_is_applied() {
        let existing = [None, Some(S::Captured), Some(S::Failed), Some(S::Refunded)];
        let mut orders = vec![None];
        for status in Status::ALL {
            for matches in [true, false] {
                orders.push(order(status, matches));
            }
        }
        for attempt in [Capture, Failure] {
            for e in existing {
                for o in &orders {
                    let applied = matches!(
                        decide(attempt, e, *o),
                        Decision::Record {
                            outcome: O::Applied,
                            ..
                        }
                    );
                    let expected = attempt == Capture
                        && matches!(e, None | Some(S::Failed))
                        && *o == order(Status::Pending, true);
                    assert_eq!(applied, expected, "{attempt:?} {e:?} {o:?}");
                }
            }
        }
    }

    #[test]
    fn refunds_add_up_to_the_amount() {
        let cases = [
            // (status, amount, before, refund) -> (after, status)
            ((S::Captured, 1000, 0, 400), (400, S::Captured)),
            ((S::Captured, 1000, 400, 600), (1000, S::Refunded)),
            ((S::Captured, 1000, 400, 700), (1000, S::Refunded)),
            ((S::Captured, 1000, 0, 0), (0, S::Captured)),
            ((S::Captured, 1000, 0, -5), (0, S::Captured)),
            ((S::Refunded, 1000, 1000, 1), (1000, S::Refunded)),
            ((S::Failed, 1000, 0, 1000), (1000, S::Failed)),
            ((S::Captured, 0, 0, 0), (0, S::Captured)),
            (
                (S::Captured, i64::MAX, i64::MAX - 1, i64::MAX),
                (i64::MAX, S::Refunded),
            ),
        ];
        for ((status, amount, before, r), expected) in cases {
            assert_eq!(
                refund(status, amount, before, r),
                expected,
                "{status:?} {amount} {before} {r}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for o in PaymentOutcome::ALL {
            assert_eq!(o.as_str().parse::<PaymentOutcome>().unwrap(), *o);
        }
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>().unwrap(), *s);
        }
        assert_eq!(" Manual ".parse::<Provider>().unwrap(), Provider::Manual);
        let err = "paid".parse::<PaymentOutcome>().unwrap_err().to_string();
        assert!(err.contains("amount_mismatch"), "{err}");
    }

    #[test]
    fn order_refs() {
        assert_eq!(OrderRef::from_text(" 42 "), OrderRef::Id(OrderId(42)));
        for bad in ["", "0", "-3", "order_42", "4.2", "99999999999999999999"] {
            assert_eq!(OrderRef::from_text(bad), OrderRef::Unreadable, "{bad}");
        }
    }

    #[test]
    fn provider_ids() {
        assert!(check_provider_id("id", "pay_29QQoUBi66xm2f").is_ok());
        for bad in ["", "pay 1", "pay\n1", &"x".repeat(129), "päy"] {
            assert!(check_provider_id("id", bad).is_err(), "{bad:?}");
        }
    }
}
