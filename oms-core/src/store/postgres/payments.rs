//! Payments: webhook deliveries and manual payments recorded and applied,
//! and the queries behind `oms payment` and `/api/payments`, as the SQLite
//! backend's.
//!
//! Locking: every write runs inside the caller's turn (a transaction that
//! holds the counter row, see the backend's module documentation: the
//! daemon's group commit, or a single transaction for the CLI), so writers
//! run one at a time. So the dedupe checks (the delivery's event id, the
//! provider's payment id, the refund id) and the effect they guard (the
//! payment row, the order's move to PAID, the change-log rows, the outbox
//! row written by the status change) commit together or not at all, and no
//! other writer can slip in between a check and its effect. The checks are
//! `INSERT ... ON CONFLICT DO NOTHING` on primary keys (`webhook_events`,
//! `payment_refunds`), which report a taken key as zero rows without
//! aborting the transaction, and a lookup by the unique `(provider,
//! provider_payment_id)` index, so even a second writer outside this code
//! could not record the same fact twice.
//!
//! Guarantees: a delivery replayed or reordered any number of times
//! changes nothing twice; one provider payment is one row; a payment moves
//! an order only PENDING → PAID, through the status machine
//! (`WriteTx::set_status`), and only when the money rules of
//! [`crate::payment::decide`] say so; refunds never touch the order.

use postgres::Row;

use super::session::Session;
use super::{Access, Tx};
use crate::payment::{
    Attempt, Decision, Delivery, DeliveryOutcome, DeliveryStatus, OrderView, Payment, PaymentEvent,
    PaymentFilter, PaymentOutcome, Provider, ProviderPayment, ProviderRefund, check_provider_id,
    decide,
};
use crate::store::{OrderWrites, PaymentReads, PaymentWrites};
use crate::{Currency, CustomerId, Error, OrderId, PaymentId, Result, Status, Timestamp};

/// The payment columns `payment_from_row` reads, in its order.
macro_rules! payment_columns {
    () => {
        "id, order_id, provider, provider_payment_id, event_id, amount, \
         currency, status, outcome, refunded_amount, created_at, updated_at"
    };
}

/// A stored value this build cannot read (a damaged or foreign row).
fn conversion(column: &str, e: &Error) -> Error {
    Error::Database(format!("payments.{column} holds an unreadable value: {e}"))
}

fn payment_from_row(r: &Row) -> Result<Payment> {
    let currency =
        Currency::parse(&r.get::<_, String>(6)).map_err(|e| conversion("currency", &e))?;
    Ok(Payment {
        id: PaymentId(r.get(0)),
        order_id: r.get::<_, Option<i64>>(1).map(OrderId),
        provider: r
            .get::<_, String>(2)
            .parse()
            .map_err(|e| conversion("provider", &e))?,
        provider_payment_id: r.get(3),
        event_id: r.get(4),
        amount: currency.from_minor(r.get(5)),
        currency,
        status: r
            .get::<_, String>(7)
            .parse()
            .map_err(|e| conversion("status", &e))?,
        outcome: r
            .get::<_, String>(8)
            .parse()
            .map_err(|e| conversion("outcome", &e))?,
        refunded_amount: currency.from_minor(r.get(9)),
        created_at: Timestamp::from_millis(r.get(10)),
        updated_at: Timestamp::from_millis(r.get(11)),
    })
}

fn find(s: &mut Session, id: PaymentId) -> Result<Option<Payment>> {
    s.query_opt(
        concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        ),
        &[&id.get()],
    )?
    .as_ref()
    .map(payment_from_row)
    .transpose()
}

fn find_by_provider_id(
    s: &mut Session,
    provider: Provider,
    provider_payment_id: &str,
) -> Result<Option<Payment>> {
    s.query_opt(
        concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE provider = $1 AND provider_payment_id = $2"
        ),
        &[&provider.as_str(), &provider_payment_id],
    )?
    .as_ref()
    .map(payment_from_row)
    .transpose()
}

