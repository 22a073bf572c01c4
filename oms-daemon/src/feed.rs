//! Wake-ups for the long-poll change feed.
//!
//! The newest committed `seq` lives in a `watch` channel. The writer thread
//! publishes after each commit, together with the changes that commit (and
//! any other process since the previous one) appended, so a thousand woken
//! waiters answer from memory instead of a thousand queries. A watcher
//! thread notices commits by other processes (a CLI import, a cron job)
//! through `PRAGMA data_version` on its own connection, checked on a short
//! timer only while someone waits; it publishes only the seq, and waiters
//! then query. Waiters never hold a read transaction while they wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use oms_core::{Change, Seq, Store};
use tokio::sync::watch;

/// What the feed last published: the newest seq and, when known, every
/// change with a seq in `(since, last]`.
#[derive(Debug, Clone)]
pub struct Published {
    pub last: Seq,
    pub since: Seq,
    pub recent: Arc<Vec<Change>>,
}

impl Published {
    /// The changes after `after` (at most `limit`, only `customer`'s when
    /// set), if `recent` holds all of them; `None` means "ask the database".
    pub fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<oms_core::CustomerId>,
    ) -> Option<Vec<Change>> {
        self.matching_after(after, limit, customer, None)
    }

    /// [`Published::changes_after`], only the changes about `entity` when
    /// it is given.
    pub fn matching_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<oms_core::CustomerId>,
        entity: Option<&oms_core::EntityFilter>,
    ) -> Option<Vec<Change>> {
        if after < self.since {
            return None;
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Some(
            self.recent
                .iter()
                .filter(|c| {
                    c.seq > after
                        && (customer.is_none() || c.customer_id == customer)
                        && entity.is_none_or(|e| e.matches(c))
                })
                .take(limit)
                .cloned()
                .collect(),
        )
    }
}

/// The feed's shared state.
pub struct Feed {
    latest: watch::Sender<Published>,
    waiters: AtomicUsize,
    max_waiters: usize,
}

/// A registered waiter; dropping it unregisters.
pub struct WaiterSlot<'a> {
    feed: &'a Feed,
}

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.feed.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A registered waiter that owns its handle on the feed.
pub struct OwnedWaiterSlot {
    feed: Arc<Feed>,
}

impl Drop for OwnedWaiterSlot {
    fn drop(&mut self) {
        self.feed.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Feed {
    pub fn new(start: Seq, max_waiters: usize) -> Feed {
        Feed {
            latest: watch::Sender::new(Published {
                last: start,
                since: start,
                recent: Arc::default(),
            }),
            waiters: AtomicUsize::new(0),
            max_waiters,
        }
    }

    /// Records a newer committed seq and wakes waiters (never goes back).
    /// Only the seq is known: waiters will query.
    pub fn publish(&self, seq: Seq) {
        self.publish_changes(seq, seq, Arc::default());
    }

    /// Records a newer committed seq with every change in `(since, last]`.
    pub fn publish_changes(&self, last: Seq, since: Seq, recent: Arc<Vec<Change>>) {
        self.latest.send_if_modified(|current| {
            if last > current.last {
                *current = Published {
                    last,
                    since,
                    recent,
                };
                true
            } else {
                false
            }
        });
    }

    /// A receiver to wait on.
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.latest.subscribe()
    }

    /// Registers a waiter, or `None` when the cap is reached.
    pub fn register(&self) -> Option<WaiterSlot<'_>> {
        let before = self.waiters.fetch_add(1, Ordering::AcqRel);
        let slot = WaiterSlot { feed: self };
        (before < self.max_waiters).then_some(slot)
    }

    /// [`Feed::register`] for a waiter that outlives the request handler
    /// (an event stream): the slot keeps the feed alive.
    pub fn register_owned(self: &Arc<Self>) -> Option<OwnedWaiterSlot> {
        let before = self.waiters.fetch_add(1, Ordering::AcqRel);
        let slot = OwnedWaiterSlot {
            feed: Arc::clone(self),
        };
        (before < self.max_waiters).then_some(slot)
    }

    /// Requests waiting now.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Acquire)
    }
}

/// Watches for commits by other processes while anyone waits.
pub struct ExternalWatcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ExternalWatcher {
    pub fn start(
        store: Store,
        feed: Arc<Feed>,
        every: Duration,
    ) -> std::io::Result<ExternalWatcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("oms-feed-watch".into())
            .spawn(move || {
                let mut seen = store.data_version().unwrap_or(0);
                while !flag.load(Ordering::Acquire) {
                    std::thread::sleep(every);
                    if feed.waiters() == 0 {
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
            })?;
        Ok(ExternalWatcher {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ExternalWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_core::{CustomerId, Timestamp};

    fn change(seq: i64, customer: Option<i64>) -> Change {
        Change {
            seq: Seq(seq),
            at: Timestamp::from_millis(0),
            kind: "order.placed".into(),
            entity: "order".into(),
            entity_id: seq,
            actor: "cli".into(),
            data: serde_json::Value::Null,
            customer_id: customer.map(CustomerId),
        }
    }

    #[test]
    fn published_changes_answer_only_what_they_cover() {
        let published = Published {
            last: Seq(13),
            since: Seq(10),
            recent: Arc::new(vec![
                change(11, Some(1)),
                change(12, Some(2)),
                change(13, None),
            ]),
        };
        let seqs =
            |v: Option<Vec<Change>>| v.map(|v| v.iter().map(|c| c.seq.get()).collect::<Vec<_>>());
        // Before `since`: the gap is unknown, ask the database.
        assert_eq!(seqs(published.changes_after(Seq(9), 100, None)), None);
        assert_eq!(
            seqs(published.changes_after(Seq(10), 100, None)),
            Some(vec![11, 12, 13])
        );
        assert_eq!(
            seqs(published.changes_after(Seq(11), 1, None)),
            Some(vec![12])
        );
        assert_eq!(
            seqs(published.changes_after(Seq(10), 100, Some(CustomerId(2)))),
            Some(vec![12])
        );
        assert_eq!(
            seqs(published.changes_after(Seq(13), 100, None)),
            Some(vec![])
        );
    }
}
