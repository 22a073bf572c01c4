//! The bridge between async handlers and synchronous SQLite.
//!
//! Writes: one dedicated thread owns the write connection. It takes every
//! job queued at the moment (up to `max_batch`) and commits them together
//! with [`Store::write_group`]: one transaction, a SAVEPOINT per job, one
//! fsync. A job's answer is sent only after the commit returned, so an
//! acknowledged write is durable. The queue is bounded: when it is full,
//! handlers wait (back-pressure) instead of piling up memory.
//!
//! Reads: a small pool of read-only connections used from `spawn_blocking`,
//! never from a runtime thread. No read transaction outlives one call.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use oms_core::{Actor, Error, GroupJob, Result, Seq, Store, WriteTx};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::feed::Feed;
use crate::metrics::Metrics;

/// A write waiting for the writer thread.
trait Job: GroupJob {
    /// Sends the outcome once the group's commit is known.
    fn finish(self: Box<Self>, commit: std::result::Result<(), &Error>);
    /// Whether the job itself failed because the disk is full.
    fn storage_full(&self) -> bool;
}

struct TypedJob<T, F> {
    actor: Actor,
    work: Option<F>,
    outcome: Option<Result<T>>,
    /// Taken when the answer is sent (once, after the commit).
    reply: Option<oneshot::Sender<Result<T>>>,
}

impl<T, F> GroupJob for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&WriteTx<'_>) -> Result<T> + Send,
{
    fn actor(&self) -> &Actor {
        &self.actor
    }

    fn run(&mut self, tx: &WriteTx<'_>) -> bool {
        let outcome = match self.work.take() {
            Some(work) => work(tx),
            None => Err(Error::Database("write job ran twice".into())),
        };
        let ok = outcome.is_ok();
        // NEGATIVE CONTROL, only in a `--features broken-ack-before-commit`
        // build (docs/reliability.md): answers before the group's COMMIT.
        #[cfg(feature = "broken-ack-before-commit")]
        if let Some(reply) = self.reply.take() {
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
    F: FnOnce(&WriteTx<'_>) -> Result<T> + Send,
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
        other => Error::Database(format!("commit failed: {other}")),
    }
}

/// Most changes published with one commit; a larger burst (another
/// process's import) is published as a seq only, and waiters query.
const MAX_PUBLISHED: u64 = 4096;

/// Page cache of the write connection: the indexes a placement touches
/// stay in memory (SQLite's default is 2 MiB); small enough that the
/// daemon stays lean with thousands of idle connections.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// Handles to the writer thread and the read pool.
pub struct Db {
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
    health: Arc<WriteHealth>,
}

/// Why writes are failing now, and since when.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    pub cause: String,
    pub since: oms_core::Timestamp,
    /// Writes refused since then.
    pub refused: u64,
}

/// Whether the writer's commits are failing: set by the writer thread,
/// read by `/healthz`. An episode of failures is logged once when it
/// starts and once when a commit succeeds again, not once per request.
#[derive(Default)]
struct WriteHealth {
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
                    since: oms_core::Timestamp::now(),
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

    fn current(&self) -> Option<WriteFailure> {
        self.failing.lock().ok().and_then(|f| f.clone())
    }
}

struct ReadPool {
    conns: Mutex<Vec<Store>>,
    permits: Semaphore,
}

impl ReadPool {
    /// Runs `query` on a connection taken from the pool and puts it back.
    /// The caller holds one of `permits`, so a connection is free.
    fn run<T>(&self, query: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let store = self
            .conns
            .lock()
            .ok()
            .and_then(|mut c| c.pop())
            .ok_or_else(|| Error::Database("read pool is empty".into()))?;
        let result = query(&store);
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(store);
        }
        result
    }
}

impl Db {
    /// Opens the write connection (migrating the schema) and `readers`
    /// read-only connections, and starts the writer thread.
    pub fn open(
        path: &std::path::Path,
        readers: usize,
        max_batch: usize,
        feed: Arc<Feed>,
        metrics: Arc<Metrics>,
    ) -> Result<Db> {
        let store = Store::open(path)?;
        store.set_cache_size_kib(WRITER_CACHE_KIB)?;
        // A second connection copies the WAL back into the database file in
        // the background (see `checkpoint_loop`), so the checkpoint SQLite
        // runs after a commit once the WAL passes 1000 pages finds little
        // left to copy and the commits clients wait for stay short.
        // A short busy timeout: its TRUNCATE checkpoints (see
        // `checkpoint_loop`) may keep the writer waiting at most this long.
        let checkpointer = Store::open_with(
            path,
            &oms_core::Options {
                busy_timeout: CHECKPOINT_BUSY_TIMEOUT,
                ..oms_core::Options::default()
            },
        )?;
        let mut conns = Vec::with_capacity(readers);
        for _ in 0..readers.max(1) {
            conns.push(Store::open_read_only(path)?);
        }
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(max_batch.max(1) * 8);
        let health = Arc::new(WriteHealth::default());
        let writer_health = Arc::clone(&health);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpoint_stop = Arc::clone(&stop);
        let writer = std::thread::Builder::new()
            .name("oms-writer".into())
            .spawn(move || {
                writer_loop(store, rx, max_batch.max(1), &feed, &metrics, &writer_health);
                stop.store(true, std::sync::atomic::Ordering::Release);
            })
            .map_err(|e| Error::io("cannot start the writer thread", e))?;
        std::thread::Builder::new()
            .name("oms-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &checkpoint_stop))
            .map_err(|e| Error::io("cannot start the checkpoint thread", e))?;
        Ok(Db {
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            readers: Arc::new(ReadPool {
                permits: Semaphore::new(conns.len()),
                conns: Mutex::new(conns),
            }),
            health,
        })
    }

    /// Why writes are failing now (the disk is full, ...), or `None` while
    /// commits succeed.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.health.current()
    }

