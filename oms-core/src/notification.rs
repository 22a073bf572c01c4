//! The notification outbox's domain types (DESIGN §7): what a row is, what
//! the dispatcher claims, and the outcomes it records. The SQL lives in
//! `store/notifications.rs`; the SMTP sending in `oms-daemon`'s `mail`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::{CustomerId, Error, NotificationId, Order, OrderId, Status, Timestamp};

/// What a notification is about: the status an order moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    Placed,
    Paid,
    Fulfilled,
    Cancelled,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 4] = [
        NotificationKind::Placed,
        NotificationKind::Paid,
        NotificationKind::Fulfilled,
        NotificationKind::Cancelled,
    ];

    /// The name used in JSON and the database (`order.placed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Placed => "order.placed",
            NotificationKind::Paid => "order.paid",
            NotificationKind::Fulfilled => "order.fulfilled",
            NotificationKind::Cancelled => "order.cancelled",
        }
    }

    /// The kind of the mail about an order that is now in `status`: a
    /// placement writes the kind of the status it places the order in
    /// (PENDING → `order.placed`, `--paid` → `order.paid`, an imported
    /// FULFILLED order → `order.fulfilled`), a transition that of its target.
    pub fn for_status(status: Status) -> NotificationKind {
        match status {
            Status::Pending => NotificationKind::Placed,
            Status::Paid => NotificationKind::Paid,
            Status::Fulfilled => NotificationKind::Fulfilled,
            Status::Cancelled => NotificationKind::Cancelled,
        }
    }

    /// The order status this kind announces.
    pub fn status(self) -> Status {
        match self {
            NotificationKind::Placed => Status::Pending,
            NotificationKind::Paid => Status::Paid,
            NotificationKind::Fulfilled => Status::Fulfilled,
            NotificationKind::Cancelled => Status::Cancelled,
        }
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotificationKind {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<NotificationKind> {
        NotificationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown notification kind {s:?}: use order.placed, order.paid, order.fulfilled or order.cancelled"
                ))
            })
    }
}

impl Serialize for NotificationKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationStatus {
    /// Waiting for its next attempt (or being sent under a lease).
    Pending,
    /// Accepted by the SMTP server.
    Sent,
    /// Refused for good (5xx), or out of attempts: no more tries until
    /// `oms notify retry`.
    Dead,
}

impl NotificationStatus {
    /// The lower-case name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationStatus::Pending => "pending",
            NotificationStatus::Sent => "sent",
            NotificationStatus::Dead => "dead",
        }
    }
}

impl fmt::Display for NotificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotificationStatus {
    type Err = Error;
    fn from_str(s: &str) -> crate::Result<NotificationStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Ok(NotificationStatus::Pending),
            "sent" => Ok(NotificationStatus::Sent),
            "dead" => Ok(NotificationStatus::Dead),
            _ => Err(Error::invalid(format!(
                "unknown notification status {s:?}: use pending, sent or dead"
            ))),
        }
    }
}

impl Serialize for NotificationStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One row of the outbox, with the fields of DESIGN §7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: NotificationId,
    pub order_id: OrderId,
    pub recipient: String,
    pub kind: NotificationKind,
    pub status: NotificationStatus,
    /// Delivery attempts started (a claim counts one).
    pub attempts: i64,
    /// When a pending row is next due; while a dispatcher holds it, the
    /// end of that dispatcher's lease.
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    /// The `Message-ID` header, fixed at the first attempt and kept for
    /// every retry (`None` until then).
    pub message_id: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// Filters of `oms notify list` and `GET /api/notifications`.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub order: Option<OrderId>,
    pub limit: Option<u64>,
    /// Cursor: only rows with a larger id.
    pub after: Option<NotificationId>,
}

/// A row a dispatcher claimed: what it needs to build and send the mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNotification {
    pub id: NotificationId,
    pub order_id: OrderId,
    pub customer_id: Option<CustomerId>,
    pub recipient: String,
    pub kind: NotificationKind,
    /// An `order.cancelled` row written by expiry (the mail says so).
    pub expired: bool,
    /// Attempts including this one.
    pub attempts: i64,
    pub message_id: String,
}

/// What a dispatcher asks for when it claims rows.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Who holds the lease: outcomes are recorded only by their holder.
    pub owner: &'a str,
    /// Most rows to claim.
    pub limit: usize,
    /// Until when the claimed rows are this dispatcher's; after that they
    /// are due again (a crashed dispatcher's rows come back).
    pub lease_until: Timestamp,
    /// The right-hand side of `Message-ID`s fixed by this claim.
    pub message_id_domain: &'a str,
}

/// How one claimed row's attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    /// The server accepted the message.
    Sent,
    /// A temporary failure: try again at `at`.
    Retry { at: Timestamp, error: String },
    /// A permanent failure, or out of attempts: no more tries.
    Dead { error: String },
    /// Not attempted (the lease ran short, or shutdown): due again now,
    /// and the claim's attempt is not counted.
    Released,
}

/// What recording a batch of outcomes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    pub recorded: u64,
    /// Outcomes ignored because the row's lease had passed to another
    /// dispatcher (or the row was changed by an admin meanwhile).
    pub lost_lease: u64,
}

/// The outbox's backlog, for metrics and the dispatcher's sleep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Pending rows due now.
    pub due: u64,
    /// The earliest `next_attempt_at` among rows due now.
    pub oldest_due: Option<Timestamp>,
    /// The earliest `next_attempt_at` of any pending row (due or not).
    pub next_due: Option<Timestamp>,
}

/// What a mail about an order shows: the order and its customer's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailOrder {
    pub order: Order,
    pub customer_name: String,
}
