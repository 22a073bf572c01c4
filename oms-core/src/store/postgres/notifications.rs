//! The notification outbox (DESIGN §7): rows written with each status
//! change, claimed by dispatchers under a lease, and their outcomes, as the
//! SQLite backend's.
//!
//! Locking and guarantees:
//!
//! - **Written with the change.** [`Tx::enqueue_notification`] runs inside
//!   the transaction of the placement or transition it announces, so a
//!   committed status change has exactly one row and a rolled-back one
//!   none. It stores only what the mail needs (order, recipient, kind,
//!   reason); rendering happens at send time, off the hot path.
//! - **Claimed under a lease, sent with no transaction open.** A claim is
//!   one short write transaction: one `UPDATE ... RETURNING` marks up to N
//!   due rows with the dispatcher's owner token and moves their
//!   `next_attempt_at` to the end of the lease, so no other dispatcher (a
//!   daemon, a cron `oms notify send`, on any host) sees them as due until
//!   the lease runs out. Writers take turns on the counter row, so two
//!   claims never run at once; the due rows are also selected `FOR UPDATE
//!   SKIP LOCKED`, so even a claim outside a turn could not take a row
//!   another transaction is claiming. The dispatcher talks to the mail
//!   server after that transaction committed, and records outcomes in a
//!   second short one.
//! - **Outcomes only from the lease holder.** Every outcome `UPDATE` checks
//!   `lease_owner` and `status = 'pending'`; a dispatcher whose lease passed
//!   to another (it stalled past its lease, or an admin changed the row)
//!   changes nothing.
//! - **At least once.** A dispatcher that dies mid-send never records its
//!   outcome; the row's lease expires, it is due again and is sent again.
//!   The `Message-ID` is fixed at the first claim (from the row id and the
//!   shop's `mail_shop_id`), so a receiver can drop the duplicate.
//! - **Not in the change log.** Delivery bookkeeping (claims, outcomes,
//!   retries) changes no order, product or customer: it writes no change
//!   row, so the feed is not woken once per mail.

use postgres::Row;

use super::session::Session;
use super::{Access, Tx};
use crate::store::{NotificationReads, NotificationWrites};
use crate::{
    Backlog, Claim, ClaimedNotification, CustomerId, Error, MailOrder, MailOutcome, Notification,
    NotificationFilter, NotificationId, NotificationKind, NotificationStatus, Order, OrderId,
    Recorded, Result, Timestamp,
};

/// The setting that keeps Message-IDs of two shops apart (written by the
/// schema's first migration).
pub(crate) const SHOP_ID_SETTING: &str = "mail_shop_id";

/// Longest `last_error` kept (a server may answer with pages of text).
const MAX_ERROR_LEN: usize = 500;

/// The reason stored on the `order.cancelled` row an expiry writes.
const EXPIRED: &str = "expired";

/// The notification columns `notification_from_row` reads, in its order.
macro_rules! columns {
    () => {
        "id, order_id, recipient, kind, status, attempts, next_attempt_at, \
         last_error, message_id, created_at, sent_at"
    };
}

/// A stored value this build cannot read (a damaged or foreign row).
fn conversion(column: &str, e: &Error) -> Error {
    Error::Database(format!(
        "notifications.{column} holds an unreadable value: {e}"
    ))
}

fn notification_from_row(r: &Row) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(r.get(0)),
        order_id: OrderId(r.get(1)),
        recipient: r.get(2),
        kind: r
            .get::<_, String>(3)
            .parse()
            .map_err(|e| conversion("kind", &e))?,
        status: r
            .get::<_, String>(4)
            .parse()
            .map_err(|e| conversion("status", &e))?,
        attempts: r.get(5),
        next_attempt_at: Timestamp::from_millis(r.get(6)),
        last_error: r.get(7),
        message_id: r.get(8),
        created_at: Timestamp::from_millis(r.get(9)),
        sent_at: r.get::<_, Option<i64>>(10).map(Timestamp::from_millis),
    })
}

fn find(s: &mut Session, id: NotificationId) -> Result<Option<Notification>> {
    s.query_opt(
        concat!("SELECT ", columns!(), " FROM notifications WHERE id = $1"),
        &[&id.get()],
    )?
    .as_ref()
    .map(notification_from_row)
    .transpose()
}

