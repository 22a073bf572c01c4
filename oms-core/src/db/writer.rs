//! The writer thread of a serving [`crate::Db`]: group commit.
//!
//! One dedicated thread owns the write connection. It takes every job
//! queued at the moment (up to `max_batch`) and commits them together
//! ([`WriteConnection::group`]: one transaction, each job undone alone if
//! it fails, one COMMIT and so one fsync for the whole group). A job's
//! answer is sent only after the commit returned, so an acknowledged write
//! is durable; the feed is published after the commit and before the
//! answers, so a client that got its answer finds its change in the feed.
//! The queue is bounded: when it is full, writers wait (back-pressure)
//! instead of piling up memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::feed::Feed;
use crate::store::{GroupJob, WriteConnection, WriteTx};
use crate::{Actor, Error, Result, Seq, Timestamp};

/// A write waiting for the writer thread.
pub(super) trait Job: GroupJob {
    /// Sends the outcome once the group's commit is known.
    fn finish(self: Box<Self>, commit: std::result::Result<(), &Error>);
    /// Whether the job itself failed because the storage is full.
    fn storage_full(&self) -> bool;
}

/// A job with a typed answer, sent over a oneshot channel. Its work may
/// run more than once: a backend that must retry a job (a deadlock caused
/// by another writer) runs it again after undoing its rollback scope, so
/// the last run is the one that counts.
pub(super) struct TypedJob<T, F> {
    actor: Actor,
    work: F,
    outcome: Option<Result<T>>,
    /// Taken when the answer is sent (once, after the commit).
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T, F> TypedJob<T, F> {
    pub(super) fn new(actor: Actor, work: F) -> (TypedJob<T, F>, oneshot::Receiver<Result<T>>) {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            actor,
            work,
            outcome: None,
            reply: Some(reply),
        };
        (job, answer)
    }
}

impl<T, F> GroupJob for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&WriteTx<'_>) -> Result<T> + Send,
{
    fn actor(&self) -> &Actor {
        &self.actor
    }

    fn run(&mut self, tx: &WriteTx<'_>) -> bool {
        let outcome = (self.work)(tx);
        let ok = outcome.is_ok();
        if crate::controls::ACK_BEFORE_COMMIT
            && let Some(reply) = self.reply.take()
        {
            let _ = reply.send(outcome);
            return ok;
        }
        self.outcome = Some(outcome);
        ok
    }
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&WriteTx<'_>) -> Result<T> + Send,
{
    fn finish(self: Box<Self>, commit: std::result::Result<(), &Error>) {
        let result = match commit {
            Ok(()) => self
                .outcome
                .unwrap_or_else(|| Err(Error::Database("write job never ran".into()))),
            Err(e) => Err(copy_error(e)),
        };
        // The requester may have gone away; the write stands either way.
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    fn storage_full(&self) -> bool {
        matches!(self.outcome, Some(Err(Error::StorageFull)))
    }
}

/// A commit failure reported to every job of the group.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Busy { timeout_ms } => Error::Busy {
            timeout_ms: *timeout_ms,
        },
        Error::StorageFull => Error::StorageFull,
        Error::Unavailable(why) => Error::Unavailable(why.clone()),
        other => Error::Database(format!("commit failed: {other}")),
    }
}

/// Most changes published with one commit; a larger burst (another
/// process's import) is published as a seq only, and subscribers query.
const MAX_PUBLISHED: u64 = 4096;

/// Told about every group commit, for metrics: how many writes it carried,
/// and how many were refused for a cause the operator must fix.
pub trait WriteObserver: Send + Sync {
    /// A group of `jobs` writes was committed (or failed as a whole).
    fn group(&self, jobs: usize);
    /// `jobs` writes were refused because of `cause` (`storage_full`).
    fn refused(&self, cause: &'static str, jobs: usize);
}

/// Why writes are failing now, and since when.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    pub cause: String,
    pub since: Timestamp,
    /// Writes refused since then.
    pub refused: u64,
}

