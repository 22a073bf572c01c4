//! The notification outbox (DESIGN §7): rows written with each status
//! change, claimed by dispatchers under a lease, and their outcomes.
//!
//! Locking and guarantees:
//!
//! - **Written with the change.** [`WriteTx::enqueue_notification`] runs
//!   inside the transaction of the placement or transition it announces,
//!   so a committed status change has exactly one row and a rolled-back one
//!   none. It stores only what the mail needs (order, recipient, kind,
//!   reason); rendering happens at send time, off the hot path.
//! - **Claimed under a lease, sent with no transaction open.** A claim is
//!   one short write transaction: one `UPDATE ... RETURNING` marks up to N
//!   due rows with the dispatcher's owner token and moves their
//!   `next_attempt_at` to the end of the lease, so no other dispatcher (a
//!   daemon, a cron `oms notify send`) sees them as due until the lease
//!   runs out. The dispatcher talks to the mail server after that
//!   transaction committed, and records outcomes in a second short one.
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

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::{Access, Tx};
use crate::store::{NotificationReads, NotificationWrites};
use crate::{
    Backlog, Claim, ClaimedNotification, CustomerId, Error, MailOrder, MailOutcome, Notification,
    NotificationFilter, NotificationId, NotificationKind, Order, OrderId, Recorded, Result,
    Timestamp,
};

/// The setting that keeps Message-IDs of two shops apart.
pub const SHOP_ID_SETTING: &str = "mail_shop_id";

/// Longest `last_error` kept (a server may answer with pages of text).
const MAX_ERROR_LEN: usize = 500;

/// The reason stored on the `order.cancelled` row an expiry writes.
const EXPIRED: &str = "expired";

const COLUMNS: &str = "id, order_id, recipient, kind, status, attempts, next_attempt_at, \
     last_error, message_id, created_at, sent_at";

fn conversion(e: Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: NotificationId(r.get(0)?),
        order_id: OrderId(r.get(1)?),
        recipient: r.get(2)?,
        kind: r.get::<_, String>(3)?.parse().map_err(conversion)?,
        status: r.get::<_, String>(4)?.parse().map_err(conversion)?,
        attempts: r.get(5)?,
        next_attempt_at: Timestamp::from_millis(r.get(6)?),
        last_error: r.get(7)?,
        message_id: r.get(8)?,
        created_at: Timestamp::from_millis(r.get(9)?),
        sent_at: r.get::<_, Option<i64>>(10)?.map(Timestamp::from_millis),
    })
}

