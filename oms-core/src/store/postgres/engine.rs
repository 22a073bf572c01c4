//! The PostgreSQL engine behind [`Backend`]: connections for each role and
//! the LISTEN watcher that wakes this process's subscribers when any
//! process commits. PostgreSQL needs no upkeep from oms (autovacuum and
//! checkpoints are the server's).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::session::{Session, Target};
use super::{Conn, schema};
use crate::db::Feed;
use crate::store::{Backend, ClaimGuard, ReadConnection, WriteConnection, WriterRole};
use crate::{Error, Result, Seq};

/// A PostgreSQL database named by a `postgres://` URL.
pub(crate) struct Postgres {
    target: Arc<Target>,
    /// The session that holds this process's claims (advisory locks live
    /// as long as the session that took them), opened on first use.
    claims: Arc<Mutex<Option<Session>>>,
}

impl Postgres {
    pub(crate) fn new(url: &str, shown: String) -> Result<Postgres> {
        Ok(Postgres {
            target: Arc::new(Target::parse(url, shown)?),
            claims: Arc::default(),
        })
    }
}

/// A claim: a session-level advisory lock on a 64-bit hash of its name,
/// held by this process's claims session. Another name with the same hash
/// (one in 2^64) is refused as if it were held: a retry is asked to come
/// back later, nothing worse.
struct AdvisoryClaim {
    claims: Arc<Mutex<Option<Session>>>,
    name: String,
}

impl ClaimGuard for AdvisoryClaim {}

impl Drop for AdvisoryClaim {
    fn drop(&mut self) {
        // Released on a thread of its own: the claim may be dropped on an
        // async thread, which must not wait for the server.
        let claims = Arc::clone(&self.claims);
        let name = std::mem::take(&mut self.name);
        let _ = std::thread::Builder::new()
            .name("oms-claim".into())
            .spawn(move || {
                let Ok(mut session) = claims.lock() else {
                    return;
                };
                if let Some(s) = session.as_mut()
                    && let Err(e) = s.query_one(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                        &[&name],
                    )
                {
                    // A broken session released its locks with it.
                    tracing::debug!(error = %e, "cannot release a claim");
                }
            });
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

    fn claim(&self, name: &str) -> Result<Option<Box<dyn ClaimGuard>>> {
        let mut session = self
            .claims
            .lock()
            .map_err(|_| Error::Database("the claims session was poisoned".into()))?;
        if session.is_none() {
            *session = Some(self.target.connect()?);
        }
        let Some(s) = session.as_mut() else {
            return Err(Error::Unavailable("no claims session".into()));
        };
        let taken: bool = s
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&name],
            )?
            .get(0);
        Ok(taken.then(|| {
            Box::new(AdvisoryClaim {
                claims: Arc::clone(&self.claims),
                name: name.to_string(),
            }) as Box<dyn ClaimGuard>
        }))
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
