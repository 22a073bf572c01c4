//! [`Db`]: the one handle a face holds on a shop's data.
//!
//! A face opens it from the `--db` value and then only asks: write in one
//! transaction ([`Db::write`], or [`Db::write_async`], group-committed when
//! many callers write at once and durable when it returns), read
//! ([`Db::read`], [`Db::read_async`], [`Db::lookup`], or the typed methods of
//! [`Reads`] that `Db` implements), subscribe to commits ([`Db::subscribe`],
//! which sees other processes' commits too), stream the order export,
//! back up, verify. Which engine stores the data, and how it keeps its
//! promises (a writer thread, a pool of readers, background upkeep, a
//! watcher of other processes' commits), is private to `crate::store`.
//!
//! Two ways to open it:
//! - [`Db::open`], for a command: one connection, used on the caller's
//!   thread; every call runs at once.
//! - [`Db::serve`], for the daemon: a writer thread that commits whatever
//!   is queued in one transaction, reader threads with a connection each,
//!   and the engine's background work. Async callers never block a runtime
//!   thread except for [`Db::lookup`], which runs a single-row read inline
//!   only where the engine promises it never waits.

mod feed;
mod readers;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

pub use feed::{Feed, Published, Subscription};
pub use writer::{WriteFailure, WriteObserver};

use crate::store::ClaimGuard;
use crate::store::WriterRole;
use crate::store::copy::{CopyProgress, CopySummary};
use crate::store::postgres::Postgres;
use crate::store::sqlite::engine::Sqlite;
use crate::store::{
    Backend, ChangeReads, CustomerQuery, CustomerReads, DriftReport, NotificationReads, OrderReads,
    PaymentReads, ProductQuery, ProductReads, Reader, SettingReads, UserReads, WriteConnection,
    WriteTx,
};
use crate::{
    Actor, Change, Credentials, Currency, Customer, CustomerId, CustomerRef, EntityFilter, Error,
    Order, OrderExportRow, OrderFilter, OrderId, Product, ProductRef, Result, Seq, Timestamp,
    TokenGrant, User, UserId,
};
use readers::ReadPool;
use writer::{Job, TypedJob, WriteHealth, WriterContext};

/// Where a shop's data lives: the `--db` value (`OMS_DB`).
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A database file of the embedded engine (the default, `./oms.db`).
    File(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

impl Location {
    /// What to call it in messages: the file, or the URL without its
    /// password.
    pub fn display(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => redact_password(url),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.display())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(text: &str) -> Result<Location> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid(
                "the database is empty: give a file or a postgres:// URL",
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Location::Postgres(trimmed.to_string()));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            return Err(Error::invalid(format!(
                "unknown database URL scheme {scheme:?}: give a file or a postgres:// URL"
            )));
        }
        Ok(Location::File(PathBuf::from(text)))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// How a serving [`Db`] runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Reader threads, each with its own connection.
    pub readers: usize,
    /// Most writes committed in one group.
    pub max_batch: usize,
    /// How often commits by other processes are looked for while anyone
    /// subscribes.
    pub watch_every: Duration,
    /// Told about every group commit (metrics).
    pub observer: Option<Arc<dyn WriteObserver>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            readers: 4,
            max_batch: 512,
            watch_every: Duration::from_millis(50),
            observer: None,
        }
    }
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions")
            .field("readers", &self.readers)
            .field("max_batch", &self.max_batch)
            .field("watch_every", &self.watch_every)
            .finish_non_exhaustive()
    }
}

/// The handle on a shop's data. Cheap to share (`Arc` it); `Send + Sync`.
pub struct Db {
    location: Option<Location>,
    backend: Arc<dyn Backend>,
    feed: Arc<Feed>,
    /// How often other processes' commits are looked for.
    watch_every: Duration,
    /// Whether the watcher of other processes' commits runs (started by
    /// `serve`, or by the first `subscribe` of a command's handle).
    watching: AtomicBool,
    /// Tells the background threads to end; they are joined on close.
    stop: Arc<AtomicBool>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Idempotency keys of requests in flight in this process.
    claims: Arc<Mutex<HashSet<String>>>,
    mode: Mode,
}

