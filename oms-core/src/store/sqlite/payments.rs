//! Payments: webhook deliveries and manual payments recorded and applied,
//! and the queries behind `oms payment` and `/api/payments`.
//!
//! Locking: every write runs inside the caller's `BEGIN IMMEDIATE`
//! transaction (the daemon's group commit, or a single transaction for the CLI),
//! which holds the database's one write lock. So the dedupe checks (the
//! delivery's event id, the provider's payment id, the refund id) and the
//! effect they guard (the payment row, the order's move to PAID, the
//! change-log rows, the outbox row written by the status change) commit
//! together or not at all, and no other writer can slip in between a check
//! and its effect. The checks are `INSERT ... ON CONFLICT DO NOTHING` on
//! primary keys (`webhook_events`, `payment_refunds`) and a lookup by the
//! unique `(provider, provider_payment_id)` index, so even a second writer
//! outside this code could not record the same fact twice.
//!
//! Guarantees: a delivery replayed or reordered any number of times
//! changes nothing twice; one provider payment is one row; a payment moves
//! an order only PENDING → PAID, through the status machine
//! (`WriteTx::set_status`), and only when the money rules of
//! [`crate::payment::decide`] say so; refunds never touch the order.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{Access, Tx};
use crate::payment::{
    Attempt, Decision, Delivery, DeliveryOutcome, DeliveryStatus, OrderView, Payment, PaymentEvent,
    PaymentFilter, PaymentOutcome, Provider, ProviderPayment, ProviderRefund, check_provider_id,
    decide,
};
use crate::store::{OrderWrites, PaymentReads, PaymentWrites};
use crate::{Currency, CustomerId, Error, OrderId, PaymentId, Result, Status, Timestamp};

const PAYMENT_COLUMNS: &str = "id, order_id, provider, provider_payment_id, event_id, amount, \
     currency, status, outcome, refunded_amount, created_at, updated_at";

fn conversion<E: std::error::Error + Send + Sync + 'static>(
    column: usize,
    e: E,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

fn payment_from_row(r: &Row<'_>) -> rusqlite::Result<Payment> {
    let currency = Currency::parse(&r.get::<_, String>(6)?).map_err(|e| conversion(6, e))?;
    Ok(Payment {
        id: PaymentId(r.get(0)?),
        order_id: r.get::<_, Option<i64>>(1)?.map(OrderId),
        provider: r
            .get::<_, String>(2)?
            .parse()
            .map_err(|e| conversion(2, e))?,
        provider_payment_id: r.get(3)?,
        event_id: r.get(4)?,
        amount: currency.from_minor(r.get(5)?),
        currency,
        status: r
            .get::<_, String>(7)?
            .parse()
            .map_err(|e| conversion(7, e))?,
        outcome: r
            .get::<_, String>(8)?
            .parse()
            .map_err(|e| conversion(8, e))?,
        refunded_amount: currency.from_minor(r.get(9)?),
        created_at: Timestamp::from_millis(r.get(10)?),
        updated_at: Timestamp::from_millis(r.get(11)?),
    })
}

fn find(conn: &Connection, id: PaymentId) -> Result<Option<Payment>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"
        ))?
        .query_row([id.get()], payment_from_row)
        .optional()?)
}

fn find_by_provider_id(
    conn: &Connection,
    provider: Provider,
    provider_payment_id: &str,
) -> Result<Option<Payment>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments
             WHERE provider = ?1 AND provider_payment_id = ?2"
        ))?
        .query_row(
            params![provider.as_str(), provider_payment_id],
            payment_from_row,
        )
        .optional()?)
}

/// How many payments name `order` (an order with payments is a record of
/// money and is not removed).
pub(super) fn count_for_order(conn: &Connection, order: OrderId) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM payments WHERE order_id = ?1")?
        .query_row([order.get()], |r| r.get(0))?)
}

/// What a payment needs to know of its order.
struct OrderRow {
    customer_id: CustomerId,
    status: Status,
    total: i64,
    currency: String,
    version: i64,
}

fn order_row(conn: &Connection, id: OrderId) -> Result<Option<OrderRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT customer_id, status, total, currency, version FROM orders WHERE id = ?1",
        )?
        .query_row([id.get()], |r| {
            Ok(OrderRow {
                customer_id: CustomerId(r.get(0)?),
                status: r
                    .get::<_, String>(1)?
                    .parse()
                    .map_err(|e| conversion(1, e))?,
                total: r.get(2)?,
                currency: r.get(3)?,
                version: r.get(4)?,
            })
        })
        .optional()?)
}

