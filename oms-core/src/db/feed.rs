//! Change notifications: the newest committed seq, published after every
//! commit.
//!
//! The writer publishes after each group commit, together with the changes
//! that commit (and any other process since the previous one) appended, so
//! a thousand woken subscribers answer from memory instead of a thousand
//! queries. Commits by other processes are noticed by the backend's
//! watcher, which publishes only the seq; subscribers then query. Nobody
//! holds a read transaction while waiting.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{Change, CustomerId, EntityFilter, Seq};

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
    /// set), if `recent` holds all of them; `None` means "ask the store".
    pub fn changes_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
    ) -> Option<Vec<Change>> {
        self.matching_after(after, limit, customer, None)
    }

    /// [`Published::changes_after`], only the changes about `entity` when
    /// it is given.
    pub fn matching_after(
        &self,
        after: Seq,
        limit: u64,
        customer: Option<CustomerId>,
        entity: Option<&EntityFilter>,
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

/// A subscription to the feed: `changed().await`, then
/// `borrow_and_update()` for what was published.
pub type Subscription = watch::Receiver<Published>;

/// The feed's shared state.
pub struct Feed {
    latest: watch::Sender<Published>,
}

impl Feed {
    pub(crate) fn new(start: Seq) -> Feed {
        Feed {
            latest: watch::Sender::new(Published {
                last: start,
                since: start,
                recent: Arc::default(),
            }),
        }
    }

    /// Records a newer committed seq and wakes subscribers (never goes
    /// back). Only the seq is known: subscribers will query.
    pub(crate) fn publish(&self, seq: Seq) {
        self.publish_changes(seq, seq, Arc::default());
    }

    /// Records a newer committed seq with every change in `(since, last]`.
    pub(crate) fn publish_changes(&self, last: Seq, since: Seq, recent: Arc<Vec<Change>>) {
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
    pub fn subscribe(&self) -> Subscription {
        self.latest.subscribe()
    }

    /// Whether anyone listens (the watcher of other processes' commits
    /// sleeps otherwise).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.latest.receiver_count() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustomerId, Timestamp};

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
        // Before `since`: the gap is unknown, ask the store.
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

    #[test]
    fn publishing_never_goes_back_and_counts_subscribers() {
        let feed = Feed::new(Seq(5));
        assert!(!feed.has_subscribers());
        let sub = feed.subscribe();
        assert!(feed.has_subscribers());
        feed.publish(Seq(4));
        assert_eq!(sub.borrow().last, Seq(5));
        feed.publish(Seq(7));
        assert_eq!(sub.borrow().last, Seq(7));
        drop(sub);
        assert!(!feed.has_subscribers());
    }
}
