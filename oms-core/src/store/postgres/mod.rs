//! The PostgreSQL backend: the store's traits over PostgreSQL ≥ 15, for
//! shops that run several daemons (and any number of commands) on one
//! database. Its SQL mirrors the SQLite backend's module by module.
//!
//! # How it keeps the backend obligations of `crate::store`
//!
//! **Writers take turns, in one order.** Every writing transaction's first
//! statement locks the one row of `oms_change_counter` (`SELECT ... FOR
//! UPDATE`) and holds it until it ends. Writers of every process therefore
//! run one after another, like SQLite's `BEGIN IMMEDIATE`: a transaction
//! never waits for another while holding row locks, so oms writers cannot
//! deadlock; a daemon's group commit amortises the turn over many requests.
//! A writer waits at most `lock_timeout` (10 s) for its turn, then fails
//! with "busy" and writes nothing.
//!
//! **The change log is gap-free in commit order.** PostgreSQL sequences
//! hand out numbers in call order, not commit order, so a reader that
//! resumes after the last seq it saw could skip a slower transaction's
//! smaller seq. Seqs here come from the counter row instead: the holder of
//! the row lock numbers its changes `last + 1, last + 2, ...` and writes the
//! new `last` before COMMIT. The next writer reads `last` only after the
//! previous one committed (the row lock is released after the commit is
//! visible to new snapshots), so seqs are handed out in commit order, and
//! any snapshot that sees seq N sees every seq below it. A rolled-back
//! transaction (or group job) gives its numbers back.
//!
//! **No oversell.** Stock changes through guarded `UPDATE ... WHERE
//! stock_on_hand - stock_reserved >= $q` with a row-count check, as on
//! SQLite; under READ COMMITTED PostgreSQL re-checks the `WHERE` against the
//! newest row version if another transaction changed it meanwhile, so the
//! guard holds even without the turn-taking above. Multi-line orders touch
//! their products in id order.
//!
//! **Wake-ups across processes.** The transaction that ends a turn with new
//! changes sends `NOTIFY oms_changes, '<last seq>'`, delivered at commit;
//! every serving daemon LISTENs on a connection of its own and publishes the
//! seq (a wake-up only: subscribers read the changes from the table).
//!
//! **Retries.** A deadlock or serialization failure (SQLSTATE 40P01,
//! 40001) can still come from a writer outside oms. Inside a group commit a
//! job that hits one is rolled back to its savepoint and run again (at most
//! `RETRIES` times), so nothing is applied twice.

/// Implements a read trait for both [`Conn`] and [`Tx`] with one body
/// (written against [`Access`]): a blanket impl over `Access`, as the
/// SQLite backend has, would collide with that backend's.
macro_rules! for_conn_and_tx {
    ($trait:path { $($body:tt)* }) => {
        impl $trait for $crate::store::postgres::Conn { $($body)* }
        impl $trait for $crate::store::postgres::Tx<'_> { $($body)* }
    };
}

mod changes;
mod copy;
mod customers;
mod engine;
mod group;
mod inventory;
mod notifications;
mod orders;
mod paging;
mod payments;
mod products;
mod schema;
mod session;
mod settings;
#[cfg(test)]
mod testdb;
mod users;
mod verify;

use std::cell::{Cell, RefCell, RefMut};
use std::path::Path;
use std::time::Duration;

pub(crate) use engine::Postgres;

use super::copy::{CopyProgress, CopySummary, CopyVisitor};
use super::{Actor, DriftReport, GroupJob, ReadConnection, SettingReads, WriteConnection, WriteTx};
use crate::{Currency, Error, Result, Timestamp};
use session::Session;

/// How long a writer waits for its turn (another writer's transaction)
/// before giving up with "busy" (as the SQLite busy timeout).
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a job that hit a deadlock or serialization failure runs.
const RETRIES: u32 = 3;

/// A connection: a reader, or the writer between its transactions.
pub(crate) struct Conn {
    session: RefCell<Session>,
    currency: Cell<Currency>,
}

