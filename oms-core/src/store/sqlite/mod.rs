//! The SQLite backend: every SQL statement of oms, split by aggregate, and
//! the connection types that implement the traits of [`crate::store`].
//!
//! Locking: every write runs inside a `BEGIN IMMEDIATE` transaction
//! ([`Conn::transaction`] or [`Conn::group`]), so the write lock is taken up
//! front and two writers (a daemon and a CLI process) queue on the busy
//! timeout instead of failing on a lock upgrade. A failed operation may have
//! written part of its work, so nothing after it is committed: a single
//! transaction rolls back whole (even when the caller ignored the error),
//! and a group commit rolls the failed job back to its own SAVEPOINT (see
//! `group`). The engine's private parts (checkpoints, `data_version`) live
//! in `engine`.

mod changes;
mod copy;
mod customers;
pub(crate) mod engine;
mod group;
mod inventory;
mod notifications;
mod orders;
mod paging;
mod payments;
mod products;
mod schema;
mod settings;
mod users;
mod verify;

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::copy::{CopyProgress, CopySummary, CopyVisitor};
use super::new_file::write_new_file;
use super::{Actor, DriftReport, GroupJob, ReadConnection, SettingReads, WriteConnection, WriteTx};
use crate::search::like_pattern;
use crate::{Currency, Error, Result, Timestamp};

pub(crate) use schema::SCHEMA_VERSION;

/// The size the WAL file returns to once no reader needs its old frames:
/// at the next commit (`journal_size_limit`), or, when nothing commits, by
/// the daemon's checkpointer ([`Conn::truncate_wal`]).
pub(crate) const WAL_SIZE_LIMIT: u64 = 32 * 1024 * 1024;

/// How long a writer waits for another process's write lock before giving
/// up with [`Error::Busy`].
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How every write transaction begins: IMMEDIATE takes the write lock up
/// front, so a writer waits on the busy timeout instead of failing when it
/// upgrades a read snapshot that another process has since written past.
/// The negative control `broken-deferred-begin` makes it DEFERRED, so
/// concurrent writers fail with "busy".
const WRITE_BEGIN: TransactionBehavior = if crate::controls::DEFERRED_BEGIN {
    TransactionBehavior::Deferred
} else {
    TransactionBehavior::Immediate
};

/// Engine errors as oms errors: a busy lock, a full disk, or a database
/// error (a bug or a broken file). Hidden: `?` needs it inside this module
/// tree; nothing outside it ever sees an engine error.
#[doc(hidden)]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        {
            return Error::Busy {
                timeout_ms: BUSY_TIMEOUT.as_millis() as u64,
            };
        }
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == ErrorCode::DiskFull
        {
            return Error::StorageFull;
        }
        Error::Database(e.to_string())
    }
}

/// How to open a database.
#[derive(Debug, Clone)]
pub(crate) struct Options {
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

/// A connection to an oms database: a reader, or the writer between its
/// transactions.
pub(crate) struct Conn {
    conn: Connection,
    currency: Currency,
}

/// What the read queries need of a connection: the SQL connection and the
/// shop's currency. Both a [`Conn`] and a [`Tx`] have them, so every read
/// of `store::*Reads` is written once (blanket impls in each module) and
/// answers outside and inside a write transaction alike.
pub(crate) trait Access {
    fn sql(&self) -> &Connection;
    fn stored_currency(&self) -> Currency;
}

impl Access for Conn {
    fn sql(&self) -> &Connection {
        &self.conn
    }
    fn stored_currency(&self) -> Currency {
        self.currency
    }
}

impl Access for Tx<'_> {
    fn sql(&self) -> &Connection {
        self.conn
    }
    fn stored_currency(&self) -> Currency {
        self.currency
    }
}

impl<S: Access + ?Sized> SettingReads for S {
    fn currency(&self) -> Currency {
        self.stored_currency()
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(self.sql(), key)
    }

