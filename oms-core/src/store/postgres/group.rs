//! Group commit, as the SQLite backend's: one turn (transaction) for every
//! queued job, a SAVEPOINT per job so a failed job rolls back alone, one
//! COMMIT for all. A job's savepoint is released with the next job's
//! SAVEPOINT statement, the last one by COMMIT. A job whose statements hit a deadlock or serialization
//! failure is rolled back to its savepoint and run again (at most
//! `RETRIES` times). The change numbers a rolled-back job took are given
//! back, so the log stays gap-free.

use std::cell::Cell;

use super::{Conn, RETRIES, Turn, Tx};
use crate::store::GroupJob;
use crate::{Result, Timestamp};

/// Runs every job in one transaction and commits once. `Ok` means the jobs
/// that returned true are durable; `Err` means nothing is.
pub(super) fn run(conn: &Conn, jobs: &mut [&mut dyn GroupJob]) -> Result<()> {
    let turn = Turn::begin(&conn.session)?;
    let result = run_jobs(conn, &turn, jobs);
    match result {
        Ok(()) => turn.commit(),
        Err(e) => {
            let _ = turn.rollback();
            Err(e)
        }
    }
}

fn run_jobs(conn: &Conn, turn: &Turn<'_>, jobs: &mut [&mut dyn GroupJob]) -> Result<()> {
    let now = Timestamp::now();
    // The savepoint of a job that succeeded is released together with the
    // next job's SAVEPOINT (one round trip instead of two), or by COMMIT.
    let mut released_later = false;
    for job in jobs.iter_mut() {
        let actor = job.actor().clone();
        let mut attempt = 1;
        loop {
            let mark = turn.mark();
            conn.session.borrow_mut().batch(if released_later {
                "RELEASE SAVEPOINT job; SAVEPOINT job"
            } else {
                "SAVEPOINT job"
            })?;
            released_later = false;
            conn.session.borrow_mut().take_conflict();
            let tx = Tx {
                turn,
                actor: &actor,
                now,
                currency: conn.currency.get(),
                new_currency: Cell::new(None),
                in_job: true,
                failed: Cell::new(false),
            };
            if job.run(&tx) {
                released_later = true;
                break;
            }
            conn.session
                .borrow_mut()
                .batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")?;
            turn.rewind(mark);
            let conflicted = conn.session.borrow_mut().take_conflict();
            if !(conflicted && attempt < RETRIES) {
                break;
            }
            tracing::debug!(attempt, "write conflicted; running it again");
            attempt += 1;
        }
    }
    Ok(())
}