/// An idempotency key claimed for one request (see
/// [`Db::claim_idempotency_key`]); released when dropped.
pub struct KeyClaim {
    _local: LocalClaim,
    _across: Box<dyn ClaimGuard>,
}

/// The in-process half of a claim, released when dropped unless kept.
struct LocalClaim {
    claims: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        if let Ok(mut claims) = self.claims.lock() {
            claims.remove(&self.name);
        }
    }
}

enum Mode {
    /// One connection, used on the caller's thread.
    Direct(Mutex<Box<dyn WriteConnection>>),
    Served(Served),
}

/// The threads of a serving handle.
struct Served {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    queued: Arc<AtomicUsize>,
    health: Arc<WriteHealth>,
    readers: ReadPool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn backend_for(location: &Location) -> Result<Arc<dyn Backend>> {
    match location {
        Location::File(path) => Ok(Arc::new(Sqlite::File(path.clone()))),
        Location::Postgres(url) => Ok(Arc::new(Postgres::new(url, location.display())?)),
    }
}

impl Db {
    /// Opens (creating and migrating if needed) the shop at `location` for
    /// a command: one connection, used on the caller's thread.
    pub fn open(location: &Location) -> Result<Db> {
        let backend = backend_for(location)?;
        Db::direct(Some(location.clone()), backend)
    }

    /// [`Db::open`] of the `--db` text.
    pub fn open_str(location: &str) -> Result<Db> {
        Db::open(&location.parse()?)
    }

    /// [`Db::open`] for one large write (a CSV import): the engine may
    /// use more memory to keep what the write touches cached.
    pub fn open_for_bulk(location: &Location) -> Result<Db> {
        let backend = backend_for(location)?;
        Db::direct_as(Some(location.clone()), backend, WriterRole::Bulk)
    }

    /// A private in-memory shop (tests, fuzzing): gone when dropped.
    pub fn open_in_memory() -> Result<Db> {
        Db::direct(None, Arc::new(Sqlite::Memory))
    }

    fn direct(location: Option<Location>, backend: Arc<dyn Backend>) -> Result<Db> {
        Db::direct_as(location, backend, WriterRole::Command)
    }

    fn direct_as(
        location: Option<Location>,
        backend: Arc<dyn Backend>,
        role: WriterRole,
    ) -> Result<Db> {
        let conn = backend.open_writer(role)?;
        let last = conn.reader().last_seq()?;
        Ok(Db {
            location,
            backend,
            feed: Arc::new(Feed::new(last)),
            watch_every: ServeOptions::default().watch_every,
            watching: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            background: Mutex::new(Vec::new()),
            claims: Arc::default(),
            mode: Mode::Direct(Mutex::new(conn)),
        })
    }