    fn ping(&self) -> Result<()> {
        self.sql()
            .query_row("SELECT count(*) FROM settings", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

impl ReadConnection for Conn {
    fn verify(&self) -> Result<DriftReport> {
        verify::verify(&self.conn)
    }

    fn backup(&self, dest: &Path, replace: bool) -> Result<()> {
        Conn::backup(self, dest, replace)
    }

    fn copy_out(&self, visitor: &mut dyn CopyVisitor) -> Result<()> {
        Conn::copy_out(self, visitor)
    }
}

impl WriteConnection for Conn {
    fn reader(&self) -> &(dyn ReadConnection + 'static) {
        self
    }

    fn transaction(
        &mut self,
        actor: &Actor,
        commit: bool,
        f: &mut dyn FnMut(&WriteTx<'_>) -> Result<()>,
    ) -> Result<()> {
        self.write_inner(actor, commit, f)
    }

    fn group(&mut self, jobs: &mut [&mut dyn GroupJob]) -> Result<()> {
        self.write_group(jobs)
    }

    fn copy_in(
        &mut self,
        target: &str,
        source: &dyn ReadConnection,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<CopySummary> {
        Conn::copy_in(self, target, source, progress)
    }
}

impl Conn {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Conn> {
        Conn::open_with(path, &Options::default())
    }

    /// Opens with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: &Options) -> Result<Conn> {
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
        Conn::setup(conn, options)
    }

    /// A private in-memory database (tests, fuzzing).
    pub fn open_in_memory() -> Result<Conn> {
        Conn::setup(Connection::open_in_memory()?, &Options::default())
    }

    fn setup(mut conn: Connection, options: &Options) -> Result<Conn> {
        conn.busy_timeout(options.busy_timeout)?;
        let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
        tracing::debug!(sqlite_version = %version, "opened database");
        if !options.read_only {
            set_wal(&conn, options.busy_timeout)?;
            // When a commit starts the WAL over (everything in it has been
            // copied back and no reader still needs it), SQLite truncates
            // the file to this size, so a WAL that grew while a long reader
            // pinned it shrinks again at the next commit.
            conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT as i64)?;
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
        register_functions(&conn)?;
        if !options.read_only {
            schema::migrate(&mut conn)?;
        }
        let currency = settings::currency(&conn)?;
        Ok(Conn { conn, currency })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it (or
    /// rolls back: a dry run); an error rolls everything back.
    fn write_inner(
        &mut self,
        actor: &Actor,
        commit: bool,
        f: &mut dyn FnMut(&WriteTx<'_>) -> Result<()>,
    ) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(WRITE_BEGIN)?;
        let wtx = Tx {
            conn: &tx,
            actor,
            now: Timestamp::now(),
            currency: self.currency,
            new_currency: Cell::new(None),
            in_job: false,
            failed: Cell::new(false),
        };
        f(&wtx)?;
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
        Ok(())
    }

    /// Opens an existing database read-only (the daemon's read pool).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Conn> {
        Conn::open_with(
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

    /// The size in bytes of the WAL file (0 when there is none).
    pub fn wal_bytes(&self) -> Result<u64> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(0);
        };
        match std::fs::metadata(format!("{path}-wal")) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("cannot read the size of the WAL file", e)),
        }
    }

    /// Copies the whole WAL back and truncates it to zero bytes (a
    /// TRUNCATE checkpoint). It waits for readers and keeps new writers out
    /// while it waits, up to this connection's busy timeout, so call it only
    /// when nothing pins the WAL (after a PASSIVE [`Conn::checkpoint`]
    /// copied every frame) and on a connection with a short timeout.
    /// Returns false when a reader or writer was in the way.
    pub fn truncate_wal(&self) -> Result<bool> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// A counter that changes whenever another connection commits (SQLite's
    /// `PRAGMA data_version`): a cheap way to notice other processes' writes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    /// Writes a consistent copy of the database to `dest`, safe while other
    /// processes write, never half-written (see
    /// [`crate::store::new_file::write_new_file`]): `VACUUM INTO` a
    /// temporary file beside `dest`, which gets the database file's
    /// permissions (it holds password hashes and the JWT secret) before it
    /// takes `dest`'s name.
    pub fn backup(&self, dest: &Path, replace: bool) -> Result<()> {
        self.backup_with(dest, replace, |_| Ok(()))
    }

    /// [`Conn::backup`] with a hook run on the finished temporary file just
    /// before it takes `dest`'s name (tests inject failures there).
    fn backup_with(
        &self,
        dest: &Path,
        replace: bool,
        before_publish: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<()> {
        write_new_file(dest, replace, |tmp| {
            let tmp_text = tmp
                .to_str()
                .ok_or_else(|| Error::invalid("backup path must be valid UTF-8"))?;
            self.conn.execute("VACUUM INTO ?1", [tmp_text])?;
            let io = |what: &str, e| Error::io(format!("backup: cannot {what}"), e);
            if let Some(source) = self.conn.path().filter(|p| !p.is_empty())
                && let Ok(meta) = std::fs::metadata(source)
            {
                std::fs::set_permissions(tmp, meta.permissions())
                    .map_err(|e| io("set the copy's permissions", e))?;
            }
            before_publish(tmp).map_err(|e| io("finish the copy", e))
        })
    }
}

/// One write transaction: the SQLite implementation of [`WriteTx`]. Its
/// operations commit together, or none does if any failed.
pub(crate) struct Tx<'a> {
    conn: &'a Connection,
    actor: &'a Actor,
    now: Timestamp,
    currency: Currency,
    /// Set by `set_currency`, applied to the `Conn` after commit.
    new_currency: Cell<Option<Currency>>,
    /// Inside a group job, whose own SAVEPOINT already undoes a failed
    /// operation: the per-operation SAVEPOINT is skipped (see `atomic`).
    in_job: bool,
    /// Set when an operation failed; `Conn::write` then refuses to commit
    /// even if the caller swallowed the error (it has no per-operation
    /// SAVEPOINT to undo partial work).
    failed: Cell<bool>,
}

impl Tx<'_> {
    /// Runs one operation and remembers whether it failed.
    ///
    /// No SAVEPOINT is taken: whoever runs the transaction undoes a failed
    /// operation instead. `Conn::write` rolls the whole transaction back
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

/// SQL functions of oms: `oms_fold(text)` is [`crate::search::fold`], so
/// a search compares `oms_fold(column) LIKE` a folded pattern and finds
/// "Zoë" for `ZOË` (SQLite's own `LIKE` folds only ASCII).
fn register_functions(conn: &Connection) -> Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "oms_fold",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(bytes) => {
                    Some(crate::search::fold(&String::from_utf8_lossy(bytes)))
                }
                _ => None,
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod backup_tests {
    use super::*;
    use crate::prelude::*;
    use crate::{CustomerRef, NewCustomer};

    /// A database with one customer, and an empty directory for backups.
    fn fixture() -> (tempfile::TempDir, Conn, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Conn::open(dir.path().join("shop.db")).expect("open");
        store
            .transaction(&Actor::cli(), true, &mut |tx| {
                tx.add_customer(&NewCustomer {
                    name: "Ada".into(),
                    email: "ada@example.com".into(),
                    phone: None,
                })?;
                Ok(())
            })
            .expect("add customer");
        (dir, store, tempfile::tempdir().expect("backup dir"))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn has_ada(path: &Path) -> bool {
        let copy = Conn::open(path).expect("open the backup");
        copy.customer(&CustomerRef::Email("ada@example.com".into()))
            .is_ok()
    }

    #[test]
    fn backup_writes_a_complete_copy_and_leaves_no_temporary_file() {
        let (_db, store, out) = fixture();
        let dest = out.path().join("nightly.db");
        store.backup(&dest, false).expect("backup");
        assert_eq!(names(out.path()), ["nightly.db"]);
        assert!(has_ada(&dest));
    }

    #[test]
    fn backup_refuses_an_existing_file_unless_told_to_replace_it() {
        let (_db, store, out) = fixture();
        let dest = out.path().join("nightly.db");
        std::fs::write(&dest, b"last night's backup").expect("old backup");
        let err = store.backup(&dest, false).expect_err("refused");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(&dest).expect("read"), b"last night's backup");
        assert_eq!(names(out.path()), ["nightly.db"]);

        store.backup(&dest, true).expect("replace");
        assert_eq!(names(out.path()), ["nightly.db"]);
        assert!(has_ada(&dest), "the old file was replaced by the new copy");
    }

    #[test]
    fn a_failed_replacement_keeps_the_old_file_and_removes_the_temporary_one() {
        let (_db, store, out) = fixture();
        let dest = out.path().join("nightly.db");
        std::fs::write(&dest, b"last night's backup").expect("old backup");
        let mut seen_tmp = None;
        let err = store
            .backup_with(&dest, true, |tmp| {
                // The new copy is complete before it takes the name, and
                // until then a reader of `dest` still sees the old one.
                assert!(has_ada(tmp), "the temporary copy is complete");
                assert_eq!(std::fs::read(&dest)?, b"last night's backup");
                assert_eq!(
                    tmp.parent(),
                    dest.parent(),
                    "same directory: rename is atomic"
                );
                seen_tmp = Some(tmp.to_path_buf());
                Err(std::io::Error::other("disk on fire"))
            })
            .expect_err("the injected failure is reported");
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(std::fs::read(&dest).expect("read"), b"last night's backup");
        let tmp = seen_tmp.expect("the hook ran");
        assert!(!tmp.exists(), "temporary file removed: {}", tmp.display());
        assert_eq!(names(out.path()), ["nightly.db"]);
    }

    #[test]
    fn a_directory_is_not_a_backup_file() {
        let (_db, store, out) = fixture();
        let err = store.backup(out.path(), true).expect_err("refused");
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert!(names(out.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn the_copy_has_the_database_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let (db, store, out) = fixture();
        let source = db.path().join("shop.db");
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let dest = out.path().join("nightly.db");
        store.backup(&dest, false).expect("backup");
        let mode = std::fs::metadata(&dest).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
