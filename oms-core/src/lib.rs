//! `oms-core`: the data and the rules of oms.
//!
//! Everything that touches the stored data lives here: the domain types and
//! rules (the order status machine, the money rules of payments, CSV), the
//! seam a storage engine implements (`store`: one trait per aggregate, in
//! the domain's words) with its SQLite implementation, and [`Db`], the one
//! handle the faces (`oms-cli`, `oms-daemon`) open and ask. No engine type
//! and no engine word appears in this crate's public API.

pub mod controls;
pub mod csvio;
mod db;
mod error;
mod ids;
mod model;
mod money;
mod notification;
pub mod password;
pub mod payment;
pub mod search;
pub mod status;
mod store;
mod timestamp;

pub use db::{
    Db, Feed, KeyClaim, Location, Published, ServeOptions, Subscription, WriteFailure,
    WriteObserver,
};
pub use error::{Error, ErrorKind, LineFailure, Result};
pub use ids::{CustomerId, NotificationId, OrderId, PaymentId, ProductId, Seq, UserId};
pub use model::*;
pub use money::{Currency, Money};
pub use notification::{
    Backlog, Claim, ClaimedNotification, MailOrder, MailOutcome, Notification, NotificationFilter,
    NotificationKind, NotificationStatus, Recorded,
};
pub use status::Status;
pub use store::copy::{CopyProgress, CopySummary};
pub use store::{
    Actor, ChangeReads, CustomerQuery, CustomerReads, CustomerWrites, DriftReport, EXPORT_BATCH,
    ExpireOutcome, ImportSummary, MAX_CUSTOMER_IDS, MAX_LINES, NotificationReads,
    NotificationWrites, OrderReads, OrderWrites, PaymentReads, PaymentWrites, PlaceOutcome,
    ProductQuery, ProductReads, ProductWrites, Reader, Reads, SettingReads, SettingWrites,
    Upserted, UserReads, UserWrites, WriteTx, Writes,
};

/// The schema version this build writes (the embedded engine's
/// migrations); a store written by a newer oms is refused.
pub const SCHEMA_VERSION: i64 = store::sqlite::SCHEMA_VERSION;
pub use timestamp::Timestamp;

/// The traits whose methods a face calls on a [`Db`], a `&Reader` or a
/// `&WriteTx`: `use oms_core::prelude::*;`.
pub mod prelude {
    pub use crate::store::{
        ChangeReads, CustomerReads, CustomerWrites, NotificationReads, NotificationWrites,
        OrderReads, OrderWrites, PaymentReads, PaymentWrites, ProductReads, ProductWrites,
        SettingReads, SettingWrites, UserReads, UserWrites,
    };
}
