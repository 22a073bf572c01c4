//! The HTTP side of the change feed: the cap on long-polls and event
//! streams waiting at once. What they wait for (the newest committed seq,
//! published after every commit, also another process's) comes from
//! `oms_core::Db::subscribe`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many requests wait on the feed now, and how many may.
pub struct Waiters {
    waiting: AtomicUsize,
    max: usize,
}

/// A registered waiter; dropping it unregisters.
pub struct WaiterSlot<'a> {
    waiters: &'a Waiters,
}

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.waiters.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A [`WaiterSlot`] that owns its share of the count, for a waiter that
/// outlives the request handler (an event stream).
pub struct OwnedWaiterSlot {
    waiters: Arc<Waiters>,
}

impl Drop for OwnedWaiterSlot {
    fn drop(&mut self) {
        self.waiters.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Waiters {
    pub fn new(max: usize) -> Waiters {
        Waiters {
            waiting: AtomicUsize::new(0),
            max,
        }
    }

    /// Registers a waiter, or `None` when the cap is reached.
    pub fn register(&self) -> Option<WaiterSlot<'_>> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let slot = WaiterSlot { waiters: self };
        (before < self.max).then_some(slot)
    }

    /// [`Waiters::register`] for a waiter that outlives the handler.
    pub fn register_owned(self: &Arc<Self>) -> Option<OwnedWaiterSlot> {
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let slot = OwnedWaiterSlot {
            waiters: Arc::clone(self),
        };
        (before < self.max).then_some(slot)
    }

    /// Requests waiting now.
    pub fn count(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_slots_until_they_drop() {
        let waiters = Arc::new(Waiters::new(2));
        let a = waiters.register().expect("first");
        let b = waiters.register_owned().expect("second");
        assert!(waiters.register().is_none(), "over the cap");
        assert_eq!(waiters.count(), 2);
        drop(a);
        drop(b);
        assert_eq!(waiters.count(), 0);
        assert!(waiters.register().is_some());
    }
}
