//! The SQLite store: one [`Store`] owns a connection; every SQL statement of
//! oms lives in this module tree, split by aggregate.
//!
//! Locking: every write runs inside [`Store::write`], a `BEGIN IMMEDIATE`
//! transaction, so the write lock is taken up front and two writers (the
//! daemon and a CLI process) queue on the busy timeout instead of failing on
//! a lock upgrade. A failed [`WriteTx`] operation may have written part of
//! its work, so nothing after it is committed: `Store::write` rolls the
//! whole transaction back (even when the caller ignored the error), and a
//! group commit rolls the job back to its own SAVEPOINT (see `group`).

mod changes;
mod customers;
mod group;
mod inventory;
mod orders;
mod products;
mod schema;
mod settings;
mod users;
mod verify;

pub use customers::{CustomerQuery, MAX_IDS as MAX_CUSTOMER_IDS};
pub use products::{ProductQuery, Upserted};

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::{Currency, Error, Result, Timestamp};

pub use group::GroupJob;
pub use orders::{ExpireOutcome, PlaceOutcome};
pub use schema::SCHEMA_VERSION;
pub use verify::DriftReport;

/// How long a writer waits for another process's write lock before giving
/// up with [`Error::Busy`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How every write transaction begins: IMMEDIATE takes the write lock up
/// front, so a writer waits on the busy timeout instead of failing when it
/// upgrades a read snapshot that another process has since written past.
#[cfg(not(feature = "broken-deferred-begin"))]
const WRITE_BEGIN: TransactionBehavior = TransactionBehavior::Immediate;
/// NEGATIVE CONTROL, only in a `--features broken-deferred-begin` build
/// (docs/reliability.md): DEFERRED, so concurrent writers fail with "busy".
#[cfg(feature = "broken-deferred-begin")]
const WRITE_BEGIN: TransactionBehavior = TransactionBehavior::Deferred;

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
    pub fn user(id: crate::UserId) -> Actor {
        Actor {
            label: format!("user:{id}"),
        }
    }

    /// A background job of the system (expiry, payments).
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

/// How to open a database.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the file if it does not exist.
    pub create: bool,
    /// Open without write access (daemon read pool). Skips migrations.
    pub read_only: bool,
    pub busy_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create: true,
            read_only: false,
            busy_timeout: BUSY_TIMEOUT,
        }
    }
}