/// Whether the writer's commits are failing: set by the writer thread,
/// read by health checks. An episode of failures is logged once when it
/// starts and once when a commit succeeds again, not once per request.
#[derive(Default)]
pub(super) struct WriteHealth {
    failing: Mutex<Option<WriteFailure>>,
}

impl WriteHealth {
    fn failed(&self, cause: &str, jobs: usize) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match failing.as_mut() {
            Some(episode) => episode.refused += jobs as u64,
            None => {
                tracing::error!(
                    cause,
                    "writes are failing; every write is refused until this is fixed"
                );
                *failing = Some(WriteFailure {
                    cause: cause.to_string(),
                    since: Timestamp::now(),
                    refused: jobs as u64,
                });
            }
        }
    }

    fn succeeded(&self) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        if let Some(episode) = failing.take() {
            tracing::warn!(
                cause = %episode.cause,
                since = %episode.since,
                refused = episode.refused,
                "writes succeed again"
            );
        }
    }

    pub(super) fn current(&self) -> Option<WriteFailure> {
        self.failing.lock().ok().and_then(|f| f.clone())
    }
}

/// What the writer thread needs besides its connection and queue.
pub(super) struct WriterContext {
    pub feed: Arc<Feed>,
    pub health: Arc<WriteHealth>,
    pub observer: Option<Arc<dyn WriteObserver>>,
    /// Jobs sent and not yet taken into a group.
    pub queued: Arc<AtomicUsize>,
    pub max_batch: usize,
}

/// The writer thread's loop: until every sender is gone (the handle was
/// closed), take what is queued, commit it as one group, publish, answer.
pub(super) fn writer_loop(
    mut conn: Box<dyn WriteConnection>,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    cx: &WriterContext,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(cx.max_batch);
    let mut last_seq = conn.reader().last_seq().unwrap_or(Seq(0));
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < cx.max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        cx.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let result = {
            let mut group: Vec<&mut dyn GroupJob> = batch
                .iter_mut()
                .map(|job| {
                    let job: &mut dyn GroupJob = job.as_mut();
                    job
                })
                .collect();
            conn.group(&mut group)
        };
        if let Some(observer) = &cx.observer {
            observer.group(batch.len());
        }
        match &result {
            Ok(()) => last_seq = publish(conn.as_ref(), &cx.feed, last_seq),
            Err(Error::StorageFull) => {}
            Err(e) => tracing::error!(error = %e, jobs = batch.len(), "group commit failed"),
        }
        // A full disk fails the commit, or the jobs whose statements found
        // no room: either way the writes are refused until space is freed.
        let full_jobs = match &result {
            Err(Error::StorageFull) => batch.len(),
            _ => batch.iter().filter(|job| job.storage_full()).count(),
        };
        if full_jobs > 0 {
            if let Some(observer) = &cx.observer {
                observer.refused("storage_full", full_jobs);
            }
            cx.health
                .failed("the disk holding the database is full", full_jobs);
        } else if result.is_ok() {
            cx.health.succeeded();
        }
        for job in batch.drain(..) {
            job.finish(result.as_ref().map(|_| ()));
        }
    }
    tracing::debug!("writer stopped");
}

/// Publishes what was committed since `last_seq` (this group's changes and
/// any other process's since the previous group) and returns the newest
/// seq. The changes go with the seq, so woken subscribers need no query.
fn publish(conn: &dyn WriteConnection, feed: &Feed, last_seq: Seq) -> Seq {
    match conn.reader().changes_after(last_seq, MAX_PUBLISHED, None) {
        Ok(recent) => match recent.last().map(|c| c.seq) {
            Some(newest) => {
                if recent.len() as u64 >= MAX_PUBLISHED {
                    feed.publish(newest);
                } else {
                    feed.publish_changes(newest, last_seq, Arc::new(recent));
                }
                newest
            }
            None => last_seq,
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the new changes");
            last_seq
        }
    }
}