fn truncate(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_LEN) {
        Some((at, _)) => format!("{}…", &error[..at]),
        None => error.to_string(),
    }
}

impl Tx<'_> {
    /// Queues the mail about `order`, now in its current status, in the
    /// transaction that changed it. `email` saves a lookup when the caller
    /// has the customer; `reason` is `Some("expired")` for an expiry.
    pub(crate) fn enqueue_notification(
        &self,
        order: &Order,
        email: Option<&str>,
        reason: Option<&str>,
    ) -> Result<()> {
        let kind = NotificationKind::for_status(order.status).as_str();
        let reason = reason.filter(|r| *r == EXPIRED);
        let now = self.now.millis();
        let inserted = match email {
            Some(email) => self.session().execute(
                "INSERT INTO notifications (order_id, customer_id, recipient, kind, reason,
                     next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
                &[
                    &order.id.get(),
                    &order.customer_id.get(),
                    &email,
                    &kind,
                    &reason,
                    &now,
                ],
            )?,
            // PostgreSQL types the SELECT's parameters from the target
            // columns, as it does a VALUES list's.
            None => self.session().execute(
                "INSERT INTO notifications (order_id, customer_id, recipient, kind, reason,
                     next_attempt_at, created_at)
                 SELECT $1, id, email, $3, $4, $5, $5 FROM customers WHERE id = $2",
                &[
                    &order.id.get(),
                    &order.customer_id.get(),
                    &kind,
                    &reason,
                    &now,
                ],
            )?,
        };
        if inserted != 1 {
            return Err(Error::Database(format!(
                "customer {} of order {} vanished while queueing its mail",
                order.customer_id, order.id
            )));
        }
        Ok(())
    }
}