/// A connection to an oms database.
pub struct Store {
    conn: Connection,
    currency: Currency,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, &Options::default())
    }

    /// Opens with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: &Options) -> Result<Store> {
        let path = path.as_ref();
        let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if options.read_only {
            flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
        } else {
            flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
            if options.create {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|e| {
            Error::io(
                format!("cannot open database {}", path.display()),
                std::io::Error::other(e.to_string()),
            )
        })?;
        Store::setup(conn, options)
    }

    /// A private in-memory database (tests, fuzzing).
    pub fn open_in_memory() -> Result<Store> {
        Store::setup(Connection::open_in_memory()?, &Options::default())
    }

    fn setup(mut conn: Connection, options: &Options) -> Result<Store> {
        conn.busy_timeout(options.busy_timeout)?;
        let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
        tracing::debug!(sqlite_version = %version, "opened database");
        if !options.read_only {
            set_wal(&conn, options.busy_timeout)?;
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;",
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        // Query planner stability: a plan never depends on bound values.
        // Without it SQLite re-compiles some cached statements each time a
        // new value is bound (the order-items lookup of every GET did), and
        // no query here gains from a value-specific plan.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        if !options.read_only {
            schema::migrate(&mut conn)?;
        }
        let currency = settings::currency(&conn)?;
        Ok(Store { conn, currency })
    }

    /// The currency of every amount in this database.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it; an
    /// error rolls everything back.
    pub fn write<T>(
        &mut self,
        actor: &Actor,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_inner(actor, true, f)
    }

    /// Runs `f` like [`Store::write`] and then rolls back: the answer of a
    /// `--dry-run`.
    pub fn dry_run<T>(
        &mut self,
        actor: &Actor,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_inner(actor, false, f)
    }

    fn write_inner<T>(
        &mut self,
        actor: &Actor,
        commit: bool,
        f: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self.conn.transaction_with_behavior(WRITE_BEGIN)?;
        let wtx = WriteTx {
            conn: &tx,
            actor,
            now: Timestamp::now(),
            currency: self.currency,
            new_currency: Cell::new(None),
            in_job: false,
            failed: Cell::new(false),
        };
        let out = f(&wtx)?;
        if wtx.failed.get() {
            // The caller went on after an operation failed: that operation
            // may have written part of its work, so nothing is committed.
            return Err(Error::Database(
                "an operation failed inside the transaction and its error was ignored; nothing was written".into(),
            ));
        }
        let new_currency = wtx.new_currency.get();
        if commit {
            tx.commit()?;
            if let Some(currency) = new_currency {
                self.currency = currency;
            }
        } else {
            tx.rollback()?;
        }
        Ok(out)
    }

    /// Opens an existing database read-only (the daemon's read pool).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(
            path,
            &Options {
                read_only: true,
                create: false,
                ..Options::default()
            },
        )
    }

    /// Sets the page cache of this connection, in KiB (SQLite's default is
    /// 2000). The daemon's writer touches index pages all over the file;
    /// keeping them cached saves a read per page per commit.
    pub fn set_cache_size_kib(&self, kib: u32) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))?;
        Ok(())
    }

    /// Copies committed WAL frames back into the database file without
    /// blocking writers or readers (a PASSIVE checkpoint). Returns the
    /// frames in the WAL and how many are checkpointed.
    pub fn checkpoint(&self) -> Result<(i64, i64)> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?)
    }

    /// A database-wide setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(&self.conn, key)
    }

    /// Checks that the database answers a query (health checks).
    pub fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT count(*) FROM settings", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    /// A counter that changes whenever another connection commits (SQLite's
    /// `PRAGMA data_version`): a cheap way to notice other processes' writes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Writes a consistent copy of the database to `dest` (which must not
    /// exist), safe while other processes write.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            return Err(Error::invalid(format!(
                "{} already exists; choose a new file name",
                dest.display()
            )));
        }
        let dest_text = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path must be valid UTF-8"))?;
        self.conn.execute("VACUUM INTO ?1", [dest_text])?;
        Ok(())
    }
}

/// One write transaction. Obtained from [`Store::write`]; its operations
/// commit together, or none does if any failed.
pub struct WriteTx<'a> {
    conn: &'a Connection,
    actor: &'a Actor,
    now: Timestamp,
    currency: Currency,
    /// Set by `set_currency`, applied to the `Store` after commit.
    new_currency: Cell<Option<Currency>>,
    /// Inside a group job, whose own SAVEPOINT already undoes a failed
    /// operation: the per-operation SAVEPOINT is skipped (see `atomic`).
    in_job: bool,
    /// Set when an operation failed; `Store::write` then refuses to commit
    /// even if the caller swallowed the error (it has no per-operation
    /// SAVEPOINT to undo partial work).
    failed: Cell<bool>,
}

impl WriteTx<'_> {
    /// The currency of the database.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The time stamped on everything this transaction writes.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Runs one operation and remembers whether it failed.
    ///
    /// No SAVEPOINT is taken: whoever runs the transaction undoes a failed
    /// operation instead. `Store::write` rolls the whole transaction back
    /// and refuses to commit after any failure; `write_group` rolls the job
    /// back to its own SAVEPOINT. A SAVEPOINT per operation cost two extra
    /// statements on every write of the hot path.
    fn atomic<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = f();
        if result.is_err() && !self.in_job {
            self.failed.set(true);
        }
        result
    }
}

/// Runs a savepoint statement through the statement cache: they run a few
/// times per write, and parsing them each time showed in profiles.
fn savepoint(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Switches to WAL. Changing the journal mode needs a moment of exclusive
/// access, which SQLite does not wait for, so retry within the busy timeout
/// (many processes may open a fresh file at once).
fn set_wal(conn: &Connection, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") || mode.eq_ignore_ascii_case("memory") => {
                return Ok(());
            }
            Ok(mode) => {
                return Err(Error::Database(format!(
                    "cannot switch the database to WAL mode (got {mode})"
                )));
            }
            Err(e) => {
                let err = Error::from(e);
                if matches!(err, Error::Busy { .. }) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                return Err(err);
            }
        }
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
