//! `oms-core`: the data and the rules of oms.
//!
//! Everything that touches the database lives here: the schema and its
//! migrations, every SQL statement, inventory reservations, the order status
//! machine, the change log, the stock ledger and the CSV readers/writers. The
//! command line (`oms-cli`) and the HTTP daemon call the typed functions of
//! [`Store`] and [`WriteTx`]; no rusqlite type appears in this crate's public
//! API.

pub mod csvio;
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

pub use error::{Error, ErrorKind, LineFailure, Result};
pub use ids::{CustomerId, NotificationId, OrderId, PaymentId, ProductId, Seq, UserId};
pub use model::*;
pub use money::{Currency, Money};
pub use notification::{
    Backlog, Claim, ClaimedNotification, MailOrder, MailOutcome, Notification, NotificationFilter,
    NotificationKind, NotificationStatus, Recorded,
};
pub use status::Status;
pub use store::{
    Actor, DriftReport, ExpireOutcome, GroupJob, ImportSummary, Options, PlaceOutcome,
    SCHEMA_VERSION, Store, WAL_SIZE_LIMIT, WriteTx,
};
pub use store::{CustomerQuery, EXPORT_BATCH, MAX_CUSTOMER_IDS, ProductQuery, Upserted};
pub use timestamp::Timestamp;