/// How many payments name `order` (an order with payments is a record of
/// money and is not removed).
pub(crate) fn count_for_order(s: &mut Session, order: OrderId) -> Result<i64> {
    Ok(s.query_one(
        "SELECT count(*) FROM payments WHERE order_id = $1",
        &[&order.get()],
    )?
    .get(0))
}

/// What a payment needs to know of its order.
struct OrderRow {
    customer_id: CustomerId,
    status: Status,
    total: i64,
    currency: String,
    version: i64,
}

fn order_row(s: &mut Session, id: OrderId) -> Result<Option<OrderRow>> {
    let Some(r) = s.query_opt(
        "SELECT customer_id, status, total, currency, version FROM orders WHERE id = $1",
        &[&id.get()],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(OrderRow {
        customer_id: CustomerId(r.get(0)),
        status: r
            .get::<_, String>(1)
            .parse()
            .map_err(|e: Error| Error::Database(format!("orders.status is unreadable: {e}")))?,
        total: r.get(2),
        currency: r.get(3),
        version: r.get(4),
    }))
}

/// Whether a dedupe insert found its key taken. In a
/// `--features broken-webhook-dedupe` build (a NEGATIVE CONTROL for
/// scripts/torture, docs/reliability.md) the answer is ignored: replayed
/// deliveries and refunds are applied again.
fn already_seen(inserted_rows: u64) -> bool {
    !crate::controls::WEBHOOK_DEDUPE && inserted_rows == 0
}

