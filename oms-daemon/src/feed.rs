//! Wake-ups for the long-poll change feed.
//!
//! The newest committed `seq` lives in a `watch` channel. The writer thread
//! publishes after each commit; a watcher thread notices commits by other
//! processes (a CLI import, a cron job) through `PRAGMA data_version` on its
//! own connection, checked on a short timer only while someone waits.
//! Waiters never hold a read transaction while they wait: they re-query
//! after a wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use oms_core::{Seq, Store};
use tokio::sync::watch;

/// The feed's shared state.
pub struct Feed {
    latest: watch::Sender<Seq>,
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

impl Feed {
    pub fn new(start: Seq, max_waiters: usize) -> Feed {
        Feed {
            latest: watch::Sender::new(start),
            waiters: AtomicUsize::new(0),
            max_waiters,
        }
    }

    /// Records a newer committed seq and wakes waiters (never goes back).
    pub fn publish(&self, seq: Seq) {
        self.latest.send_if_modified(|current| {
            if seq > *current {
                *current = seq;
                true
            } else {
                false
            }
        });
    }

    /// A receiver to wait on.
    pub fn subscribe(&self) -> watch::Receiver<Seq> {
        self.latest.subscribe()
    }

    /// Registers a waiter, or `None` when the cap is reached.
    pub fn register(&self) -> Option<WaiterSlot<'_>> {
        let before = self.waiters.fetch_add(1, Ordering::AcqRel);
        let slot = WaiterSlot { feed: self };
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
