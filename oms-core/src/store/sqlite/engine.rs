//! The SQLite engine's private parts behind [`Backend`]: how connections
//! are opened for each role, the checkpointer that copies the WAL back into
//! the database file while a daemon serves, and the watcher that notices
//! other processes' commits through `PRAGMA data_version`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Conn, Options, WAL_SIZE_LIMIT};
use crate::db::Feed;
use crate::store::{Backend, ChangeReads, ReadConnection, WriteConnection, WriterRole};
use crate::{Error, Result};

/// Page cache of the daemon's write connection: the indexes a placement
/// touches stay in memory (SQLite's default is 2 MiB); small enough that
/// the daemon stays lean with thousands of idle connections.
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// Page cache of a bulk write (an import): it touches every index page of
/// its tables; a larger cache keeps them in memory instead of re-reading
/// them from the file.
const BULK_CACHE_KIB: u32 = 64 * 1024;

/// How long the checkpointer's TRUNCATE checkpoints may wait for readers
/// and writers (and so keep a writer waiting at most).
const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(50);

/// A database file, or a private in-memory database.
pub(crate) enum Sqlite {
    File(PathBuf),
    Memory,
}

impl Sqlite {
    fn path(&self) -> Result<&PathBuf> {
        match self {
            Sqlite::File(path) => Ok(path),
            Sqlite::Memory => Err(Error::invalid(
                "an in-memory database has only one connection",
            )),
        }
    }
}

impl Backend for Sqlite {
    fn open_writer(&self, role: WriterRole) -> Result<Box<dyn WriteConnection>> {
        let conn = match self {
            Sqlite::File(path) => Conn::open(path)?,
            Sqlite::Memory => Conn::open_in_memory()?,
        };
        match role {
            WriterRole::Command => {}
            WriterRole::Bulk => conn.set_cache_size_kib(BULK_CACHE_KIB)?,
            WriterRole::Serving => conn.set_cache_size_kib(WRITER_CACHE_KIB)?,
        }
        Ok(Box::new(conn))
    }

    fn open_reader(&self) -> Result<Box<dyn ReadConnection>> {
        Ok(Box::new(Conn::open_read_only(self.path()?)?))
    }

    fn start_upkeep(&self, stop: Arc<AtomicBool>) -> Result<Option<JoinHandle<()>>> {
        let Sqlite::File(path) = self else {
            return Ok(None);
        };
        // A second connection with a short busy timeout: its TRUNCATE
        // checkpoints may keep the writer waiting at most that long.
        let checkpointer = Conn::open_with(
            path,
            &Options {
                busy_timeout: CHECKPOINT_BUSY_TIMEOUT,
                ..Options::default()
            },
        )?;
        let handle = std::thread::Builder::new()
            .name("oms-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpointer, &stop))
            .map_err(|e| Error::io("cannot start the checkpoint thread", e))?;
        Ok(Some(handle))
    }

    fn watch_commits(
        &self,
        feed: Arc<Feed>,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>> {
        let conn = Conn::open(self.path()?)?;
        std::thread::Builder::new()
            .name("oms-feed-watch".into())
            .spawn(move || watch_loop(&conn, &feed, every, &stop))
            .map_err(|e| Error::io("cannot start the feed watcher", e))
    }

    fn reads_never_wait(&self) -> bool {
        // WAL readers never wait for the writer, and the file is local.
        true
    }
}

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
fn checkpoint_loop(store: &Conn, stop: &AtomicBool) {
    let mut previous_frames = -1;
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20));
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
            && store.wal_bytes().is_ok_and(|b| b > WAL_SIZE_LIMIT)
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

/// Publishes the newest seq whenever another connection (another process)
/// has committed, checked every `every` while anyone is subscribed. It
/// publishes only the seq; woken waiters query for the changes.
fn watch_loop(store: &Conn, feed: &Feed, every: Duration, stop: &AtomicBool) {
    let mut seen = store.data_version().unwrap_or(0);
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(every);
        if !feed.has_subscribers() {
            continue;
        }
        match store.data_version() {
            Ok(version) if version != seen => {
                seen = version;
                match store.last_seq() {
                    Ok(seq) => feed.publish(seq),
                    Err(e) => tracing::warn!(error = %e, "feed watcher cannot read"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "feed watcher cannot read"),
        }
    }
}