impl Tx<'_> {
    /// A capture or failure of one provider payment: decided by the money
    /// rules, recorded, and applied to the order when they say so.
    fn payment_attempt(
        &self,
        attempt: Attempt,
        reported: &ProviderPayment,
        event_id: Option<&str>,
    ) -> Result<DeliveryOutcome> {
        check_provider_id("payment id", &reported.provider_payment_id)?;
        if reported.amount < 0 {
            return Err(Error::invalid("a payment amount cannot be negative"));
        }
        let existing = find_by_provider_id(
            &mut self.session(),
            reported.provider,
            &reported.provider_payment_id,
        )?;
        let order = match reported.order.id() {
            Some(id) => order_row(&mut self.session(), id)?,
            None => None,
        };
        let view = order.as_ref().map(|o| OrderView {
            status: o.status,
            amount_matches: o.total == reported.amount && o.currency == reported.currency.code(),
        });
        let (status, outcome) = match decide(attempt, existing.as_ref().map(|p| p.status), view) {
            Decision::Duplicate => {
                return Ok(DeliveryOutcome {
                    status: DeliveryStatus::Duplicate,
                    payment: existing,
                    effect: "duplicate",
                });
            }
            Decision::LateFailure => {
                return Ok(DeliveryOutcome {
                    status: DeliveryStatus::Processed,
                    payment: existing,
                    effect: "late_failure",
                });
            }
            Decision::Record { status, outcome } => (status, outcome),
        };
        let customer = order.as_ref().map(|o| o.customer_id);
        let now = self.now.millis();
        let order_id = reported.order.id().map(OrderId::get);
        let payment_id = match &existing {
            // A failed attempt turned captured (late authorisation): the
            // refunds it already collected stay counted.
            Some(before) => {
                let refunded = before.refunded_amount.minor().min(reported.amount);
                self.session().execute(
                    "UPDATE payments SET order_id = $2, event_id = $3, amount = $4,
                         currency = $5, status = $6, outcome = $7, refunded_amount = $8,
                         updated_at = $9
                     WHERE id = $1",
                    &[
                        &before.id.get(),
                        &order_id,
                        &event_id,
                        &reported.amount,
                        &reported.currency.code(),
                        &crate::payment::status_with_refunds(status, reported.amount, refunded)
                            .as_str(),
                        &outcome.as_str(),
                        &refunded,
                        &now,
                    ],
                )?;
                before.id
            }
            // New: refunds that arrived before it (deliveries come in any
            // order) are counted now.
            None => {
                let parked: i64 = self
                    .session()
                    .query_one(
                        "SELECT COALESCE(SUM(amount), 0)::bigint FROM payment_refunds
                         WHERE provider = $1 AND provider_payment_id = $2",
                        &[
                            &reported.provider.as_str(),
                            &reported.provider_payment_id.as_str(),
                        ],
                    )?
                    .get(0);
                let refunded = parked.clamp(0, reported.amount);
                let row = self.session().query_one(
                    "INSERT INTO payments (order_id, provider, provider_payment_id,
                         event_id, amount, currency, status, outcome, refunded_amount,
                         created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
                     RETURNING id",
                    &[
                        &order_id,
                        &reported.provider.as_str(),
                        &reported.provider_payment_id.as_str(),
                        &event_id,
                        &reported.amount,
                        &reported.currency.code(),
                        &crate::payment::status_with_refunds(status, reported.amount, refunded)
                            .as_str(),
                        &outcome.as_str(),
                        &refunded,
                        &now,
                    ],
                )?;
                PaymentId(row.get(0))
            }
        };
        let payment = find(&mut self.session(), payment_id)?
            .ok_or_else(|| Error::Database(format!("payment {payment_id} vanished")))?;
        let kind = if existing.is_some() {
            "payment.updated"
        } else {
            "payment.received"
        };
        self.log_change(kind, "payment", payment.id.get(), customer, &payment)?;
        if outcome == PaymentOutcome::Applied
            && let (Some(order), Some(order_id)) = (&order, reported.order.id())
        {
            // Through the status machine: the order.status_changed row and
            // the notification outbox row are written there. The version
            // read above guards against any change since.
            self.set_status(order_id, Status::Paid, Some(order.version))?;
        }
        Ok(DeliveryOutcome {
            status: DeliveryStatus::Processed,
            payment: Some(payment),
            effect: outcome.as_str(),
        })
    }

    /// A refund: recorded once by its id, added to its payment (or kept
    /// until the payment is recorded). Never touches the order.
    fn refund(&self, refund: &ProviderRefund, event_id: Option<&str>) -> Result<DeliveryOutcome> {
        check_provider_id("refund id", &refund.provider_refund_id)?;
        check_provider_id("payment id", &refund.provider_payment_id)?;
        if refund.amount < 0 {
            return Err(Error::invalid("a refund amount cannot be negative"));
        }
        let inserted = self.session().execute(
            "INSERT INTO payment_refunds (provider, provider_refund_id, provider_payment_id,
                 amount, event_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &refund.provider.as_str(),
                &refund.provider_refund_id.as_str(),
                &refund.provider_payment_id.as_str(),
                &refund.amount,
                &event_id,
                &self.now.millis(),
            ],
        )?;
        let payment = find_by_provider_id(
            &mut self.session(),
            refund.provider,
            &refund.provider_payment_id,
        )?;
        if already_seen(inserted) {
            return Ok(DeliveryOutcome {
                status: DeliveryStatus::Duplicate,
                payment,
                effect: "duplicate",
            });
        }
        let Some(before) = payment else {
            return Ok(DeliveryOutcome {
                status: DeliveryStatus::Processed,
                payment: None,
                effect: "refund_pending",
            });
        };
        let (refunded, status) = crate::payment::refund(
            before.status,
            before.amount.minor(),
            before.refunded_amount.minor(),
            refund.amount,
        );
        self.session().execute(
            "UPDATE payments SET refunded_amount = $2, status = $3, updated_at = $4
             WHERE id = $1",
            &[
                &before.id.get(),
                &refunded,
                &status.as_str(),
                &self.now.millis(),
            ],
        )?;
        let payment = find(&mut self.session(), before.id)?
            .ok_or_else(|| Error::Database(format!("payment {} vanished", before.id)))?;
        let customer = match payment.order_id {
            Some(order) => order_row(&mut self.session(), order)?.map(|o| o.customer_id),
            None => None,
        };
        self.log_change(
            "payment.updated",
            "payment",
            payment.id.get(),
            customer,
            &payment,
        )?;
        Ok(DeliveryOutcome {
            status: DeliveryStatus::Processed,
            payment: Some(payment),
            effect: "refund",
        })
    }
}

