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
use crate::store::{NotificationReads, NotificationWrites, OrderReads};
use crate::{
    Backlog, Claim, ClaimedNotification, CustomerId, Error, ErrorKind, MailOrder, MailOutcome,
    Notification, NotificationFilter, NotificationId, NotificationKind, NotificationStatus, Order,
    OrderId, Recorded, Result, Timestamp,
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
            // The parameters of an INSERT ... SELECT get no type from the
            // target columns: cast them.
            None => self.session().execute(
                "INSERT INTO notifications (order_id, customer_id, recipient, kind, reason,
                     next_attempt_at, created_at)
                 SELECT $1::bigint, id, email, $3::text, $4::text, $5::bigint, $5::bigint
                 FROM customers WHERE id = $2",
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
            let order = match self.order(id) {
                Ok(order) => order,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
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