/// What the read queries need: a session and the shop's currency. Both a
/// [`Conn`] and a [`Tx`] have them, so every read of `store::*Reads` is
/// written once (blanket impls in each module).
pub(crate) trait Access {
    fn session(&self) -> RefMut<'_, Session>;
    fn stored_currency(&self) -> Currency;
}

impl Access for Conn {
    fn session(&self) -> RefMut<'_, Session> {
        self.session.borrow_mut()
    }
    fn stored_currency(&self) -> Currency {
        self.currency.get()
    }
}

impl Access for Tx<'_> {
    fn session(&self) -> RefMut<'_, Session> {
        self.turn.session.borrow_mut()
    }
    fn stored_currency(&self) -> Currency {
        self.currency
    }
}

for_conn_and_tx!(SettingReads {
    fn currency(&self) -> Currency {
        self.stored_currency()
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        settings::get(&mut self.session(), key)
    }

    fn ping(&self) -> Result<()> {
        self.session().query_one("SELECT 1", &[])?;
        Ok(())
    }
});

impl Conn {
    /// A connection from a session: migrates when `migrate`, then reads the
    /// currency.
    fn new(mut session: Session, migrate: bool) -> Result<Conn> {
        if migrate {
            schema::migrate(&mut session)?;
        }
        let currency = settings::currency(&mut session)?;
        Ok(Conn {
            session: RefCell::new(session),
            currency: Cell::new(currency),
        })
    }