for_conn_and_tx!(PaymentReads {
    /// One payment.
    fn payment(&self, id: PaymentId) -> Result<Payment> {
        find(&mut self.session(), id)?.ok_or_else(|| Error::not_found("payment", id))
    }

    /// Payments matching the filter, ordered by id. One statement for
    /// every filter (an absent one is a NULL parameter), prepared once;
    /// no limit is `LIMIT NULL`.
    fn payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>> {
        let rows = self.session().query(
            concat!(
                "SELECT ",
                payment_columns!(),
                " FROM payments
                 WHERE ($1::bigint IS NULL OR order_id = $1)
                   AND ($2::text IS NULL OR outcome = $2)
                   AND ($3::bigint IS NULL OR id > $3)
                 ORDER BY id LIMIT $4"
            ),
            &[
                &filter.order.map(OrderId::get),
                &filter.outcome.map(PaymentOutcome::as_str),
                &filter.after.map(PaymentId::get),
                &filter.limit.map(super::count),
            ],
        )?;
        rows.iter().map(payment_from_row).collect()
    }
});

impl PaymentWrites for Tx<'_> {
    /// Records and applies one verified webhook delivery (DESIGN §7). A
    /// delivery seen before, by its event id or by the payment or refund it
    /// reports, is answered `Duplicate` and changes nothing.
    fn apply_payment_event(&self, delivery: &Delivery) -> Result<DeliveryOutcome> {
        self.atomic(|| {
            let provider = delivery.provider();
            if let Some(event_id) = &delivery.event_id {
                check_provider_id("event id", event_id)?;
                let inserted = self.session().execute(
                    "INSERT INTO webhook_events (provider, event_id, event, received_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &provider.as_str(),
                        &event_id.as_str(),
                        &delivery.event_name.as_str(),
                        &self.now.millis(),
                    ],
                )?;
                if already_seen(inserted) {
                    return Ok(DeliveryOutcome {
                        status: DeliveryStatus::Duplicate,
                        payment: None,
                        effect: "duplicate",
                    });
                }
            }
            let event_id = delivery.event_id.as_deref();
            match &delivery.event {
                PaymentEvent::Captured(p) => self.payment_attempt(Attempt::Capture, p, event_id),
                PaymentEvent::Failed(p) => self.payment_attempt(Attempt::Failure, p, event_id),
                PaymentEvent::Refunded(r) => self.refund(r, event_id),
            }
        })
    }

    /// Records a payment collected outside any provider (cash, a bank
    /// transfer) for `order` and applies it. Only the exact total of a
    /// PENDING order is accepted; anything else is a conflict and nothing
    /// is written. `reference` (the transfer's reference) is the payment's
    /// provider id, unique among manual payments; without one it is
    /// `oms-order-{id}`.
    fn record_manual_payment(
        &self,
        order_id: OrderId,
        amount: &str,
        reference: Option<&str>,
    ) -> Result<Payment> {
        self.atomic(|| {
            let order = order_row(&mut self.session(), order_id)?
                .ok_or_else(|| Error::not_found("order", order_id))?;
            let currency = Currency::parse(&order.currency)?;
            let amount = currency.parse_amount(amount)?;
            if order.status != Status::Pending {
                return Err(Error::Conflict(format!(
                    "order {order_id} is {}; only a PENDING order can be paid, nothing was recorded",
                    order.status
                )));
            }
            if amount.minor() != order.total {
                return Err(Error::Conflict(format!(
                    "{amount} {currency} is not the total of order {order_id} ({} {currency}); record exactly the total",
                    currency.from_minor(order.total)
                )));
            }
            let reference = match reference.map(str::trim) {
                Some(r) => {
                    check_provider_id("payment reference", r)?;
                    r.to_string()
                }
                None => format!("oms-order-{order_id}"),
            };
            if find_by_provider_id(&mut self.session(), Provider::Manual, &reference)?.is_some() {
                return Err(Error::Duplicate {
                    what: "manual payment reference",
                    value: reference,
                });
            }
            let reported = ProviderPayment {
                provider: Provider::Manual,
                provider_payment_id: reference,
                order: crate::payment::OrderRef::Id(order_id),
                amount: amount.minor(),
                currency,
            };
            let outcome = self.payment_attempt(Attempt::Capture, &reported, None)?;
            match outcome.payment {
                Some(payment) if payment.outcome == PaymentOutcome::Applied => Ok(payment),
                _ => Err(Error::Database(format!(
                    "manual payment for order {order_id} was not applied"
                ))),
            }
        })
    }
}

