//! The PostgreSQL engine behind [`Backend`]: connections for each role and
//! the LISTEN watcher that wakes this process's subscribers when any
//! process commits. PostgreSQL needs no upkeep from oms (autovacuum and
//! checkpoints are the server's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::session::{Session, Target};
use super::{Conn, schema};
use crate::db::Feed;
use crate::store::{Backend, ReadConnection, WriteConnection, WriterRole};
use crate::{Error, Result, Seq};

/// A PostgreSQL database named by a `postgres://` URL.
pub(crate) struct Postgres {
    target: Arc<Target>,
}

impl Postgres {
    pub(crate) fn new(url: &str, shown: String) -> Result<Postgres> {
        Ok(Postgres {
            target: Arc::new(Target::parse(url, shown)?),
        })
    }
}

impl Backend for Postgres {
    fn open_writer(&self, _role: WriterRole) -> Result<Box<dyn WriteConnection>> {
        Ok(Box::new(Conn::new(self.target.connect()?, true)?))
    }

    fn open_reader(&self) -> Result<Box<dyn ReadConnection>> {
        Ok(Box::new(Conn::new(self.target.connect()?, false)?))
    }

    fn start_upkeep(&self, _stop: Arc<AtomicBool>) -> Result<Option<JoinHandle<()>>> {
        Ok(None)
    }

    fn watch_commits(
        &self,
        feed: Arc<Feed>,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>> {
        let target = Arc::clone(&self.target);
        std::thread::Builder::new()
            .name("oms-pg-listen".into())
            .spawn(move || listen_loop(&target, &feed, every, &stop))
            .map_err(|e| Error::io("cannot start the PostgreSQL listener", e))
    }

    fn reads_never_wait(&self) -> bool {
        // A read is a round trip to a server that may be slow or gone.
        false
    }
}

/// Listens for `oms_changes` and publishes each committed seq. A broken
/// connection is reopened (every `every`, while the server is away); after
/// each (re)connection the newest committed seq is read and published, so
/// a commit whose notification was lost meanwhile still wakes subscribers.
fn listen_loop(target: &Arc<Target>, feed: &Feed, every: Duration, stop: &AtomicBool) {
    let mut session: Option<Session> = None;
    while !stop.load(Ordering::Acquire) {
        let Some(s) = session.as_mut() else {
            match listen(target) {
                Ok((s, last)) => {
                    feed.publish(last);
                    session = Some(s);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "PostgreSQL listener cannot connect yet");
                    std::thread::sleep(every.max(Duration::from_millis(200)));
                }
            }
            continue;
        };
        match s.notifications(every) {
            Ok(payloads) => {
                if let Some(newest) = payloads.iter().filter_map(|p| p.parse::<i64>().ok()).max() {
                    feed.publish(Seq(newest));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL listener lost its connection; reconnecting");
                session = None;
            }
        }
    }
}

/// A session that LISTENs, and the newest committed seq.
fn listen(target: &Arc<Target>) -> Result<(Session, Seq)> {
    let mut session = target.connect()?;
    schema::migrate(&mut session)?;
    session.batch("LISTEN oms_changes")?;
    let last = session
        .query_one("SELECT COALESCE(max(seq), 0) FROM changes", &[])?
        .get::<_, i64>(0);
    Ok((session, Seq(last)))
}
