//! The seam between oms's rules and a storage engine.
//!
//! What the domain asks of a store is written down here as traits, one per
//! aggregate, in the domain's words: "place this order", "the changes after
//! seq N", "claim the due notifications". A backend implements them; the
//! faces and [`crate::Db`] only ever see `&Reader` (every read) and
//! `&WriteTx` (every read and write inside one transaction), so a second
//! backend adds a module beside `sqlite` and touches no face.
//!
//! Obligations every backend keeps (ARCHITECTURE.md explains why):
//! - every state change appends its change-log row in the transaction that
//!   makes it, and the log's seqs become visible in seq order with no gap:
//!   a reader that saw seq N and later reads "after N" misses nothing;
//! - stock changes only through guarded updates that re-check the condition
//!   in the database and report how many rows changed;
//! - a failed operation of a transaction leaves nothing of itself behind:
//!   the backend rolls back (or refuses to commit) what it had written.

pub(crate) mod copy;
pub(crate) mod new_file;
mod order_rules;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::fmt;

use crate::notification::{
    Backlog, Claim, ClaimedNotification, MailOrder, MailOutcome, Notification, NotificationFilter,
    Recorded,
};
use crate::payment::{Delivery, DeliveryOutcome, Payment, PaymentFilter};
use crate::{
    Change, Credentials, Currency, Customer, CustomerId, CustomerPatch, CustomerRef, EntityFilter,
    ItemRequest, Money, NewCustomer, NewOrder, NewProduct, NewUser, NotificationId, Order,
    OrderExportRow, OrderFilter, OrderId, PaymentId, Product, ProductId, ProductPatch, ProductRef,
    Restock, Result, Seq, Sku, Status, Timestamp, TokenGrant, User, UserId, UserPatch,
};

/// Why stock moved, as stored in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Create,
    Reserve,
    Release,
    Ship,
    Restock,
    Import,
    Edit,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Create => "create",
            Reason::Reserve => "reserve",
            Reason::Release => "release",
            Reason::Ship => "ship",
            Reason::Restock => "restock",
            Reason::Import => "import",
            Reason::Edit => "edit",
        }
    }
}

/// Most lines on one order.
pub const MAX_LINES: usize = 500;

/// Most ids [`CustomerReads::customers_by_ids`] looks up at once.
pub const MAX_CUSTOMER_IDS: usize = 500;

/// Orders per read of the export: each batch is read in its own short read
/// (see [`OrderReads::for_each_export_row`]).
pub const EXPORT_BATCH: u64 = 1000;

/// Who makes a change: recorded in the change log, and the scope of
/// idempotency keys (a key used by one user does not collide with another's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    label: String,
}

impl Actor {
    /// The command line.
    pub fn cli() -> Actor {
        Actor {
            label: "cli".to_string(),
        }
    }

    /// An authenticated user of the daemon.
    pub fn user(id: UserId) -> Actor {
        Actor {
            label: format!("user:{id}"),
        }
    }

    /// A background job of the system (expiry, payments, mail).
    pub fn system(job: &str) -> Actor {
        Actor {
            label: format!("system:{job}"),
        }
    }

    /// The label stored in the change log.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// Counts of what an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// True when nothing was committed (`--dry-run`).
    pub dry_run: bool,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Case-insensitive substring of the name or SKU.
    pub search: Option<String>,
    pub limit: Option<u64>,
    /// Cursor: only products with a larger id.
    pub after: Option<ProductId>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct CustomerQuery {
    /// Case-insensitive substring of the name or e-mail.
    pub search: Option<String>,
    pub limit: Option<u64>,
    /// Cursor: only customers with a larger id.
    pub after: Option<CustomerId>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// The answer to a placement.
#[derive(Debug, Clone)]
pub struct PlaceOutcome {
    pub order: Order,
    /// True when the idempotency key had been used with the same contents:
    /// this is the original order and nothing was written.
    pub replayed: bool,
    /// The first answer, as JSON: the order as it was placed, also on a
    /// replay (when `order` is how it is now). Serialised once, for the
    /// change log, the idempotency record and the answer.
    pub placed_json: String,
}

/// What `expire_pending` cancelled.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExpireOutcome {
    pub cancelled: Vec<OrderId>,
}

/// What `verify` found. Empty `problems` means no drift.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DriftReport {
    /// The storage engine's own consistency check ("ok" when clean).
    pub integrity: String,
    pub products_checked: i64,
    pub orders_checked: i64,
    pub changes_checked: i64,
    pub problems: Vec<String>,
}