/// Against a real server (`OMS_TEST_PG`); rows set up with plain SQL, so
/// nothing here needs order placement (products and customers are ported
/// separately).
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::session::Target;
    use super::super::testdb::{SHOP, TestDb};
    use super::*;
    use crate::payment::{OrderRef, PaymentStatus};
    use crate::prelude::*;
    use crate::{Actor, Db, ErrorKind};

    fn shop(test: &str) -> Option<(TestDb, Db)> {
        let t = TestDb::create(test)?;
        let db = t.open();
        t.sql(SHOP);
        Some((t, db))
    }

    fn payment(id: &str, order: i64, amount: i64) -> ProviderPayment {
        ProviderPayment {
            provider: Provider::Razorpay,
            provider_payment_id: id.into(),
            order: OrderRef::Id(OrderId(order)),
            amount,
            currency: Currency::USD,
        }
    }

    fn refund(id: &str, payment: &str, amount: i64) -> PaymentEvent {
        PaymentEvent::Refunded(ProviderRefund {
            provider: Provider::Razorpay,
            provider_refund_id: id.into(),
            provider_payment_id: payment.into(),
            amount,
        })
    }

    fn delivery(event_id: &str, event: PaymentEvent) -> Delivery {
        Delivery {
            event_id: Some(event_id.into()),
            event_name: "test".into(),
            event,
        }
    }

    fn deliver(db: &Db, event_id: &str, event: PaymentEvent) -> DeliveryOutcome {
        let delivery = delivery(event_id, event);
        db.write(&Actor::system("razorpay"), |tx| {
            tx.apply_payment_event(&delivery)
        })
        .unwrap()
    }

    #[test]
    fn a_replayed_delivery_changes_nothing_twice_and_leaves_the_transaction_usable() {
        let Some((t, db)) = shop("payments::replayed") else {
            return;
        };
        // Order 2 is PAID: the capture is recorded, not applied.
        let first = deliver(&db, "e1", PaymentEvent::Captured(payment("pay_1", 2, 1250)));
        assert_eq!(
            (first.status, first.effect),
            (DeliveryStatus::Processed, "not_payable")
        );
        let seq = db.last_seq().unwrap();
        // The same event id (whatever it says now), and the same payment
        // under a new event id, twice in one transaction: both duplicates,
        // and the transaction goes on (ON CONFLICT does not abort it).
        let (again, other, after) = db
            .write(&Actor::system("razorpay"), |tx| {
                let again = tx.apply_payment_event(&delivery(
                    "e1",
                    PaymentEvent::Captured(payment("pay_9", 1, 1250)),
                ))?;
                let other = tx.apply_payment_event(&delivery(
                    "e2",
                    PaymentEvent::Captured(payment("pay_1", 2, 1250)),
                ))?;
                let after = tx.apply_payment_event(&delivery(
                    "e3",
                    PaymentEvent::Failed(payment("pay_2", 99, 700)),
                ))?;
                Ok((again, other, after))
            })
            .unwrap();
        assert_eq!(
            (again.status, again.effect, again.payment),
            (DeliveryStatus::Duplicate, "duplicate", None)
        );
        assert_eq!(other.status, DeliveryStatus::Duplicate);
        assert_eq!(other.payment.unwrap().id, first.payment.unwrap().id);
        assert_eq!(
            (after.status, after.effect),
            (DeliveryStatus::Processed, "failed")
        );
        assert_eq!(t.number("SELECT count(*) FROM webhook_events"), 3);
        assert_eq!(t.number("SELECT count(*) FROM payments"), 2);
        // Only the failed attempt wrote a change.
        let changes = db.changes_after(seq, 100, None).unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.kind.as_str(), c.entity_id, c.customer_id))
                .collect::<Vec<_>>(),
            [("payment.received", 2, None)]
        );
    }

    #[test]
    fn a_refund_before_its_payment_is_counted_when_the_payment_arrives() {
        let Some((t, db)) = shop("payments::refund_first") else {
            return;
        };
        let early = deliver(&db, "e1", refund("r1", "pay_1", 500));
        assert_eq!(
            (early.status, early.effect, early.payment),
            (DeliveryStatus::Processed, "refund_pending", None)
        );
        let again = deliver(&db, "e1-other-id", refund("r1", "pay_1", 500));
        assert_eq!(
            (again.status, again.effect),
            (DeliveryStatus::Duplicate, "duplicate")
        );
        let captured = deliver(&db, "e2", PaymentEvent::Captured(payment("pay_1", 2, 1250)));
        let p = captured.payment.unwrap();
        assert_eq!(
            (p.outcome, p.status, p.refunded_amount.minor()),
            (PaymentOutcome::NotPayable, PaymentStatus::Captured, 500)
        );
        let rest = deliver(&db, "e3", refund("r2", "pay_1", 750));
        let p = rest.payment.unwrap();
        assert_eq!(rest.effect, "refund");
        assert_eq!(
            (p.refunded_amount.minor(), p.status),
            (1250, PaymentStatus::Refunded)
        );
        // More than was captured is capped; the refund is still recorded once.
        let over = deliver(&db, "e4", refund("r3", "pay_1", 100));
        assert_eq!(over.payment.unwrap().refunded_amount.minor(), 1250);
        assert_eq!(t.number("SELECT count(*) FROM payment_refunds"), 3);
        // The change rows carry the order's customer; the order is untouched.
        let changes = db.changes_after(crate::Seq(0), 100, None).unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.kind.as_str(), c.customer_id))
                .collect::<Vec<_>>(),
            [
                ("payment.received", Some(CustomerId(1))),
                ("payment.updated", Some(CustomerId(1))),
                ("payment.updated", Some(CustomerId(1)))
            ]
        );
        assert_eq!(
            t.number(
                "SELECT count(*) FROM orders WHERE id = 2 AND status = 'PAID' AND version = 1"
            ),
            1
        );
    }

    #[test]
    fn a_failed_attempt_later_captured_updates_its_row_and_a_late_failure_changes_nothing() {
        let Some((_t, db)) = shop("payments::late") else {
            return;
        };
        let failed = deliver(&db, "e1", PaymentEvent::Failed(payment("pay_1", 3, 2500)));
        let failed = failed.payment.unwrap();
        assert_eq!(
            (failed.status, failed.outcome),
            (PaymentStatus::Failed, PaymentOutcome::Failed)
        );
        let captured = deliver(&db, "e2", PaymentEvent::Captured(payment("pay_1", 3, 2500)));
        let captured = captured.payment.unwrap();
        assert_eq!(captured.id, failed.id, "one provider payment, one row");
        assert_eq!(
            (
                captured.status,
                captured.outcome,
                captured.event_id.as_deref()
            ),
            (
                PaymentStatus::Captured,
                PaymentOutcome::NotPayable,
                Some("e2")
            )
        );
        let seq = db.last_seq().unwrap();
        let late = deliver(&db, "e3", PaymentEvent::Failed(payment("pay_1", 3, 2500)));
        assert_eq!(
            (late.status, late.effect),
            (DeliveryStatus::Processed, "late_failure")
        );
        assert_eq!(db.last_seq().unwrap(), seq);
        assert_eq!(db.payment(failed.id).unwrap(), captured);
        let kinds: Vec<String> = db
            .changes_after(crate::Seq(0), 100, None)
            .unwrap()
            .into_iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(kinds, ["payment.received", "payment.updated"]);
    }

    #[test]
    fn a_manual_payment_must_be_the_exact_total_of_a_pending_order() {
        let Some((t, db)) = shop("payments::manual") else {
            return;
        };
        t.sql(
            "INSERT INTO payments (order_id, provider, provider_payment_id, amount, currency,
                 status, outcome, created_at, updated_at)
             VALUES (2, 'manual', 'TRANSFER-7', 1250, 'USD', 'captured', 'applied', 0, 0)",
        );
        let before = db.last_seq().unwrap();
        let attempt = |order: i64, amount: &str, reference: Option<&str>| {
            db.write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(order), amount, reference)
            })
            .unwrap_err()
        };
        let err = attempt(1, "12.49", None);
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(
            err.to_string(),
            Error::Conflict(
                "12.49 USD is not the total of order 1 (12.50 USD); record exactly the total"
                    .into()
            )
            .to_string()
        );
        assert_eq!(attempt(1, "12.5x", None).kind(), ErrorKind::Invalid);
        assert_eq!(
            attempt(9, "12.50", None).to_string(),
            Error::not_found("order", 9).to_string()
        );
        assert_eq!(
            attempt(2, "12.50", None).to_string(),
            Error::Conflict(
                "order 2 is PAID; only a PENDING order can be paid, nothing was recorded".into()
            )
            .to_string()
        );
        assert!(matches!(
            attempt(1, "12.50", Some(" TRANSFER-7 ")),
            Error::Duplicate { value, .. } if value == "TRANSFER-7"
        ));
        assert_eq!(db.last_seq().unwrap(), before, "nothing written");
        assert_eq!(t.number("SELECT count(*) FROM payments"), 1);
    }

    #[test]
    fn lists_filter_and_page_by_id_and_payments_are_counted_per_order() {
        let Some((t, db)) = shop("payments::list") else {
            return;
        };
        deliver(&db, "e1", PaymentEvent::Captured(payment("pay_a", 2, 1250)));
        deliver(
            &db,
            "e2",
            PaymentEvent::Captured(payment("pay_b", 99, 1250)),
        );
        deliver(&db, "e3", PaymentEvent::Failed(payment("pay_c", 2, 1250)));
        let ids = |filter: PaymentFilter| -> Vec<String> {
            db.payments(&filter)
                .unwrap()
                .into_iter()
                .map(|p| p.provider_payment_id)
                .collect()
        };
        assert_eq!(ids(PaymentFilter::default()), ["pay_a", "pay_b", "pay_c"]);
        let of_2 = PaymentFilter {
            order: Some(OrderId(2)),
            ..Default::default()
        };
        assert_eq!(ids(of_2), ["pay_a", "pay_c"]);
        let unknown = PaymentFilter {
            outcome: Some(PaymentOutcome::UnknownOrder),
            ..Default::default()
        };
        assert_eq!(ids(unknown), ["pay_b"]);
        let first = db.payments(&PaymentFilter::default()).unwrap()[0].id;
        let page = PaymentFilter {
            after: Some(first),
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(ids(page), ["pay_b"]);
        let none = PaymentFilter {
            order: Some(OrderId(2)),
            outcome: Some(PaymentOutcome::Applied),
            ..Default::default()
        };
        assert!(ids(none).is_empty());
        assert_eq!(
            db.payment(PaymentId(999)).unwrap_err().to_string(),
            Error::not_found("payment", PaymentId(999)).to_string()
        );
        let target = Arc::new(Target::parse(&t.url, "test".into()).unwrap());
        let mut s = target.connect().unwrap();
        assert_eq!(count_for_order(&mut s, OrderId(2)).unwrap(), 2);
        assert_eq!(count_for_order(&mut s, OrderId(1)).unwrap(), 0);
    }

    #[test]
    fn a_manual_payment_or_a_matching_capture_pays_a_pending_order() {
        let Some((t, db)) = shop("payments::applied") else {
            return;
        };
        t.sql(
            "INSERT INTO orders (id, customer_id, status, total, currency, tracking_code,
                 created_at, updated_at) VALUES (4, 2, 'PENDING', 1250, 'USD', 'T-4', 0, 0);
             INSERT INTO order_items (order_id, line, product_id, sku, name, unit_price, quantity)
                 VALUES (4, 1, 1, 'A', 'Product A', 1250, 1);
             UPDATE products SET stock_reserved = 3;
             INSERT INTO stock_movements (product_id, delta_on_hand, delta_reserved, reason,
                 order_id, at) VALUES (1, 0, 1, 'reserve', 4, 0);",
        );
        let paid = db
            .write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(1), "12.5", Some("TRANSFER-7"))
            })
            .unwrap();
        assert_eq!(
            (
                paid.provider,
                paid.provider_payment_id.as_str(),
                paid.outcome
            ),
            (Provider::Manual, "TRANSFER-7", PaymentOutcome::Applied)
        );
        assert_eq!(paid.event_id, None);
        assert_eq!(db.order(OrderId(1)).unwrap().status, Status::Paid);
        // Paid now: a second one is refused.
        let err = db
            .write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(1), "12.50", None)
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

        let captured = deliver(&db, "e1", PaymentEvent::Captured(payment("pay_4", 4, 1250)));
        assert_eq!(
            (captured.status, captured.effect),
            (DeliveryStatus::Processed, "applied")
        );
        let order = db.order(OrderId(4)).unwrap();
        assert_eq!((order.status, order.version), (Status::Paid, 2));
        assert!(order.payment_collected);

        let changes = db.changes_after(crate::Seq(0), 100, None).unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.kind.as_str(), c.entity_id, c.customer_id))
                .collect::<Vec<_>>(),
            [
                ("payment.received", paid.id.get(), Some(CustomerId(1))),
                ("order.status_changed", 1, Some(CustomerId(1))),
                (
                    "payment.received",
                    captured.payment.unwrap().id.get(),
                    Some(CustomerId(2))
                ),
                ("order.status_changed", 4, Some(CustomerId(2)))
            ]
        );
        // Each move to PAID queued its mail.
        let mails = db
            .notifications(&crate::NotificationFilter::default())
            .unwrap();
        assert_eq!(
            mails
                .iter()
                .map(|n| (n.order_id.get(), n.kind.as_str(), n.recipient.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "order.paid", "c@example.com"),
                (4, "order.paid", "d@example.com")
            ]
        );
        assert!(db.verify().unwrap().is_clean());
    }

    #[test]
    fn an_order_with_payments_is_not_removed() {
        let Some((_t, db)) = shop("payments::kept") else {
            return;
        };
        let short = deliver(
            &db,
            "e1",
            PaymentEvent::Captured(payment("pay_short", 1, 1249)),
        );
        assert_eq!(short.effect, "amount_mismatch");
        let err = db
            .write(&Actor::cli(), |tx| tx.remove_order(OrderId(1)))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("has payments"), "{err}");
        // Without payments it goes.
        db.write(&Actor::cli(), |tx| tx.remove_order(OrderId(3)))
            .unwrap();
        assert!(db.verify().unwrap().is_clean());
    }
}