    /// Opens the shop at `location` for a daemon: creates and migrates it,
    /// starts the writer thread (group commit), the reader threads and the
    /// engine's background work. [`Db::close`] stops them.
    pub fn serve(location: &Location, options: ServeOptions) -> Result<Db> {
        let backend = backend_for(location)?;
        let writer = backend.open_writer(WriterRole::Serving)?;
        let last = writer.reader().last_seq()?;
        let feed = Arc::new(Feed::new(last));
        let readers = ReadPool::open(backend.as_ref(), options.readers.max(1))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut background = Vec::new();
        if let Some(upkeep) = backend.start_upkeep(Arc::clone(&stop))? {
            background.push(upkeep);
        }
        let max_batch = options.max_batch.max(1);
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(max_batch * 8);
        let health = Arc::new(WriteHealth::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let cx = WriterContext {
            feed: Arc::clone(&feed),
            health: Arc::clone(&health),
            observer: options.observer.clone(),
            queued: Arc::clone(&queued),
            max_batch,
        };
        let writer_thread = std::thread::Builder::new()
            .name("oms-writer".into())
            .spawn(move || writer::writer_loop(writer, rx, &cx))
            .map_err(|e| Error::io("cannot start the writer thread", e))?;
        let db = Db {
            location: Some(location.clone()),
            backend,
            feed,
            watch_every: options.watch_every,
            watching: AtomicBool::new(false),
            stop,
            background: Mutex::new(background),
            claims: Arc::default(),
            mode: Mode::Served(Served {
                jobs: Mutex::new(Some(tx)),
                queued,
                health,
                readers,
                writer: Mutex::new(Some(writer_thread)),
            }),
        };
        db.watch_others()?;
        Ok(db)
    }

    /// Starts the watcher of other processes' commits, once.
    fn watch_others(&self) -> Result<()> {
        if self.location.is_none() || self.watching.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let handle = self.backend.watch_commits(
            Arc::clone(&self.feed),
            self.watch_every,
            Arc::clone(&self.stop),
        )?;
        lock(&self.background)?.push(handle);
        Ok(())
    }

    /// Where the data lives (`None` for an in-memory shop).
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// Runs `f` in one transaction on the calling thread and commits it;
    /// an error rolls everything back. On a serving handle this uses a
    /// connection of its own beside the writer thread, as another process
    /// would (the engine serialises them).
    pub fn write<T>(&self, actor: &Actor, f: impl FnOnce(&WriteTx<'_>) -> Result<T>) -> Result<T> {
        self.transaction(actor, true, f)
    }

    /// Runs `f` like [`Db::write`] and then rolls back: the answer of a
    /// `--dry-run`.
    pub fn dry_run<T>(
        &self,
        actor: &Actor,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.transaction(actor, false, f)
    }

    fn transaction<T>(
        &self,
        actor: &Actor,
        commit: bool,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        let mut run = |tx: &WriteTx<'_>| -> Result<()> {
            let f = f
                .take()
                .ok_or_else(|| Error::Database("a transaction body ran twice".into()))?;
            out = Some(f(tx)?);
            Ok(())
        };
        match &self.mode {
            Mode::Direct(conn) => lock(conn)?.transaction(actor, commit, &mut run)?,
            Mode::Served(_) => self
                .backend
                .open_writer(WriterRole::Command)?
                .transaction(actor, commit, &mut run)?,
        }
        out.ok_or_else(|| Error::Database("a transaction body never ran".into()))
    }

    /// Runs `work` in the next group commit and answers after the commit:
    /// durable when it returns `Ok`. Many callers writing at once share one
    /// transaction (one fsync); a failed write is undone alone. On a
    /// command's handle it runs at once, like [`Db::write`].
    pub async fn write_async<T, F>(&self, actor: Actor, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&WriteTx<'_>) -> Result<T> + Send + 'static,
    {
        let served = match &self.mode {
            Mode::Direct(_) => return self.write(&actor, work),
            Mode::Served(served) => served,
        };
        let (job, answer) = TypedJob::new(actor, work);
        let sender = lock(&served.jobs)?
            .clone()
            .ok_or_else(|| Error::Database("the server is shutting down".into()))?;
        served.queued.fetch_add(1, Ordering::AcqRel);
        if sender.send(Box::new(job)).await.is_err() {
            served.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Database("the writer has stopped".into()));
        }
        answer
            .await
            .map_err(|_| Error::Database("the writer dropped a job".into()))?
    }

    /// Writes queued for the writer thread and not yet taken (0 on a
    /// command's handle).
    pub fn queued(&self) -> usize {
        match &self.mode {
            Mode::Direct(_) => 0,
            Mode::Served(served) => served.queued.load(Ordering::Acquire),
        }
    }

    /// Why writes are failing now (the disk is full, ...), or `None` while
    /// commits succeed. Known on a serving handle only.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        match &self.mode {
            Mode::Direct(_) => None,
            Mode::Served(served) => served.health.current(),
        }
    }