impl NotificationWrites for Tx<'_> {
    /// Claims up to `claim.limit` due rows for `claim.owner` until
    /// `claim.lease_until`, counting an attempt on each and fixing its
    /// Message-ID. Oldest due first.
    fn claim_notifications(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedNotification>> {
        self.atomic(|| {
            let shop = super::settings::get(&mut self.session(), SHOP_ID_SETTING)?
                .unwrap_or_else(|| "oms".to_string());
            let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
            let rows = self.session().query(
                "WITH due AS (
                     SELECT id FROM notifications
                     WHERE status = 'pending' AND next_attempt_at <= $5
                     ORDER BY next_attempt_at, id LIMIT $6
                     FOR UPDATE SKIP LOCKED)
                 UPDATE notifications n
                 SET attempts = n.attempts + 1, lease_owner = $1, lease_until = $2,
                     next_attempt_at = $2,
                     message_id = COALESCE(n.message_id,
                         '<notification-' || n.id || '.' || $3::text || '@' || $4::text || '>')
                 FROM due WHERE n.id = due.id
                 RETURNING n.id, n.order_id, n.customer_id, n.recipient, n.kind, n.reason,
                     n.attempts, n.message_id",
                &[
                    &claim.owner,
                    &claim.lease_until.millis(),
                    &shop,
                    &claim.message_id_domain,
                    &self.now.millis(),
                    &limit,
                ],
            )?;
            let mut claimed = rows
                .iter()
                .map(|r| {
                    Ok(ClaimedNotification {
                        id: NotificationId(r.get(0)),
                        order_id: OrderId(r.get(1)),
                        customer_id: r.get::<_, Option<i64>>(2).map(CustomerId),
                        recipient: r.get(3),
                        kind: r
                            .get::<_, String>(4)
                            .parse()
                            .map_err(|e| conversion("kind", &e))?,
                        expired: r.get::<_, Option<String>>(5).as_deref() == Some(EXPIRED),
                        attempts: r.get(6),
                        message_id: r.get(7),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // RETURNING gives no order; send oldest first.
            claimed.sort_by_key(|c| c.id);
            Ok(claimed)
        })
    }

    /// Records how attempts ended, each only if `owner` still holds the
    /// row's lease.
    fn record_deliveries(
        &self,
        owner: &str,
        outcomes: &[(NotificationId, MailOutcome)],
    ) -> Result<Recorded> {
        self.atomic(|| {
            let now = self.now.millis();
            let mut done = Recorded::default();
            for (id, outcome) in outcomes {
                let (sql, status, at, error): (&str, &str, i64, Option<String>) = match outcome {
                    MailOutcome::Sent => (
                        "UPDATE notifications SET status = $3, sent_at = $4,
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                        "sent",
                        now,
                        None,
                    ),
                    MailOutcome::Retry { at, error } => (
                        "UPDATE notifications SET status = $3, next_attempt_at = $4,
                             last_error = $5, lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                        "pending",
                        at.millis(),
                        Some(truncate(error)),
                    ),
                    MailOutcome::Dead { error } => (
                        "UPDATE notifications SET status = $3, next_attempt_at = $4,
                             last_error = $5, lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                        "dead",
                        now,
                        Some(truncate(error)),
                    ),
                    MailOutcome::Released => (
                        "UPDATE notifications SET status = $3, next_attempt_at = $4,
                             attempts = GREATEST(attempts - 1, 0),
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                        "pending",
                        now,
                        None,
                    ),
                };
                let changed = match &error {
                    Some(error) => self
                        .session()
                        .execute(sql, &[&id.get(), &owner, &status, &at, error])?,
                    None => self
                        .session()
                        .execute(sql, &[&id.get(), &owner, &status, &at])?,
                };
                if changed == 1 {
                    done.recorded += 1;
                } else {
                    done.lost_lease += 1;
                }
            }
            Ok(done)
        })
    }

    /// Puts a dead row back in the queue with a fresh set of attempts.
    /// Any other status is a conflict.
    fn retry_notification(&self, id: NotificationId) -> Result<Notification> {
        self.atomic(|| {
            let changed = self.session().execute(
                "UPDATE notifications SET status = 'pending', attempts = 0,
                     next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
                 WHERE id = $1 AND status = 'dead'",
                &[&id.get(), &self.now.millis()],
            )?;
            let row = find(&mut self.session(), id)?
                .ok_or_else(|| Error::not_found("notification", id))?;
            if changed != 1 {
                return Err(Error::Conflict(format!(
                    "notification {id} is {}; only dead notifications can be retried",
                    row.status
                )));
            }
            Ok(row)
        })
    }
}

for_conn_and_tx!(NotificationReads {
    /// One outbox row.
    fn notification(&self, id: NotificationId) -> Result<Notification> {
        find(&mut self.session(), id)?.ok_or_else(|| Error::not_found("notification", id))
    }

    /// Outbox rows matching the filter, by id. One statement for every
    /// filter (an absent one is a NULL parameter), prepared once; no limit
    /// is `LIMIT NULL`.
    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<Notification>> {
        let rows = self.session().query(
            concat!(
                "SELECT ",
                columns!(),
                " FROM notifications
                 WHERE ($1::text IS NULL OR status = $1)
                   AND ($2::bigint IS NULL OR order_id = $2)
                   AND ($3::bigint IS NULL OR id > $3)
                 ORDER BY id LIMIT $4"
            ),
            &[
                &filter.status.map(NotificationStatus::as_str),
                &filter.order.map(OrderId::get),
                &filter.after.map(NotificationId::get),
                &filter.limit.map(super::count),
            ],
        )?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Pending rows due at `now`, and when the next one falls due. One
    /// statement (one snapshot) over the partial index of pending rows.
    fn notification_backlog(&self, now: Timestamp) -> Result<Backlog> {
        let row = self.session().query_one(
            "SELECT min(next_attempt_at), count(*) FILTER (WHERE next_attempt_at <= $1)
             FROM notifications WHERE status = 'pending'",
            &[&now.millis()],
        )?;
        let next_due = row.get::<_, Option<i64>>(0).map(Timestamp::from_millis);
        let due: i64 = row.get(1);
        Ok(Backlog {
            due: u64::try_from(due).unwrap_or(0),
            oldest_due: next_due.filter(|t| *t <= now),
            next_due,
        })
    }

    /// What the mails about `orders` show, for the orders that still exist
    /// (a PENDING or CANCELLED order may have been removed since). Outside
    /// a transaction each read is its own snapshot: an order removed
    /// between its read and its customer's (possible only once the order is
    /// gone, as orders reference their customer) is skipped like one
    /// removed before.
    fn mail_orders(&self, orders: &[OrderId]) -> Result<Vec<MailOrder>> {
        let mut out = Vec::with_capacity(orders.len());
        for &id in orders {
            let Some(order) = super::orders::find_order(&mut self.session(), id)? else {
                continue;
            };
            let Some(customer) = self.session().query_opt(
                "SELECT name FROM customers WHERE id = $1",
                &[&order.customer_id.get()],
            )?
            else {
                continue;
            };
            out.push(MailOrder {
                order,
                customer_name: customer.get(0),
            });
        }
        Ok(out)
    }
});

/// Against a real server (`OMS_TEST_PG`): orders set up with plain SQL,
/// outbox rows queued through [`Tx::enqueue_notification`] on this
/// backend's own transaction, claims and outcomes through `Db::write`.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testdb::{SHOP, TestDb};
    use super::*;
    use crate::prelude::*;
    use crate::{Actor, Currency, Db, Status};

    const LEASE: Duration = Duration::from_secs(60);

    fn shop(test: &str) -> Option<(TestDb, Db)> {
        let t = TestDb::create(test)?;
        let db = t.open();
        t.sql(SHOP);
        Some((t, db))
    }

    /// An order as the status machine hands it to the outbox (only the
    /// id, customer and status matter to it).
    fn order(id: i64, customer: i64, status: Status) -> Order {
        Order {
            id: OrderId(id),
            customer_id: CustomerId(customer),
            status,
            items: Vec::new(),
            total: Currency::USD.from_minor(0),
            currency: Currency::USD,
            payment_collected: false,
            tracking_code: String::new(),
            idempotency_key: None,
            version: 1,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    /// Queues one `order.placed` row for order 1, `n` times.
    fn queue(t: &TestDb, n: usize) {
        t.with_tx(|tx| {
            for _ in 0..n {
                tx.enqueue_notification(&order(1, 1, Status::Pending), None, None)?;
            }
            Ok(())
        })
        .unwrap();
    }

    fn rows(db: &Db) -> Vec<Notification> {
        db.notifications(&NotificationFilter::default()).unwrap()
    }

    fn claim(db: &Db, owner: &str, limit: usize, lease: Duration) -> Vec<ClaimedNotification> {
        db.write(&Actor::system("mail"), |tx| {
            tx.claim_notifications(&Claim {
                owner,
                limit,
                lease_until: tx.now().plus(lease),
                message_id_domain: "shop.example",
            })
        })
        .unwrap()
    }

    fn record(db: &Db, owner: &str, outcomes: &[(NotificationId, MailOutcome)]) -> Recorded {
        db.write(&Actor::system("mail"), |tx| {
            tx.record_deliveries(owner, outcomes)
        })
        .unwrap()
    }

    #[test]
    fn enqueue_writes_one_row_with_the_customers_email_or_the_given_one() {
        let Some((t, db)) = shop("notifications::enqueue") else {
            return;
        };
        let seq = db.last_seq().unwrap();
        t.with_tx(|tx| {
            tx.enqueue_notification(&order(1, 1, Status::Pending), None, None)?;
            tx.enqueue_notification(&order(2, 1, Status::Paid), Some("given@example.com"), None)?;
            tx.enqueue_notification(&order(3, 2, Status::Cancelled), None, Some("expired"))?;
            tx.enqueue_notification(&order(3, 2, Status::Cancelled), None, Some("by hand"))
        })
        .unwrap();
        let every = rows(&db);
        assert_eq!(
            every
                .iter()
                .map(|n| (n.order_id.get(), n.recipient.as_str(), n.kind.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "c@example.com", "order.placed"),
                (2, "given@example.com", "order.paid"),
                (3, "d@example.com", "order.cancelled"),
                (3, "d@example.com", "order.cancelled")
            ]
        );
        assert!(every.iter().all(|n| n.status == NotificationStatus::Pending
            && n.attempts == 0
            && n.message_id.is_none()
            && n.sent_at.is_none()
            && n.next_attempt_at == n.created_at));
        assert_eq!(
            t.number("SELECT count(*) FROM notifications WHERE reason = 'expired'"),
            1,
            "only an expiry's reason is kept"
        );
        assert_eq!(
            t.number("SELECT count(*) FROM notifications WHERE reason IS NOT NULL"),
            1,
            "another reason is not stored"
        );
        assert_eq!(
            t.number("SELECT count(*) FROM notifications WHERE customer_id = 2"),
            2
        );
        assert_eq!(
            db.last_seq().unwrap(),
            seq,
            "the outbox is not in the change log"
        );

        // A customer that is gone: an error, and its transaction writes nothing.
        let err = t
            .with_tx(|tx| {
                tx.enqueue_notification(&order(2, 1, Status::Paid), None, None)?;
                tx.enqueue_notification(&order(1, 99, Status::Paid), None, None)
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::Database("customer 99 of order 1 vanished while queueing its mail".into())
                .to_string()
        );
        assert_eq!(rows(&db).len(), 4);

        let expired: Vec<bool> = claim(&db, "x", 10, LEASE)
            .iter()
            .map(|c| c.expired)
            .collect();
        assert_eq!(expired, [false, false, true, false]);
    }

    #[test]
    fn a_claim_leases_rows_so_a_second_dispatcher_does_not_see_them() {
        let Some((t, db)) = shop("notifications::claim") else {
            return;
        };
        queue(&t, 3);
        let first = claim(&db, "one", 2, LEASE);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|c| c.attempts == 1
            && c.customer_id == Some(CustomerId(1))
            && c.recipient == "c@example.com"
            && c.kind == NotificationKind::Placed));
        assert!(first[0].id < first[1].id, "oldest first");
        let shop_id = db.setting(SHOP_ID_SETTING).unwrap().unwrap();
        assert_eq!(shop_id.len(), 16);
        assert_eq!(
            first[0].message_id,
            format!("<notification-{}.{shop_id}@shop.example>", first[0].id)
        );
        let second = claim(&db, "two", 10, LEASE);
        assert_eq!(second.len(), 1, "only the row the first left");
        assert!(first.iter().all(|c| c.id != second[0].id));
        assert!(claim(&db, "three", 10, LEASE).is_empty());

        // Outcomes count only from the holder of the lease.
        let stolen = record(&db, "two", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(
            stolen,
            Recorded {
                recorded: 0,
                lost_lease: 1
            }
        );
        assert_eq!(
            db.notification(first[0].id).unwrap().status,
            NotificationStatus::Pending
        );
        let own = record(&db, "one", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(
            own,
            Recorded {
                recorded: 1,
                lost_lease: 0
            }
        );
        let sent = db.notification(first[0].id).unwrap();
        assert_eq!(sent.status, NotificationStatus::Sent);
        assert!(sent.sent_at.is_some());
        assert_eq!(
            t.number(&format!(
                "SELECT count(*) FROM notifications
                 WHERE id = {} AND lease_owner IS NULL AND lease_until IS NULL",
                first[0].id
            )),
            1
        );
        // Recording twice changes nothing more.
        let again = record(&db, "one", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(again.lost_lease, 1);
    }

    #[test]
    fn a_claim_skips_rows_another_transaction_holds_instead_of_waiting() {
        let Some((t, db)) = shop("notifications::skip_locked") else {
            return;
        };
        queue(&t, 3);
        let ids: Vec<NotificationId> = rows(&db).iter().map(|n| n.id).collect();
        // A transaction outside oms's turns holds the oldest row.
        let mut other = postgres::Client::connect(&t.url, postgres::NoTls).unwrap();
        let mut held = other.transaction().unwrap();
        held.execute(
            "SELECT id FROM notifications WHERE id = $1 FOR UPDATE",
            &[&ids[0].get()],
        )
        .unwrap();
        let claimed: Vec<NotificationId> =
            claim(&db, "d", 10, LEASE).iter().map(|c| c.id).collect();
        assert_eq!(claimed, ids[1..]);
        held.rollback().unwrap();
        let rest: Vec<NotificationId> = claim(&db, "d", 10, LEASE).iter().map(|c| c.id).collect();
        assert_eq!(rest, [ids[0]]);
    }

    #[test]
    fn an_expired_lease_makes_the_row_due_again_with_the_same_message_id() {
        let Some((t, db)) = shop("notifications::expired_lease") else {
            return;
        };
        queue(&t, 1);
        // A lease that is over at once: its holder "crashed".
        let crashed = claim(&db, "crashed", 10, Duration::ZERO);
        assert_eq!(crashed.len(), 1);
        let again = claim(&db, "next", 10, LEASE);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, crashed[0].id);
        assert_eq!(again[0].message_id, crashed[0].message_id);
        assert_eq!(again[0].attempts, 2);
        // The crashed one's late outcome is ignored; the new holder's counts.
        assert_eq!(
            record(&db, "crashed", &[(again[0].id, MailOutcome::Sent)]).lost_lease,
            1
        );
        assert_eq!(
            record(&db, "next", &[(again[0].id, MailOutcome::Sent)]).recorded,
            1
        );
    }

    #[test]
    fn outcomes_reschedule_kill_or_release_a_row() {
        let Some((t, db)) = shop("notifications::outcomes") else {
            return;
        };
        queue(&t, 3);
        let claimed = claim(&db, "d", 10, LEASE);
        let ids: Vec<NotificationId> = claimed.iter().map(|c| c.id).collect();
        let at = Timestamp::now().plus(Duration::from_secs(300));
        let long = "é".repeat(2 * MAX_ERROR_LEN);
        let done = record(
            &db,
            "d",
            &[
                (
                    ids[0],
                    MailOutcome::Retry {
                        at,
                        error: "421 busy".into(),
                    },
                ),
                (ids[1], MailOutcome::Dead { error: long }),
                (ids[2], MailOutcome::Released),
            ],
        );
        assert_eq!(done.recorded, 3);
        let retry = db.notification(ids[0]).unwrap();
        assert_eq!(
            (retry.status, retry.next_attempt_at, retry.attempts),
            (NotificationStatus::Pending, at, 1)
        );
        assert_eq!(retry.last_error.as_deref(), Some("421 busy"));
        let dead = db.notification(ids[1]).unwrap();
        assert_eq!(dead.status, NotificationStatus::Dead);
        assert_eq!(
            dead.last_error.unwrap(),
            format!("{}…", "é".repeat(MAX_ERROR_LEN))
        );
        let released = db.notification(ids[2]).unwrap();
        assert_eq!(released.attempts, 0, "a release does not count an attempt");
        // Only the released row is due now.
        let next = claim(&db, "d", 10, LEASE);
        assert_eq!(next.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[2]]);
    }

    #[test]
    fn retry_revives_only_dead_rows() {
        let Some((t, db)) = shop("notifications::retry") else {
            return;
        };
        queue(&t, 1);
        let id = claim(&db, "d", 1, LEASE)[0].id;
        let retry = |id| db.write(&Actor::cli(), |tx| tx.retry_notification(id));
        assert_eq!(
            retry(id).unwrap_err().to_string(),
            Error::Conflict(format!(
                "notification {id} is pending; only dead notifications can be retried"
            ))
            .to_string()
        );
        record(
            &db,
            "d",
            &[(
                id,
                MailOutcome::Dead {
                    error: "550 no".into(),
                },
            )],
        );
        let revived = retry(id).unwrap();
        assert_eq!(revived.status, NotificationStatus::Pending);
        assert_eq!(revived.attempts, 0);
        assert_eq!(revived.last_error.as_deref(), Some("550 no"));
        let claimed = claim(&db, "d", 1, LEASE);
        assert_eq!(claimed[0].id, id);
        assert_eq!(claimed[0].message_id, revived.message_id.unwrap());
        assert!(matches!(
            retry(NotificationId(999)),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn list_filters_and_pages_and_the_backlog_counts_due_rows() {
        let Some((t, db)) = shop("notifications::list") else {
            return;
        };
        let empty = db.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!(
            (empty.due, empty.oldest_due, empty.next_due),
            (0, None, None)
        );
        t.with_tx(|tx| {
            tx.enqueue_notification(&order(1, 1, Status::Pending), None, None)?;
            tx.enqueue_notification(&order(1, 1, Status::Paid), None, None)?;
            tx.enqueue_notification(&order(3, 2, Status::Pending), None, None)
        })
        .unwrap();
        let all = rows(&db);
        assert_eq!(all.len(), 3);
        let page = db
            .notifications(&NotificationFilter {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.len(), 2);
        let rest = db
            .notifications(&NotificationFilter {
                after: Some(page[1].id),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            rest.iter().map(|n| n.order_id).collect::<Vec<_>>(),
            [OrderId(3)]
        );

        let backlog = db.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!(backlog.due, 3);
        assert_eq!(backlog.oldest_due, Some(all[0].next_attempt_at));
        let before = db.notification_backlog(Timestamp::from_millis(0)).unwrap();
        assert_eq!((before.due, before.oldest_due), (0, None));
        assert_eq!(before.next_due, Some(all[0].next_attempt_at));

        let claimed = claim(&db, "d", 1, LEASE);
        record(&db, "d", &[(claimed[0].id, MailOutcome::Sent)]);
        let sent = db
            .notifications(&NotificationFilter {
                status: Some(NotificationStatus::Sent),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(sent.len(), 1);
        let of_1 = db
            .notifications(&NotificationFilter {
                order: Some(OrderId(1)),
                status: Some(NotificationStatus::Pending),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(of_1.len(), 1);
        let backlog = db.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!(backlog.due, 2);

        // A leased row is not due: the next due time is its lease's end.
        let leased = claim(&db, "d", 10, LEASE);
        assert_eq!(leased.len(), 2);
        let backlog = db.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!((backlog.due, backlog.oldest_due), (0, None));
        assert!(backlog.next_due.unwrap() > Timestamp::now());
    }

    fn kinds(db: &Db, order: i64) -> Vec<&'static str> {
        db.notifications(&NotificationFilter {
            order: Some(OrderId(order)),
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|n| n.kind.as_str())
        .collect()
    }

    #[test]
    fn every_status_change_writes_exactly_one_row_and_a_no_op_none() {
        let Some((_t, db)) = shop("notifications::status_changes") else {
            return;
        };
        let set = |id: i64, to: Status| {
            db.write(&Actor::cli(), |tx| tx.set_status(OrderId(id), to, None))
        };
        set(1, Status::Paid).unwrap();
        set(1, Status::Paid).unwrap(); // no-op
        set(1, Status::Fulfilled).unwrap();
        assert_eq!(kinds(&db, 1), ["order.paid", "order.fulfilled"]);
        set(2, Status::Cancelled).unwrap();
        set(2, Status::Cancelled).unwrap(); // no-op
        assert_eq!(kinds(&db, 2), ["order.cancelled"]);
        // A refused transition writes nothing.
        let before = rows(&db).len();
        assert!(set(2, Status::Paid).is_err());
        assert_eq!(rows(&db).len(), before);
        assert!(rows(&db).iter().all(|n| n.recipient == "c@example.com"
            && n.status == NotificationStatus::Pending
            && n.attempts == 0
            && n.message_id.is_none()));
        assert!(db.verify().unwrap().is_clean());
    }

    #[test]
    fn an_expiry_writes_a_cancelled_row_marked_expired() {
        let Some((_t, db)) = shop("notifications::expiry") else {
            return;
        };
        db.write(&Actor::cli(), |tx| {
            tx.set_status(OrderId(2), Status::Fulfilled, None)
        })
        .unwrap();
        let expired = db
            .write(&Actor::cli(), |tx| tx.expire_pending(Timestamp::now()))
            .unwrap();
        assert_eq!(expired.cancelled, [OrderId(1)]);
        assert_eq!(kinds(&db, 1), ["order.cancelled"]);
        let claimed = claim(&db, "x", 10, LEASE);
        assert_eq!(
            claimed
                .iter()
                .map(|c| (c.order_id.get(), c.expired))
                .collect::<Vec<_>>(),
            [(2, false), (1, true)]
        );
    }

    #[test]
    fn mail_orders_skip_removed_orders() {
        let Some((_t, db)) = shop("notifications::mail_orders") else {
            return;
        };
        db.write(&Actor::cli(), |tx| tx.remove_order(OrderId(3)))
            .unwrap();
        let found = db
            .mail_orders(&[OrderId(2), OrderId(3), OrderId(1), OrderId(99)])
            .unwrap();
        assert_eq!(
            found
                .iter()
                .map(|m| (m.order.id.get(), m.customer_name.as_str()))
                .collect::<Vec<_>>(),
            [(2, "C"), (1, "C")]
        );
        assert_eq!(found[0].order.total.to_string(), "12.50");
        assert_eq!(found[0].order.items.len(), 1);
        assert_eq!(found[0].order.items[0].sku.as_str(), "A");
    }
}