    /// Runs `work` in the next group commit and answers after the commit.
    pub async fn write<T, F>(&self, actor: Actor, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(TypedJob {
            actor,
            work: Some(work),
            outcome: None,
            reply: Some(reply),
        });
        let sender = self
            .jobs
            .lock()
            .map_err(|_| Error::Database("writer queue poisoned".into()))?
            .clone()
            .ok_or_else(|| Error::Database("the server is shutting down".into()))?;
        sender
            .send(job)
            .await
            .map_err(|_| Error::Database("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Database("the writer dropped a job".into()))?
    }

    /// Writes waiting for the writer thread now: more than zero means it
    /// is busy (the mail dispatcher then paces itself).
    pub fn queued(&self) -> usize {
        self.jobs
            .lock()
            .ok()
            .and_then(|jobs| {
                jobs.as_ref()
                    .map(|sender| sender.max_capacity() - sender.capacity())
            })
            .unwrap_or(0)
    }

    /// Runs `query` on a read-only connection off the runtime threads.
    pub async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let _permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Database("read pool closed".into()))?;
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || pool.run(query))
            .await
            .map_err(|e| Error::Database(format!("read task failed: {e}")))?
    }

    /// Runs a single-row lookup (one order, one product, a ping) on the
    /// calling runtime thread when a reader is free, and like [`Db::read`]
    /// otherwise. Such a lookup reads a handful of pages, mostly cached:
    /// less work than handing it to the blocking pool and back. WAL readers
    /// never wait for the writer. Anything that can read many rows (lists,
    /// exports) goes through [`Db::read`].
    pub async fn lookup<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        match self.readers.permits.try_acquire() {
            Ok(_permit) => self.readers.run(query),
            Err(_) => self.read(query).await,
        }
    }

    /// Stops taking writes, lets the writer commit what is queued, and
    /// waits for it.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// How long a TRUNCATE checkpoint may wait for readers and writers.
const CHECKPOINT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(50);

/// Copies the WAL back into the database file every few milliseconds, off
/// the writer's path. A PASSIVE checkpoint never blocks the writer. It
/// cannot reset the WAL while the writer keeps appending; the writer's own
/// automatic checkpoint does that, cheaply, because little is left to copy,
/// and its next commit truncates a WAL larger than `WAL_SIZE_LIMIT`.
///
/// A reader that holds a snapshot (an analyst's `sqlite3` shell, a backup)
/// pins the WAL: it grows with every commit meanwhile. Once the reader has
/// let go and the writer is idle (no frame appended since the last look),
/// nothing would shrink it, so this loop truncates it.
fn checkpoint_loop(store: &Store, stop: &std::sync::atomic::AtomicBool) {
    let mut previous_frames = -1;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (frames, copied) = match store.checkpoint() {
            Ok(counts) => counts,
            Err(e) => {
                tracing::debug!(error = %e, "checkpoint skipped");
                continue;
            }
        };
        let idle = frames == previous_frames;
        previous_frames = frames;
        if idle
            && frames > 0
            && copied == frames
            && store
                .wal_bytes()
                .is_ok_and(|b| b > oms_core::WAL_SIZE_LIMIT)
        {
            match store.truncate_wal() {
                Ok(true) => tracing::info!("the WAL had grown past its limit and was truncated"),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "WAL truncation skipped"),
            }
        }
    }
    // The writer has stopped: copy everything back and leave an empty WAL.
    let _ = store.checkpoint();
    let _ = store.truncate_wal();
}

fn writer_loop(
    mut store: Store,
    mut jobs: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    feed: &Feed,
    metrics: &Metrics,
    health: &WriteHealth,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    let mut last_seq = store.last_seq().unwrap_or(Seq(0));
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = store.write_group(batch.iter_mut().map(|job| {
            let job: &mut dyn GroupJob = job.as_mut();
            job
        }));
        metrics.observe_batch(batch.len());
        match &result {
            // Publish after the commit and before answering: a client that
            // got its answer finds its change in the feed.
            // The new changes go with it, so woken waiters need no query.
            Ok(()) => match store.changes_after(last_seq, MAX_PUBLISHED, None) {
                Ok(recent) => {
                    if let Some(newest) = recent.last().map(|c| c.seq) {
                        if recent.len() as u64 >= MAX_PUBLISHED {
                            feed.publish(newest);
                        } else {
                            feed.publish_changes(newest, last_seq, Arc::new(recent));
                        }
                        last_seq = newest;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the new changes"),
            },
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
            metrics.write_failed("storage_full", full_jobs);
            health.failed("the disk holding the database is full", full_jobs);
        } else if result.is_ok() {
            health.succeeded();
        }
        for job in batch.drain(..) {
            job.finish(result.as_ref().map(|_| ()));
        }
    }
    tracing::debug!("writer stopped");
}