    /// Runs `f` in one turn (a transaction holding the counter row) and
    /// commits, or rolls back when `commit` is false or `f` failed. Work
    /// that hit a deadlock or serialization failure (only a writer outside
    /// oms can cause one) runs again, up to [`RETRIES`] times.
    fn run_turn(
        &self,
        actor: &Actor,
        commit: bool,
        f: &mut dyn FnMut(&WriteTx<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut attempt = 1;
        loop {
            self.session.borrow_mut().take_conflict();
            match self.run_turn_once(actor, commit, f) {
                Err(e) if attempt < RETRIES && self.session.borrow_mut().take_conflict() => {
                    tracing::debug!(error = %e, attempt, "write conflicted; running it again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn run_turn_once(
        &self,
        actor: &Actor,
        commit: bool,
        f: &mut dyn FnMut(&WriteTx<'_>) -> Result<()>,
    ) -> Result<()> {
        let turn = Turn::begin(&self.session)?;
        let tx = Tx {
            turn: &turn,
            actor,
            now: Timestamp::now(),
            currency: self.currency.get(),
            new_currency: Cell::new(None),
            in_job: false,
            failed: Cell::new(false),
        };
        let result = f(&tx).and_then(|()| {
            if tx.failed.get() {
                Err(Error::Database(
                    "an operation failed inside the transaction and its error was ignored; nothing was written".into(),
                ))
            } else {
                Ok(())
            }
        });
        let new_currency = tx.new_currency.get();
        match result {
            Ok(()) if commit => {
                turn.commit()?;
                if let Some(currency) = new_currency {
                    self.currency.set(currency);
                }
                Ok(())
            }
            Ok(()) => turn.rollback(),
            Err(e) => {
                let _ = turn.rollback();
                Err(e)
            }
        }
    }
}

impl ReadConnection for Conn {
    fn verify(&self) -> Result<DriftReport> {
        verify::verify(&mut self.session())
    }

    /// A SQLite file of the same shop (DESIGN §10: a backup opens
    /// anywhere), written whole or not at all.
    fn backup(&self, dest: &Path, replace: bool) -> Result<()> {
        crate::store::new_file::write_new_file(dest, replace, |tmp| {
            let mut file = crate::store::sqlite::Conn::open(tmp)?;
            file.copy_in(&tmp.display().to_string(), self, &mut |_| {})?;
            Ok(())
        })
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
        self.run_turn(actor, commit, f)
    }

    fn group(&mut self, jobs: &mut [&mut dyn GroupJob]) -> Result<()> {
        group::run(self, jobs)
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

/// One writing transaction in progress: it holds the counter row, so it is
/// the only writer; changes it logs are numbered from the counter.
pub(crate) struct Turn<'s> {
    session: &'s RefCell<Session>,
    /// The counter's value when the turn began.
    first_seq: i64,
    /// The last seq handed out in this turn.
    last_seq: Cell<i64>,
}

/// Whether writers take turns on the counter row (the negative control
/// `broken-pg-plain-sequence` numbers changes from a plain sequence instead).
const TAKE_TURNS: bool = !crate::controls::PG_PLAIN_SEQUENCE;

impl<'s> Turn<'s> {
    /// Begins a transaction and takes the counter row.
    fn begin(session: &'s RefCell<Session>) -> Result<Turn<'s>> {
        let mut s = session.borrow_mut();
        s.batch("BEGIN")?;
        let taken = if TAKE_TURNS {
            s.query_one("SELECT last FROM oms_change_counter FOR UPDATE", &[])
                .map(|row| row.get::<_, i64>(0))
        } else {
            s.batch("CREATE SEQUENCE IF NOT EXISTS oms_plain_seq")
                .map(|()| 0)
        };
        let last = match taken {
            Ok(last) => last,
            Err(e) => {
                let _ = s.batch("ROLLBACK");
                return Err(e);
            }
        };
        drop(s);
        Ok(Turn {
            session,
            first_seq: last,
            last_seq: Cell::new(last),
        })
    }

    /// The next seq of this turn.
    fn next_seq(&self, s: &mut Session) -> Result<i64> {
        if !TAKE_TURNS {
            return Ok(s
                .query_one("SELECT nextval('oms_plain_seq')", &[])?
                .get::<_, i64>(0));
        }
        let next = self.last_seq.get() + 1;
        self.last_seq.set(next);
        Ok(next)
    }

    /// Where the numbering stands (a savepoint remembers it).
    fn mark(&self) -> i64 {
        self.last_seq.get()
    }

    /// Gives back the numbers handed out since `mark` (the work that logged
    /// them was rolled back to a savepoint).
    fn rewind(&self, mark: i64) {
        self.last_seq.set(mark);
    }

    /// Records the counter and the wake-up, and commits.
    fn commit(self) -> Result<()> {
        let mut s = self.session.borrow_mut();
        let last = self.last_seq.get();
        let result = (|| -> Result<()> {
            if !TAKE_TURNS {
                s.execute(
                    "SELECT pg_notify('oms_changes', (SELECT last_value FROM oms_plain_seq)::text)",
                    &[],
                )?;
            } else if last != self.first_seq {
                s.execute("UPDATE oms_change_counter SET last = $1", &[&last])?;
                s.execute("SELECT pg_notify('oms_changes', $1)", &[&last.to_string()])?;
            }
            s.batch("COMMIT")
        })();
        if result.is_err() {
            let _ = s.batch("ROLLBACK");
        }
        result
    }

    fn rollback(self) -> Result<()> {
        self.session.borrow_mut().batch("ROLLBACK")
    }
}

/// One write transaction: the PostgreSQL implementation of [`WriteTx`].
/// Its operations commit together, or none does if any failed.
pub(crate) struct Tx<'a> {
    turn: &'a Turn<'a>,
    actor: &'a Actor,
    now: Timestamp,
    currency: Currency,
    /// Set by `set_currency`, applied to the `Conn` after commit.
    new_currency: Cell<Option<Currency>>,
    /// Inside a group job, whose own savepoint undoes a failed operation.
    in_job: bool,
    /// Set when an operation failed; a single transaction then refuses to
    /// commit even if the caller swallowed the error.
    failed: Cell<bool>,
}

impl Tx<'_> {
    /// Runs one operation and remembers whether it failed (as the SQLite
    /// backend's). PostgreSQL also aborts a transaction at its first failed
    /// statement: a job that swallowed such a failure cannot release its
    /// savepoint, and its whole group then commits nothing.
    fn atomic<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let result = f();
        if result.is_err() && !self.in_job {
            self.failed.set(true);
        }
        result
    }
}

/// Milliseconds in a `bigint` row value; checked conversions at the edge.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
