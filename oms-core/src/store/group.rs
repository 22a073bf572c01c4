//! Group commit: many independent writes in one transaction.
//!
//! The daemon's writer thread takes every request queued at the moment and
//! commits them together: one `BEGIN IMMEDIATE`, one SAVEPOINT per job (a
//! job that fails rolls back alone), one `COMMIT` and so one fsync for the
//! whole group. A job learns whether it was committed only after
//! `write_group` returns; nothing may be acknowledged before that.

use std::cell::Cell;

use super::{Actor, Store, WriteTx, savepoint};
use crate::{Result, Timestamp};

/// One write of a group. A job runs inside its own SAVEPOINT, which is
/// what makes it atomic: when an operation of the job fails, the job must
/// report failure (return false) rather than go on, since the operation may
/// have written part of its work.
pub trait GroupJob: Send {
    /// Who makes the change.
    fn actor(&self) -> &Actor;
    /// Does the work inside the job's own SAVEPOINT. Returns false to roll
    /// back this job's writes (keeping its outcome to report after commit).
    fn run(&mut self, tx: &WriteTx<'_>) -> bool;
}

impl Store {
    /// Runs every job in one transaction and commits once. `Ok` means the
    /// jobs that returned true are durable; `Err` means nothing is.
    pub fn write_group<'j>(
        &mut self,
        jobs: impl IntoIterator<Item = &'j mut (dyn GroupJob + 'j)>,
    ) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(super::WRITE_BEGIN)?;
        let now = Timestamp::now();
        for job in jobs {
            let actor = job.actor().clone();
            let wtx = WriteTx {
                conn: &tx,
                actor: &actor,
                now,
                currency: self.currency,
                new_currency: Cell::new(None),
                in_job: true,
                failed: Cell::new(false),
            };
            savepoint(&tx, "SAVEPOINT job")?;
            if job.run(&wtx) {
                savepoint(&tx, "RELEASE job")?;
            } else {
                savepoint(&tx, "ROLLBACK TO job")?;
                savepoint(&tx, "RELEASE job")?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