impl DriftReport {
    /// True when nothing drifted.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Orders: one, by tracking code, a filtered list, the export's rows.
pub trait OrderReads {
    /// An order with its items.
    fn order(&self, id: OrderId) -> Result<Order>;
    /// An order by its public tracking code.
    fn order_by_tracking_code(&self, code: &str) -> Result<Order>;
    /// Orders matching the filter, with their items, in one snapshot.
    fn orders(&self, filter: &OrderFilter) -> Result<Vec<Order>>;
    /// One row per order item, ordered by order id and line, in bounded
    /// memory; batches of [`EXPORT_BATCH`] orders each in a short read, so
    /// a slow consumer never holds a snapshot open.
    fn for_each_export_row(
        &self,
        filter: &OrderFilter,
        f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()>;
}

/// Products.
pub trait ProductReads {
    /// A product by SKU or id.
    fn product(&self, product: &ProductRef) -> Result<Product>;
    /// A page of products.
    fn products(&self, query: &ProductQuery) -> Result<Vec<Product>>;
    /// Every product the query matches, one at a time.
    fn for_each_product(
        &self,
        query: &ProductQuery,
        f: &mut dyn FnMut(Product) -> Result<()>,
    ) -> Result<()>;
}

/// Customers.
pub trait CustomerReads {
    /// A customer by id or e-mail.
    fn customer(&self, customer: &CustomerRef) -> Result<Customer>;
    /// A page of customers.
    fn customers(&self, query: &CustomerQuery) -> Result<Vec<Customer>>;
    /// The customers with these ids (at most [`MAX_CUSTOMER_IDS`]).
    fn customers_by_ids(&self, ids: &[CustomerId]) -> Result<Vec<Customer>>;
    /// Every customer the query matches, one at a time.
    fn for_each_customer(
        &self,
        query: &CustomerQuery,
        f: &mut dyn FnMut(Customer) -> Result<()>,
    ) -> Result<()>;
}

/// Users and what their tokens must match.
pub trait UserReads {
    /// A user by e-mail.
    fn user(&self, email: &str) -> Result<User>;
    /// A user by e-mail, if there is one.
    fn find_user(&self, email: &str) -> Result<Option<User>>;
    /// All users ordered by id.
    fn users(&self) -> Result<Vec<User>>;
    /// A user, its password hash and its current token grant.
    fn credentials(&self, email: &str) -> Result<Option<Credentials>>;
    /// What a token of user `id` must match now; `None` once removed.
    fn token_grant(&self, id: UserId) -> Result<Option<TokenGrant>>;
}

/// The change log.
pub trait ChangeReads {
    /// Changes after `after`, in seq order (only `customer`'s when set).
    fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Result<Vec<Change>>;
    /// One record's changes after `after`, in seq order.
    fn entity_changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
        entity: &EntityFilter,
    ) -> Result<Vec<Change>>;
    /// The newest seq (0 when the log is empty).
    fn last_seq(&self) -> Result<Seq>;
}

/// Payments.
pub trait PaymentReads {
    fn payment(&self, id: PaymentId) -> Result<Payment>;
    fn payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>>;
}

/// The notification outbox.
pub trait NotificationReads {
    fn notification(&self, id: NotificationId) -> Result<Notification>;
    fn notifications(&self, filter: &NotificationFilter) -> Result<Vec<Notification>>;
    /// How many rows are due at `now` and how old the oldest is.
    fn notification_backlog(&self, now: Timestamp) -> Result<Backlog>;
    /// What the mails about these orders need (orders since removed are
    /// left out).
    fn mail_orders(&self, orders: &[OrderId]) -> Result<Vec<MailOrder>>;
}

/// Settings of the whole shop, and a liveness check.
pub trait SettingReads {
    /// The currency of every amount.
    fn currency(&self) -> Currency;
    /// A shop-wide setting.
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Checks that the store answers a query (health checks).
    fn ping(&self) -> Result<()>;
}

/// Every read the domain needs.
pub trait Reads:
    OrderReads
    + ProductReads
    + CustomerReads
    + UserReads
    + ChangeReads
    + PaymentReads
    + NotificationReads
    + SettingReads
{
}

impl<T> Reads for T where
    T: OrderReads
        + ProductReads
        + CustomerReads
        + UserReads
        + ChangeReads
        + PaymentReads
        + NotificationReads
        + SettingReads
        + ?Sized
{
}

/// A read snapshot or connection, as the faces see it.
pub type Reader = dyn Reads;

/// Orders: placement, edits, the status machine, removal, expiry.
pub trait OrderWrites {
    /// Places an order: reserves every line or nothing. A key already used
    /// by this actor returns the original order when the contents match and
    /// is refused otherwise.
    fn place_order(&self, new: &NewOrder) -> Result<PlaceOutcome>;
    /// Places an order that ends in `status` (CSV import of history).
    fn place_order_with_status(&self, new: &NewOrder, status: Status) -> Result<PlaceOutcome>;
    /// Replaces the items of a PENDING order, reserving or releasing only
    /// the difference.
    fn edit_order(
        &self,
        id: OrderId,
        items: &[ItemRequest],
        expected_version: Option<i64>,
    ) -> Result<Order>;
    /// Moves an order along the status machine with its stock effect; the
    /// current status is a no-op success.
    fn set_status(&self, id: OrderId, to: Status, expected_version: Option<i64>) -> Result<Order>;
    /// Deletes a PENDING (stock released) or CANCELLED order.
    fn remove_order(&self, id: OrderId) -> Result<Order>;
    /// Cancels every PENDING order created before `cutoff`.
    fn expire_pending(&self, cutoff: Timestamp) -> Result<ExpireOutcome>;
}

/// Products and their stock.
pub trait ProductWrites {
    fn add_product(&self, new: &NewProduct) -> Result<Product>;
    fn update_product(&self, product: &ProductRef, patch: &ProductPatch) -> Result<Product>;
    fn restock(&self, product: &ProductRef, how: Restock) -> Result<Product>;
    fn remove_product(&self, product: &ProductRef) -> Result<Product>;
    /// Creates or updates by SKU (CSV import).
    fn upsert_product(
        &self,
        sku: &Sku,
        name: &str,
        price: Money,
        stock_on_hand: Option<i64>,
        active: Option<bool>,
    ) -> Result<Upserted>;
}

/// Customers.
pub trait CustomerWrites {
    fn add_customer(&self, new: &NewCustomer) -> Result<Customer>;
    fn update_customer(&self, customer: &CustomerRef, patch: &CustomerPatch) -> Result<Customer>;
    fn remove_customer(&self, customer: &CustomerRef) -> Result<Customer>;
    /// Creates or updates by e-mail (CSV import).
    fn upsert_customer(&self, new: &NewCustomer) -> Result<Upserted>;
}

/// Users. A password or role change and a removal end the user's tokens.
pub trait UserWrites {
    fn add_user(&self, new: &NewUser) -> Result<User>;
    fn set_password(&self, email: &str, password_hash: &str) -> Result<User>;
    fn update_user(&self, email: &str, patch: &UserPatch) -> Result<User>;
    fn remove_user(&self, email: &str) -> Result<User>;
}

/// Payments (DESIGN §7).
pub trait PaymentWrites {
    /// Applies one verified webhook delivery: dedupe and effect together.
    fn apply_payment_event(&self, delivery: &Delivery) -> Result<DeliveryOutcome>;
    /// Cash or bank transfer: the exact total of a PENDING order.
    fn record_manual_payment(
        &self,
        order_id: OrderId,
        amount: &str,
        reference: Option<&str>,
    ) -> Result<Payment>;
}

/// The notification outbox's dispatcher side.
pub trait NotificationWrites {
    /// Leases up to `claim.limit` due rows to `claim.owner`.
    fn claim_notifications(&self, claim: &Claim<'_>) -> Result<Vec<ClaimedNotification>>;
    /// Records outcomes of rows this owner still holds.
    fn record_deliveries(
        &self,
        owner: &str,
        outcomes: &[(NotificationId, MailOutcome)],
    ) -> Result<Recorded>;
    /// A dead row back to pending.
    fn retry_notification(&self, id: NotificationId) -> Result<Notification>;
}

/// Shop-wide settings, and the transaction's clock.
pub trait SettingWrites {
    /// The time stamped on everything this transaction writes.
    fn now(&self) -> Timestamp;
    /// Sets the currency (only while no amount is stored).
    fn set_currency(&self, currency: Currency) -> Result<()>;
    /// The setting's value, generating a random secret first if missing.
    fn ensure_secret(&self, key: &str) -> Result<String>;
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;
}

/// Every write the domain needs, and every read, inside one transaction.
pub trait Writes:
    Reads
    + OrderWrites
    + ProductWrites
    + CustomerWrites
    + UserWrites
    + PaymentWrites
    + NotificationWrites
    + SettingWrites
{
}

impl<T> Writes for T where
    T: Reads
        + OrderWrites
        + ProductWrites
        + CustomerWrites
        + UserWrites
        + PaymentWrites
        + NotificationWrites
        + SettingWrites
        + ?Sized
{
}

/// One write transaction, as the faces see it: its operations commit
/// together, or none does if one failed.
pub type WriteTx<'a> = dyn Writes + 'a;

/// One write of a group commit (see [`crate::Db::write_async`]).
pub(crate) trait GroupJob: Send {
    /// Who makes the change.
    fn actor(&self) -> &Actor;
    /// Does the work inside the job's own rollback scope. Returns false to
    /// undo this job's writes (keeping its outcome to report after commit).
    /// May be called again after the scope was undone (a backend's retry
    /// of a deadlock); the last call's outcome is the job's.
    fn run(&mut self, tx: &WriteTx<'_>) -> bool;
}

/// A connection that reads (a backend's reader, or its writer between
/// transactions).
pub(crate) trait ReadConnection: Reads + Send {
    /// Checks every invariant of DESIGN §4 against the stored data.
    fn verify(&self) -> Result<DriftReport>;
    /// Writes a consistent copy of the shop to a new SQLite file at `dest`
    /// (an existing one only with `replace`, swapped in atomically).
    fn backup(&self, dest: &std::path::Path, replace: bool) -> Result<()>;
    /// Reads every table of the shop, in one snapshot (`oms db copy`).
    fn copy_out(&self, visitor: &mut dyn copy::CopyVisitor) -> Result<()>;
}

/// The connection that writes.
pub(crate) trait WriteConnection: Send {
    /// Reads outside a transaction.
    fn reader(&self) -> &(dyn ReadConnection + 'static);
    /// Runs `f` in one transaction and commits it (or rolls it back when
    /// `commit` is false: a dry run); an error rolls everything back, and a
    /// failed operation whose error `f` ignored refuses the commit.
    fn transaction(
        &mut self,
        actor: &Actor,
        commit: bool,
        f: &mut dyn FnMut(&WriteTx<'_>) -> Result<()>,
    ) -> Result<()>;
    /// Runs every job in one transaction and commits once; a job that
    /// fails is undone alone. `Ok` means the jobs that succeeded are
    /// durable; `Err` means nothing is.
    fn group(&mut self, jobs: &mut [&mut dyn GroupJob]) -> Result<()>;
    /// Copies the whole shop `source` holds into this one, which must hold
    /// no shop data (`target` names it in that error), in one transaction.
    fn copy_in(
        &mut self,
        target: &str,
        source: &dyn ReadConnection,
        progress: &mut dyn FnMut(copy::CopyProgress),
    ) -> Result<copy::CopySummary>;
}

/// What a writing connection is for: the engine sizes its caches by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterRole {
    /// A command's few writes.
    Command,
    /// One large write (a CSV import) that touches most index pages.
    Bulk,
    /// The daemon's one writer, committing groups all day.
    Serving,
}

/// A storage engine: opens connections and runs what it needs in the
/// background while a daemon serves. [`crate::Db`] is written against this
/// trait only.
pub(crate) trait Backend: Send + Sync {
    /// Opens a connection that writes, creating and migrating the store.
    fn open_writer(&self, role: WriterRole) -> Result<Box<dyn WriteConnection>>;
    /// Opens a connection that only reads (the store must exist).
    fn open_reader(&self) -> Result<Box<dyn ReadConnection>>;
    /// Starts the background upkeep a serving daemon needs, if any, until
    /// `stop` is set (SQLite: copying the WAL back into the file).
    fn start_upkeep(
        &self,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Option<std::thread::JoinHandle<()>>>;
    /// Starts watching for commits by other processes, every `every` while
    /// `wanted()` says someone waits, publishing the newest seq to `feed`.
    fn watch_commits(
        &self,
        feed: std::sync::Arc<crate::db::Feed>,
        every: std::time::Duration,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>>;
    /// True when a read never waits for a lock or the network, so a short
    /// lookup may run on the caller's (async) thread.
    fn reads_never_wait(&self) -> bool;
    /// Claims `name` among every process serving this store until the
    /// returned guard is dropped; `None` while another process holds it.
    /// An engine that one process serves alone has nothing to claim: the
    /// claims of [`crate::Db`] within the process suffice.
    fn claim(&self, name: &str) -> Result<Option<Box<dyn ClaimGuard>>> {
        let _ = name;
        Ok(Some(Box::new(())))
    }
}

/// Holds a claim of [`Backend::claim`] until dropped.
pub(crate) trait ClaimGuard: Send + Sync {}

impl ClaimGuard for () {}