fn find(conn: &Connection, id: NotificationId) -> Result<Option<Notification>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE id = ?1"
        ))?
        .query_row([id.get()], notification_from_row)
        .optional()?)
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
            Some(email) => self
                .conn
                .prepare_cached(
                    "INSERT INTO notifications (order_id, customer_id, recipient, kind, reason,
                         next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?
                .execute(params![
                    order.id.get(),
                    order.customer_id.get(),
                    email,
                    kind,
                    reason,
                    now
                ])?,
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO notifications (order_id, customer_id, recipient, kind, reason,
                         next_attempt_at, created_at)
                     SELECT ?1, id, email, ?3, ?4, ?5, ?5 FROM customers WHERE id = ?2",
                )?
                .execute(params![
                    order.id.get(),
                    order.customer_id.get(),
                    kind,
                    reason,
                    now
                ])?,
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
            let shop = super::settings::get(self.conn, SHOP_ID_SETTING)?
                .unwrap_or_else(|| "oms".to_string());
            let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
            let mut stmt = self.conn.prepare_cached(
                "UPDATE notifications
                 SET attempts = attempts + 1, lease_owner = ?1, lease_until = ?2,
                     next_attempt_at = ?2,
                     message_id = COALESCE(message_id,
                         '<notification-' || id || '.' || ?3 || '@' || ?4 || '>')
                 WHERE id IN (SELECT id FROM notifications
                              WHERE status = 'pending' AND next_attempt_at <= ?5
                              ORDER BY next_attempt_at, id LIMIT ?6)
                 RETURNING id, order_id, customer_id, recipient, kind, reason, attempts, message_id",
            )?;
            let mut claimed = stmt
                .query_map(
                    params![
                        claim.owner,
                        claim.lease_until.millis(),
                        shop,
                        claim.message_id_domain,
                        self.now.millis(),
                        limit
                    ],
                    |r| {
                        Ok(ClaimedNotification {
                            id: NotificationId(r.get(0)?),
                            order_id: OrderId(r.get(1)?),
                            customer_id: r.get::<_, Option<i64>>(2)?.map(CustomerId),
                            recipient: r.get(3)?,
                            kind: r.get::<_, String>(4)?.parse().map_err(conversion)?,
                            expired: r.get::<_, Option<String>>(5)?.as_deref() == Some(EXPIRED),
                            attempts: r.get(6)?,
                            message_id: r.get(7)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
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
                        "UPDATE notifications SET status = ?3, sent_at = ?4,
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                        "sent",
                        now,
                        None,
                    ),
                    MailOutcome::Retry { at, error } => (
                        "UPDATE notifications SET status = ?3, next_attempt_at = ?4,
                             last_error = ?5, lease_owner = NULL, lease_until = NULL
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                        "pending",
                        at.millis(),
                        Some(truncate(error)),
                    ),
                    MailOutcome::Dead { error } => (
                        "UPDATE notifications SET status = ?3, next_attempt_at = ?4,
                             last_error = ?5, lease_owner = NULL, lease_until = NULL
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                        "dead",
                        now,
                        Some(truncate(error)),
                    ),
                    MailOutcome::Released => (
                        "UPDATE notifications SET status = ?3, next_attempt_at = ?4,
                             attempts = max(attempts - 1, 0),
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = ?1 AND lease_owner = ?2 AND status = 'pending'",
                        "pending",
                        now,
                        None,
                    ),
                };
                let changed = if error.is_some() {
                    self.conn.prepare_cached(sql)?.execute(params![
                        id.get(),
                        owner,
                        status,
                        at,
                        error
                    ])?
                } else {
                    self.conn
                        .prepare_cached(sql)?
                        .execute(params![id.get(), owner, status, at])?
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
            let changed = self
                .conn
                .prepare_cached(
                    "UPDATE notifications SET status = 'pending', attempts = 0,
                         next_attempt_at = ?2, lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND status = 'dead'",
                )?
                .execute(params![id.get(), self.now.millis()])?;
            let row = find(self.conn, id)?.ok_or_else(|| Error::not_found("notification", id))?;
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

impl<S: Access + ?Sized> NotificationReads for S {
    /// One outbox row.
    fn notification(&self, id: NotificationId) -> Result<Notification> {
        find(self.sql(), id)?.ok_or_else(|| Error::not_found("notification", id))
    }

    /// Outbox rows matching the filter, by id.
    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<Notification>> {
        let mut clauses: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(status) = filter.status {
            clauses.push("status = ?");
            values.push(Value::Text(status.as_str().to_string()));
        }
        if let Some(order) = filter.order {
            clauses.push("order_id = ?");
            values.push(Value::Integer(order.get()));
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
        Ok(self
            .sql()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE {clause} ORDER BY id LIMIT ?"
            ))?
            .query_map(params_from_iter(values), notification_from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Pending rows due at `now`, and when the next one falls due. Both
    /// read the partial index of pending rows only.
    fn notification_backlog(&self, now: Timestamp) -> Result<Backlog> {
        let snapshot = self.sql().unchecked_transaction()?;
        let next_due: Option<i64> = snapshot
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM notifications WHERE status = 'pending'",
            )?
            .query_row([], |r| r.get(0))?;
        let due: i64 = snapshot
            .prepare_cached(
                "SELECT count(*) FROM notifications
                 WHERE status = 'pending' AND next_attempt_at <= ?1",
            )?
            .query_row([now.millis()], |r| r.get(0))?;
        let next_due = next_due.map(Timestamp::from_millis);
        Ok(Backlog {
            due: u64::try_from(due).unwrap_or(0),
            oldest_due: next_due.filter(|t| *t <= now),
            next_due,
        })
    }

    /// What the mails about `orders` show, for the orders that still exist
    /// (a PENDING or CANCELLED order may have been removed since).
    fn mail_orders(&self, orders: &[OrderId]) -> Result<Vec<MailOrder>> {
        let snapshot = self.sql().unchecked_transaction()?;
        let mut out = Vec::with_capacity(orders.len());
        for &id in orders {
            let Some(order) = super::orders::find_order(&snapshot, id)? else {
                continue;
            };
            let customer_name: String = snapshot
                .prepare_cached("SELECT name FROM customers WHERE id = ?1")?
                .query_row([order.customer_id.get()], |r| r.get(0))?;
            out.push(MailOrder {
                order,
                customer_name,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::Db;
    use crate::prelude::*;
    use std::time::Duration;

    use super::*;
    use crate::{
        Actor, CustomerRef, ItemRequest, NewCustomer, NewOrder, NewProduct, NotificationStatus,
        ProductRef, Quantity, Sku, Status,
    };

    /// A shop with product A (10 units) and customer c@example.com.
    fn shop() -> Db {
        let store = Db::open_in_memory().unwrap();
        store
            .write(&Actor::cli(), |tx| {
                tx.add_product(&NewProduct {
                    sku: Sku::parse("A")?,
                    name: "Product A".into(),
                    price: tx.currency().parse_amount("2.50")?,
                    stock_on_hand: 10,
                    active: true,
                })?;
                tx.add_customer(&NewCustomer {
                    name: "C".into(),
                    email: "c@example.com".into(),
                    phone: None,
                })?;
                Ok(())
            })
            .unwrap();
        store
    }

    fn place(store: &mut Db, quantity: i64, paid: bool) -> Result<OrderId> {
        let new = NewOrder {
            customer: CustomerRef::Email("c@example.com".into()),
            items: vec![ItemRequest {
                product: ProductRef::parse("A").unwrap(),
                quantity: Quantity::new(quantity).unwrap(),
            }],
            paid,
            idempotency_key: None,
        };
        Ok(store
            .write(&Actor::cli(), |tx| tx.place_order(&new))?
            .order
            .id)
    }

    fn set(store: &mut Db, id: OrderId, to: Status) -> Result<()> {
        store.write(&Actor::cli(), |tx| tx.set_status(id, to, None))?;
        Ok(())
    }

    fn rows(store: &Db) -> Vec<Notification> {
        store.notifications(&NotificationFilter::default()).unwrap()
    }

    fn kinds(store: &Db, order: OrderId) -> Vec<&'static str> {
        store
            .notifications(&NotificationFilter {
                order: Some(order),
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|n| n.kind.as_str())
            .collect()
    }

    fn claim(
        store: &mut Db,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Vec<ClaimedNotification> {
        store
            .write(&Actor::system("mail"), |tx| {
                tx.claim_notifications(&Claim {
                    owner,
                    limit,
                    lease_until: tx.now().plus(lease),
                    message_id_domain: "shop.example",
                })
            })
            .unwrap()
    }

    fn record(store: &mut Db, owner: &str, outcomes: &[(NotificationId, MailOutcome)]) -> Recorded {
        store
            .write(&Actor::system("mail"), |tx| {
                tx.record_deliveries(owner, outcomes)
            })
            .unwrap()
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn every_status_change_writes_exactly_one_row_and_a_no_op_none() {
        let mut store = shop();
        let a = place(&mut store, 1, false).unwrap();
        set(&mut store, a, Status::Paid).unwrap();
        set(&mut store, a, Status::Paid).unwrap(); // no-op
        set(&mut store, a, Status::Fulfilled).unwrap();
        assert_eq!(
            kinds(&store, a),
            ["order.placed", "order.paid", "order.fulfilled"]
        );

        let b = place(&mut store, 1, true).unwrap();
        set(&mut store, b, Status::Cancelled).unwrap();
        set(&mut store, b, Status::Cancelled).unwrap(); // no-op
        assert_eq!(kinds(&store, b), ["order.paid", "order.cancelled"]);

        // A refused transition and a failed placement write nothing.
        let before = rows(&store).len();
        assert!(set(&mut store, b, Status::Paid).is_err());
        assert!(place(&mut store, 1000, false).is_err());
        assert_eq!(rows(&store).len(), before);

        let every = rows(&store);
        assert!(every.iter().all(|n| n.recipient == "c@example.com"
            && n.status == NotificationStatus::Pending
            && n.attempts == 0
            && n.message_id.is_none()));
    }

    #[test]
    fn an_expiry_writes_a_cancelled_row_marked_expired() {
        let mut store = shop();
        let a = place(&mut store, 1, false).unwrap();
        let later = Timestamp::now().plus(Duration::from_secs(1));
        store
            .write(&Actor::cli(), |tx| tx.expire_pending(later))
            .unwrap();
        assert_eq!(kinds(&store, a), ["order.placed", "order.cancelled"]);
        let claimed = claim(&mut store, "x", 10, LEASE);
        let expired: Vec<bool> = claimed.iter().map(|c| c.expired).collect();
        assert_eq!(expired, [false, true]);
    }

    #[test]
    fn a_claim_leases_rows_so_a_second_dispatcher_does_not_see_them() {
        let mut store = shop();
        for _ in 0..3 {
            place(&mut store, 1, false).unwrap();
        }
        let first = claim(&mut store, "one", 2, LEASE);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|c| c.attempts == 1));
        let shop_id = store.setting(SHOP_ID_SETTING).unwrap().unwrap();
        assert_eq!(
            first[0].message_id,
            format!("<notification-{}.{shop_id}@shop.example>", first[0].id)
        );
        let second = claim(&mut store, "two", 10, LEASE);
        assert_eq!(second.len(), 1, "only the row the first left");
        assert!(first.iter().all(|c| c.id != second[0].id));
        assert!(claim(&mut store, "three", 10, LEASE).is_empty());

        // Outcomes count only from the holder of the lease.
        let stolen = record(&mut store, "two", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(
            stolen,
            Recorded {
                recorded: 0,
                lost_lease: 1
            }
        );
        assert_eq!(
            store.notification(first[0].id).unwrap().status,
            NotificationStatus::Pending
        );
        let own = record(&mut store, "one", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(
            own,
            Recorded {
                recorded: 1,
                lost_lease: 0
            }
        );
        let sent = store.notification(first[0].id).unwrap();
        assert_eq!(sent.status, NotificationStatus::Sent);
        assert!(sent.sent_at.is_some());
        // Recording twice changes nothing more.
        let again = record(&mut store, "one", &[(first[0].id, MailOutcome::Sent)]);
        assert_eq!(again.lost_lease, 1);
    }

    #[test]
    fn an_expired_lease_makes_the_row_due_again_with_the_same_message_id() {
        let mut store = shop();
        place(&mut store, 1, false).unwrap();
        // A lease that is over at once: its holder "crashed".
        let crashed = claim(&mut store, "crashed", 10, Duration::ZERO);
        assert_eq!(crashed.len(), 1);
        let again = claim(&mut store, "next", 10, LEASE);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, crashed[0].id);
        assert_eq!(again[0].message_id, crashed[0].message_id);
        assert_eq!(again[0].attempts, 2);
        // The crashed one's late outcome is ignored; the new holder's counts.
        assert_eq!(
            record(&mut store, "crashed", &[(again[0].id, MailOutcome::Sent)]).lost_lease,
            1
        );
        assert_eq!(
            record(&mut store, "next", &[(again[0].id, MailOutcome::Sent)]).recorded,
            1
        );
    }

    #[test]
    fn outcomes_reschedule_kill_or_release_a_row() {
        let mut store = shop();
        for _ in 0..3 {
            place(&mut store, 1, false).unwrap();
        }
        let claimed = claim(&mut store, "d", 10, LEASE);
        let ids: Vec<NotificationId> = claimed.iter().map(|c| c.id).collect();
        let at = Timestamp::now().plus(Duration::from_secs(300));
        let long = "x".repeat(2 * MAX_ERROR_LEN);
        let done = record(
            &mut store,
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
        let retry = store.notification(ids[0]).unwrap();
        assert_eq!(
            (retry.status, retry.next_attempt_at, retry.attempts),
            (NotificationStatus::Pending, at, 1)
        );
        assert_eq!(retry.last_error.as_deref(), Some("421 busy"));
        let dead = store.notification(ids[1]).unwrap();
        assert_eq!(dead.status, NotificationStatus::Dead);
        assert!(dead.last_error.unwrap().chars().count() <= MAX_ERROR_LEN + 1);
        let released = store.notification(ids[2]).unwrap();
        assert_eq!(released.attempts, 0, "a release does not count an attempt");
        // Only the released row is due now.
        let next = claim(&mut store, "d", 10, LEASE);
        assert_eq!(next.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[2]]);
    }

    #[test]
    fn retry_revives_only_dead_rows() {
        let mut store = shop();
        place(&mut store, 1, false).unwrap();
        let id = claim(&mut store, "d", 1, LEASE)[0].id;
        let retry = |store: &mut Db, id| store.write(&Actor::cli(), |tx| tx.retry_notification(id));
        assert!(matches!(retry(&mut store, id), Err(Error::Conflict(_))));
        record(
            &mut store,
            "d",
            &[(
                id,
                MailOutcome::Dead {
                    error: "550 no".into(),
                },
            )],
        );
        let revived = retry(&mut store, id).unwrap();
        assert_eq!(revived.status, NotificationStatus::Pending);
        assert_eq!(revived.attempts, 0);
        assert_eq!(revived.last_error.as_deref(), Some("550 no"));
        let claimed = claim(&mut store, "d", 1, LEASE);
        assert_eq!(claimed[0].id, id);
        assert_eq!(claimed[0].message_id, revived.message_id.unwrap());
        assert!(matches!(
            retry(&mut store, NotificationId(999)),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn list_filters_and_pages_and_the_backlog_counts_due_rows() {
        let mut store = shop();
        let a = place(&mut store, 1, false).unwrap();
        set(&mut store, a, Status::Paid).unwrap();
        let b = place(&mut store, 1, false).unwrap();
        let all = rows(&store);
        assert_eq!(all.len(), 3);
        let page = store
            .notifications(&NotificationFilter {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.len(), 2);
        let rest = store
            .notifications(&NotificationFilter {
                after: Some(page[1].id),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rest.iter().map(|n| n.order_id).collect::<Vec<_>>(), [b]);

        let now = Timestamp::now();
        let backlog = store.notification_backlog(now).unwrap();
        assert_eq!(backlog.due, 3);
        assert_eq!(backlog.oldest_due, Some(all[0].next_attempt_at));

        let claimed = claim(&mut store, "d", 1, LEASE);
        record(&mut store, "d", &[(claimed[0].id, MailOutcome::Sent)]);
        let sent = store
            .notifications(&NotificationFilter {
                status: Some(NotificationStatus::Sent),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(sent.len(), 1);
        let of_a = store
            .notifications(&NotificationFilter {
                order: Some(a),
                status: Some(NotificationStatus::Pending),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(of_a.len(), 1);
        let backlog = store.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!(backlog.due, 2);

        // A leased row is not due: the next due time is its lease's end.
        let leased = claim(&mut store, "d", 10, LEASE);
        assert_eq!(leased.len(), 2);
        let backlog = store.notification_backlog(Timestamp::now()).unwrap();
        assert_eq!((backlog.due, backlog.oldest_due), (0, None));
        assert!(backlog.next_due.unwrap() > Timestamp::now());
    }

    #[test]
    fn mail_orders_skip_removed_orders() {
        let mut store = shop();
        let a = place(&mut store, 2, false).unwrap();
        let b = place(&mut store, 1, false).unwrap();
        store.write(&Actor::cli(), |tx| tx.remove_order(b)).unwrap();
        let found = store.mail_orders(&[a, b]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].order.id, a);
        assert_eq!(found[0].customer_name, "C");
        assert_eq!(found[0].order.total.to_string(), "5.00");
    }
}