    /// Runs `query` on a reading connection, on the calling thread.
    pub fn read<T>(&self, query: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        match &self.mode {
            Mode::Direct(conn) => {
                let conn = lock(conn)?;
                let reader: &Reader = conn.reader();
                query(reader)
            }
            Mode::Served(served) => served.readers.run_here(|conn| query(conn)),
        }
    }

    /// Runs `query` on a reader thread (on a command's handle, at once).
    /// No read transaction outlives the call.
    pub async fn read_async<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T> + Send + 'static,
    {
        match &self.mode {
            Mode::Direct(_) => self.read(query),
            Mode::Served(served) => served.readers.run_on_thread(query).await,
        }
    }

    /// A single-row read (one order, one product, a ping): on the calling
    /// thread when a connection is free and the engine's reads never wait,
    /// like [`Db::read_async`] otherwise. Such a lookup reads a handful of
    /// cached pages: less work than a hand-off to a reader thread and back.
    /// Anything that can read many rows goes through [`Db::read_async`].
    pub async fn lookup<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T> + Send + 'static,
    {
        match &self.mode {
            Mode::Direct(_) => self.read(query),
            Mode::Served(served) => {
                if !self.backend.reads_never_wait() {
                    return served.readers.run_on_thread(query).await;
                }
                match served.readers.try_run_here(query) {
                    Ok(answer) => answer,
                    Err(query) => served.readers.run_on_thread(query).await,
                }
            }
        }
    }

    /// Change notifications: commits through this handle's writer, and
    /// commits by any other process on the same data (noticed within the
    /// watch interval, 50 ms by default). On a command's handle the first
    /// subscription starts the watcher.
    pub fn subscribe(&self) -> Result<Subscription> {
        self.watch_others()?;
        Ok(self.feed.subscribe())
    }

