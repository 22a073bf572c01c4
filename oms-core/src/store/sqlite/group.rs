//! Group commit: many independent writes in one transaction.
//!
//! The daemon's writer thread takes every request queued at the moment and
//! commits them together: one `BEGIN IMMEDIATE`, one SAVEPOINT per job (a
//! job that fails rolls back alone), one `COMMIT` and so one fsync for the
//! whole group. A job learns whether it was committed only after
//! `write_group` returns; nothing may be acknowledged before that.

use std::cell::Cell;

use super::{Conn, Tx, savepoint};
use crate::store::GroupJob;
use crate::{Result, Timestamp};

impl Conn {
    /// Runs every job in one transaction and commits once. `Ok` means the
    /// jobs that returned true are durable; `Err` means nothing is.
    pub(super) fn write_group(&mut self, jobs: &mut [&mut dyn GroupJob]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(super::WRITE_BEGIN)?;
        let now = Timestamp::now();
        for job in jobs.iter_mut() {
            let actor = job.actor().clone();
            let wtx = Tx {
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