/// Whether a dedupe insert found its key taken. In a
/// `--features broken-webhook-dedupe` build (a NEGATIVE CONTROL for
/// scripts/torture, docs/reliability.md) the answer is ignored: replayed
/// deliveries and refunds are applied again.
fn already_seen(inserted_rows: usize) -> bool {
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
        let existing =
            find_by_provider_id(self.conn, reported.provider, &reported.provider_payment_id)?;
        let order = match reported.order.id() {
            Some(id) => order_row(self.conn, id)?,
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
        let payment_id = match &existing {
            // A failed attempt turned captured (late authorisation): the
            // refunds it already collected stay counted.
            Some(before) => {
                let refunded = before.refunded_amount.minor().min(reported.amount);
                self.conn
                    .prepare_cached(
                        "UPDATE payments SET order_id = ?2, event_id = ?3, amount = ?4,
                             currency = ?5, status = ?6, outcome = ?7, refunded_amount = ?8,
                             updated_at = ?9
                         WHERE id = ?1",
                    )?
                    .execute(params![
                        before.id.get(),
                        reported.order.id().map(OrderId::get),
                        event_id,
                        reported.amount,
                        reported.currency.code(),
                        crate::payment::status_with_refunds(status, reported.amount, refunded)
                            .as_str(),
                        outcome.as_str(),
                        refunded,
                        now
                    ])?;
                before.id
            }
            // New: refunds that arrived before it (deliveries come in any
            // order) are counted now.
            None => {
                let parked: i64 = self
                    .conn
                    .prepare_cached(
                        "SELECT COALESCE(SUM(amount), 0) FROM payment_refunds
                         WHERE provider = ?1 AND provider_payment_id = ?2",
                    )?
                    .query_row(
                        params![reported.provider.as_str(), reported.provider_payment_id],
                        |r| r.get(0),
                    )?;
                let refunded = parked.clamp(0, reported.amount);
                PaymentId(
                    self.conn
                        .prepare_cached(
                            "INSERT INTO payments (order_id, provider, provider_payment_id,
                                 event_id, amount, currency, status, outcome, refunded_amount,
                                 created_at, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)
                             RETURNING id",
                        )?
                        .query_row(
                            params![
                                reported.order.id().map(OrderId::get),
                                reported.provider.as_str(),
                                reported.provider_payment_id,
                                event_id,
                                reported.amount,
                                reported.currency.code(),
                                crate::payment::status_with_refunds(
                                    status,
                                    reported.amount,
                                    refunded
                                )
                                .as_str(),
                                outcome.as_str(),
                                refunded,
                                now
                            ],
                            |r| r.get(0),
                        )?,
                )
            }
        };
        let payment = find(self.conn, payment_id)?
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
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO payment_refunds (provider, provider_refund_id, provider_payment_id,
                     amount, event_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                refund.provider.as_str(),
                refund.provider_refund_id,
                refund.provider_payment_id,
                refund.amount,
                event_id,
                self.now.millis()
            ])?;
        let payment = find_by_provider_id(self.conn, refund.provider, &refund.provider_payment_id)?;
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
        self.conn
            .prepare_cached(
                "UPDATE payments SET refunded_amount = ?2, status = ?3, updated_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![
                before.id.get(),
                refunded,
                status.as_str(),
                self.now.millis()
            ])?;
        let payment = find(self.conn, before.id)?
            .ok_or_else(|| Error::Database(format!("payment {} vanished", before.id)))?;
        let customer = match payment.order_id {
            Some(order) => order_row(self.conn, order)?.map(|o| o.customer_id),
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

impl<S: Access + ?Sized> PaymentReads for S {
    /// One payment.
    fn payment(&self, id: PaymentId) -> Result<Payment> {
        find(self.sql(), id)?.ok_or_else(|| Error::not_found("payment", id))
    }

    /// Payments matching the filter, ordered by id.
    fn payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>> {
        let mut clauses: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(order) = filter.order {
            clauses.push("order_id = ?");
            values.push(Value::Integer(order.get()));
        }
        if let Some(outcome) = filter.outcome {
            clauses.push("outcome = ?");
            values.push(Value::Text(outcome.as_str().to_string()));
        }
        if let Some(after) = filter.after {
            clauses.push("id > ?");
            values.push(Value::Integer(after.get()));
        }
        let clause = if clauses.is_empty() {
            "1".to_string()
        } else {
            clauses.join(" AND ")
        };
        values.push(Value::Integer(
            filter
                .limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        ));
        let mut stmt = self.sql().prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE {clause} ORDER BY id LIMIT ?"
        ))?;
        let rows = stmt.query_map(params_from_iter(values), payment_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl PaymentWrites for Tx<'_> {
    /// Records and applies one verified webhook delivery (DESIGN §7). A
    /// delivery seen before, by its event id or by the payment or refund it
    /// reports, is answered `Duplicate` and changes nothing.
    fn apply_payment_event(&self, delivery: &Delivery) -> Result<DeliveryOutcome> {
        self.atomic(|| {
            let provider = delivery.provider();
            if let Some(event_id) = &delivery.event_id {
                check_provider_id("event id", event_id)?;
                let inserted = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO webhook_events (provider, event_id, event, received_at)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![
                        provider.as_str(),
                        event_id,
                        delivery.event_name,
                        self.now.millis()
                    ])?;
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
            let order = order_row(self.conn, order_id)?
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
            if find_by_provider_id(self.conn, Provider::Manual, &reference)?.is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;
    use crate::payment::{OrderRef, PaymentStatus};
    use crate::prelude::*;
    use crate::{
        Actor, CustomerRef, ItemRequest, NewCustomer, NewOrder, NewProduct, ProductRef, Quantity,
        Sku,
    };

    /// A shop with product A (12.50, 10 units), a customer and `orders`
    /// PENDING orders of one A each (ids 1..).
    fn shop(orders: usize) -> Db {
        let store = Db::open_in_memory().unwrap();
        store
            .write(&Actor::cli(), |tx| {
                tx.add_product(&NewProduct {
                    sku: Sku::parse("A")?,
                    name: "A".into(),
                    price: tx.currency().parse_amount("12.50")?,
                    stock_on_hand: 10,
                    active: true,
                })?;
                tx.add_customer(&NewCustomer {
                    name: "C".into(),
                    email: "c@example.com".into(),
                    phone: None,
                })?;
                for _ in 0..orders {
                    tx.place_order(&NewOrder {
                        customer: CustomerRef::Email("c@example.com".into()),
                        items: vec![ItemRequest {
                            product: ProductRef::parse("A")?,
                            quantity: Quantity::new(1)?,
                        }],
                        paid: false,
                        idempotency_key: None,
                    })?;
                }
                Ok(())
            })
            .unwrap();
        store
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

    fn deliver(store: &mut Db, event_id: &str, event: PaymentEvent) -> DeliveryOutcome {
        let delivery = Delivery {
            event_id: Some(event_id.into()),
            event_name: "test".into(),
            event,
        };
        store
            .write(&Actor::system("razorpay"), |tx| {
                tx.apply_payment_event(&delivery)
            })
            .unwrap()
    }

    fn refund(id: &str, payment: &str, amount: i64) -> PaymentEvent {
        PaymentEvent::Refunded(ProviderRefund {
            provider: Provider::Razorpay,
            provider_refund_id: id.into(),
            provider_payment_id: payment.into(),
            amount,
        })
    }

    #[test]
    fn a_refund_before_its_payment_is_counted_when_the_payment_arrives() {
        let mut store = shop(1);
        let early = deliver(&mut store, "e1", refund("r1", "pay_1", 500));
        assert_eq!(
            (early.status, early.effect),
            (DeliveryStatus::Processed, "refund_pending")
        );
        let again = deliver(&mut store, "e1-other-id", refund("r1", "pay_1", 500));
        assert_eq!(again.status, DeliveryStatus::Duplicate);
        let captured = deliver(
            &mut store,
            "e2",
            PaymentEvent::Captured(payment("pay_1", 1, 1250)),
        );
        let p = captured.payment.unwrap();
        assert_eq!(
            (p.outcome, p.status),
            (PaymentOutcome::Applied, PaymentStatus::Captured)
        );
        assert_eq!(p.refunded_amount.minor(), 500);
        let rest = deliver(&mut store, "e3", refund("r2", "pay_1", 750));
        let p = rest.payment.unwrap();
        assert_eq!(
            (p.refunded_amount.minor(), p.status),
            (1250, PaymentStatus::Refunded)
        );
        // The order stays PAID: a refund never changes it.
        assert_eq!(store.order(OrderId(1)).unwrap().status, Status::Paid);
        assert!(store.verify().unwrap().is_clean());
    }

    #[test]
    fn a_manual_payment_must_be_the_exact_total_of_a_pending_order() {
        let store = shop(2);
        let before = store.last_seq().unwrap();
        for (order, amount, reference) in
            [(1, "12.49", None), (1, "12.5x", None), (9, "12.50", None)]
        {
            let err = store
                .write(&Actor::cli(), |tx| {
                    tx.record_manual_payment(OrderId(order), amount, reference)
                })
                .unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    crate::ErrorKind::Conflict
                        | crate::ErrorKind::Invalid
                        | crate::ErrorKind::NotFound
                ),
                "{err:?}"
            );
        }
        assert_eq!(store.last_seq().unwrap(), before, "nothing written");
        let paid = store
            .write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(1), "12.5", Some("TRANSFER-7"))
            })
            .unwrap();
        assert_eq!(paid.provider, Provider::Manual);
        assert_eq!(paid.provider_payment_id, "TRANSFER-7");
        assert_eq!(store.order(OrderId(1)).unwrap().status, Status::Paid);
        // Paid now: a second one is refused.
        let err = store
            .write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(1), "12.50", None)
            })
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict, "{err}");
        // The same reference for another order is a duplicate.
        let err = store
            .write(&Actor::cli(), |tx| {
                tx.record_manual_payment(OrderId(2), "12.50", Some("TRANSFER-7"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { .. }), "{err:?}");
        assert_eq!(store.order(OrderId(2)).unwrap().status, Status::Pending);
    }

    #[test]
    fn an_order_with_payments_is_not_removed() {
        let mut store = shop(1);
        deliver(
            &mut store,
            "e1",
            PaymentEvent::Captured(payment("pay_short", 1, 1249)),
        );
        let err = store
            .write(&Actor::cli(), |tx| tx.remove_order(OrderId(1)))
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict, "{err}");
    }
}