    /// Streams the order export (one row per item, bounded memory) to `f`,
    /// on the calling thread, with a connection of its own on a serving
    /// handle so that a long export holds no reader of the pool.
    pub fn export_orders(
        &self,
        filter: &OrderFilter,
        f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()> {
        match &self.mode {
            Mode::Direct(_) => self.read(|r| r.for_each_export_row(filter, f)),
            Mode::Served(_) => self.backend.open_reader()?.for_each_export_row(filter, f),
        }
    }

    /// Writes a consistent copy of the shop to the SQLite file `dest`,
    /// safe while others write; an existing `dest` only with `replace`,
    /// swapped in atomically. Never half-written.
    pub fn backup(&self, dest: &Path, replace: bool) -> Result<()> {
        match &self.mode {
            Mode::Direct(conn) => lock(conn)?.reader().backup(dest, replace),
            Mode::Served(_) => self.backend.open_reader()?.backup(dest, replace),
        }
    }

    /// Claims an idempotency key of `actor` for one request, among every
    /// request of every process serving this shop; `None` while another
    /// request with the same key is in flight (DESIGN §6: answered 409).
    /// Dropping the claim releases it. The claim is taken before the
    /// placing transaction and released after its answer: the unique index
    /// on the key inside that transaction keeps the promise that two
    /// placements never both happen; the claim tells a concurrent retry to
    /// come back later instead of waiting for the first.
    pub async fn claim_idempotency_key(
        &self,
        actor: &Actor,
        key: &str,
    ) -> Result<Option<KeyClaim>> {
        let name = format!("{}\u{1f}{key}", actor.label());
        if !lock(&self.claims)?.insert(name.clone()) {
            return Ok(None);
        }
        // From here on the in-process claim is released on every path.
        let local = LocalClaim {
            claims: Arc::clone(&self.claims),
            name,
        };
        let across = if self.backend.reads_never_wait() {
            self.backend.claim(&local.name)?
        } else {
            // A round trip to the server: on a thread of its own, so the
            // caller's async thread never blocks on the network.
            let backend = Arc::clone(&self.backend);
            let name = local.name.clone();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("oms-claim".into())
                .spawn(move || {
                    let _ = tx.send(backend.claim(&name));
                })
                .map_err(|e| Error::io("cannot start a thread", e))?;
            rx.await
                .map_err(|_| Error::Database("a claim was lost".into()))??
        };
        Ok(across.map(|guard| KeyClaim {
            _local: local,
            _across: guard,
        }))
    }

    /// Copies the whole shop into the empty database at `target`, of
    /// either kind, creating it if it is a file that does not exist yet:
    /// every table, ids and change seqs included, read in one snapshot and
    /// written in one transaction. A target that holds shop data is
    /// refused ([`Error::Conflict`]); a file this copy created is removed
    /// again when the copy fails. `progress` hears how far it got.
    pub fn copy_to(
        &self,
        target: &Location,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<CopySummary> {
        if self.location.as_ref() == Some(target) {
            return Err(Error::invalid(format!(
                "{target} is the shop being copied; give another database"
            )));
        }
        let created = match target {
            Location::File(path) => (!path.exists()).then(|| path.clone()),
            Location::Postgres(_) => None,
        };
        let result = (|| {
            let backend = backend_for(target)?;
            let mut writer = backend.open_writer(WriterRole::Bulk)?;
            let shown = target.display();
            match &self.mode {
                Mode::Direct(conn) => {
                    let conn = lock(conn)?;
                    writer.copy_in(&shown, conn.reader(), progress)
                }
                Mode::Served(_) => {
                    let reader = self.backend.open_reader()?;
                    writer.copy_in(&shown, reader.as_ref(), progress)
                }
            }
        })();
        if result.is_err()
            && let Some(path) = created
        {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        result
    }

    /// Checks every invariant of DESIGN §4 against the stored data.
    pub fn verify(&self) -> Result<DriftReport> {
        match &self.mode {
            Mode::Direct(conn) => lock(conn)?.reader().verify(),
            Mode::Served(_) => self.backend.open_reader()?.verify(),
        }
    }

    /// Stops taking writes, lets the writer commit what is queued, waits
    /// for it, then stops the background work. Call after the last
    /// [`Db::write_async`]; dropping the handle does it too.
    pub fn close(&self) {
        if let Mode::Served(served) = &self.mode {
            if let Ok(mut jobs) = served.jobs.lock() {
                jobs.take();
            }
            let writer = served.writer.lock().ok().and_then(|mut w| w.take());
            if let Some(writer) = writer {
                let _ = writer.join();
            }
        }
        self.stop.store(true, Ordering::Release);
        let background = self
            .background
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default();
        for handle in background {
            let _ = handle.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| Error::Database("a database connection was poisoned by a panic".into()))
}

// The typed reads of a handle: each runs on the calling thread with a
// reading connection (see `Db::read`). Handy for commands and tests; a
// daemon's async code uses `read_async`/`lookup` instead.

impl OrderReads for Db {
    fn order(&self, id: OrderId) -> Result<Order> {
        self.read(|r| r.order(id))
    }
    fn order_by_tracking_code(&self, code: &str) -> Result<Order> {
        self.read(|r| r.order_by_tracking_code(code))
    }
    fn orders(&self, filter: &OrderFilter) -> Result<Vec<Order>> {
        self.read(|r| r.orders(filter))
    }
    fn for_each_export_row(
        &self,
        filter: &OrderFilter,
        f: &mut dyn FnMut(OrderExportRow) -> Result<()>,
    ) -> Result<()> {
        self.export_orders(filter, f)
    }
}

impl ProductReads for Db {
    fn product(&self, product: &ProductRef) -> Result<Product> {
        self.read(|r| r.product(product))
    }
    fn products(&self, query: &ProductQuery) -> Result<Vec<Product>> {
        self.read(|r| r.products(query))
    }
    fn for_each_product(
        &self,
        query: &ProductQuery,
        f: &mut dyn FnMut(Product) -> Result<()>,
    ) -> Result<()> {
        self.read(|r| r.for_each_product(query, f))
    }
}

impl CustomerReads for Db {
    fn customer(&self, customer: &CustomerRef) -> Result<Customer> {
        self.read(|r| r.customer(customer))
    }
    fn customers(&self, query: &CustomerQuery) -> Result<Vec<Customer>> {
        self.read(|r| r.customers(query))
    }
    fn customers_by_ids(&self, ids: &[CustomerId]) -> Result<Vec<Customer>> {
        self.read(|r| r.customers_by_ids(ids))
    }
    fn for_each_customer(
        &self,
        query: &CustomerQuery,
        f: &mut dyn FnMut(Customer) -> Result<()>,
    ) -> Result<()> {
        self.read(|r| r.for_each_customer(query, f))
    }
}

impl UserReads for Db {
    fn user(&self, email: &str) -> Result<User> {
        self.read(|r| r.user(email))
    }
    fn find_user(&self, email: &str) -> Result<Option<User>> {
        self.read(|r| r.find_user(email))
    }
    fn users(&self) -> Result<Vec<User>> {
        self.read(|r| r.users())
    }
    fn credentials(&self, email: &str) -> Result<Option<Credentials>> {
        self.read(|r| r.credentials(email))
    }
    fn token_grant(&self, id: UserId) -> Result<Option<TokenGrant>> {
        self.read(|r| r.token_grant(id))
    }
}

impl ChangeReads for Db {
    fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Result<Vec<Change>> {
        self.read(|r| r.changes_after(after, limit, customer))
    }
    fn entity_changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
        entity: &EntityFilter,
    ) -> Result<Vec<Change>> {
        self.read(|r| r.entity_changes_after(after, limit, customer, entity))
    }
    fn last_seq(&self) -> Result<Seq> {
        self.read(|r| r.last_seq())
    }
}

impl PaymentReads for Db {
    fn payment(&self, id: crate::PaymentId) -> Result<crate::payment::Payment> {
        self.read(|r| r.payment(id))
    }
    fn payments(
        &self,
        filter: &crate::payment::PaymentFilter,
    ) -> Result<Vec<crate::payment::Payment>> {
        self.read(|r| r.payments(filter))
    }
}

impl NotificationReads for Db {
    fn notification(&self, id: crate::NotificationId) -> Result<crate::Notification> {
        self.read(|r| r.notification(id))
    }
    fn notifications(
        &self,
        filter: &crate::NotificationFilter,
    ) -> Result<Vec<crate::Notification>> {
        self.read(|r| r.notifications(filter))
    }
    fn notification_backlog(&self, now: Timestamp) -> Result<crate::Backlog> {
        self.read(|r| r.notification_backlog(now))
    }
    fn mail_orders(&self, orders: &[OrderId]) -> Result<Vec<crate::MailOrder>> {
        self.read(|r| r.mail_orders(orders))
    }
}

impl SettingReads for Db {
    fn currency(&self) -> Currency {
        self.read(|r| Ok(r.currency())).unwrap_or(Currency::USD)
    }
    fn setting(&self, key: &str) -> Result<Option<String>> {
        self.read(|r| r.setting(key))
    }
    fn ping(&self) -> Result<()> {
        self.read(|r| r.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_from_the_db_value() {
        assert_eq!(
            "oms.db".parse::<Location>().unwrap(),
            Location::File(PathBuf::from("oms.db"))
        );
        assert_eq!(
            "./data/shop.db".parse::<Location>().unwrap(),
            Location::File(PathBuf::from("./data/shop.db"))
        );
        let pg: Location = "postgres://oms:secret@127.0.0.1:5432/shop".parse().unwrap();
        assert!(matches!(pg, Location::Postgres(_)));
        assert_eq!(pg.to_string(), "postgres://oms:***@127.0.0.1:5432/shop");
        assert!(matches!(
            "postgresql://h/db".parse::<Location>().unwrap(),
            Location::Postgres(_)
        ));
        assert!("mysql://h/db".parse::<Location>().is_err());
        assert!("  ".parse::<Location>().is_err());
    }
}
