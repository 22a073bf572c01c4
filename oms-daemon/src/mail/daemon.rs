//! The dispatcher inside `oms serve`: claims and outcomes go through the
//! daemon's writer thread like every other write (they join a group
//! commit, so they never contend with placement for the write lock), the
//! orders are read from the read pool, and sends run on the blocking pool.
//! It wakes when the feed publishes a commit (a placement or a status
//! change may have queued mail), when the next retry falls due, or every
//! `idle_poll` (for rows written by other processes), and stops on
//! shutdown after the sends in flight end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oms_core::{Backlog, Timestamp};

use super::{Dispatcher, Mailer, Outbox, SendReport};
use crate::App;

/// After the feed wakes the dispatcher, it waits this long so that one
/// claim takes the mail of many commits.
const SETTLE: Duration = Duration::from_millis(20);
/// After a failed batch (the database busy, ...), wait before the next.
const AFTER_ERROR: Duration = Duration::from_secs(1);
/// Between batches while writes queue for the writer thread: the claims
/// and outcomes of mail are writes too (two row updates per mail), and
/// they must not take the writer from placement. At 100 rows a batch this
/// caps mail at a few hundred a second during a burst; the outbox holds
/// the rest and drains at full speed once the writer is idle.
const BUSY_PACE: Duration = Duration::from_millis(100);

/// Runs the daemon's dispatcher until shutdown.
pub(crate) async fn run_in_daemon(app: Arc<App>, mailer: Arc<Mailer>) {
    let metrics = Arc::clone(&app.metrics);
    let dispatcher = match Dispatcher::new(Arc::clone(&app.db), mailer, "serve") {
        Ok(dispatcher) => dispatcher.with_hook(Arc::new(move |report: &SendReport| {
            metrics.notifications_sent(report.sent, report.rescheduled, report.dead);
        })),
        Err(e) => {
            tracing::error!(error = %e, "mail dispatcher not started; `oms notify send` can deliver");
            return;
        }
    };
    let config = dispatcher.config().clone();
    let mut feed = match app.db.subscribe() {
        Ok(feed) => feed,
        Err(e) => {
            tracing::error!(error = %e, "mail dispatcher not started; `oms notify send` can deliver");
            return;
        }
    };
    let mut shutdown = app.shutdown.subscribe();
    // Sends in flight see the stop at once and release what they have not
    // started, so shutdown waits for at most one send per worker.
    let stop = dispatcher.stop_flag();
    let mut stopping = app.shutdown.subscribe();
    tokio::spawn(async move {
        let _ = stopping.wait_for(|stopped| *stopped).await;
        stop.store(true, Ordering::Release);
    });
    tracing::info!(
        smtp = ?config,
        "mail dispatcher started"
    );
    loop {
        if *shutdown.borrow() {
            break;
        }
        let full = match dispatcher.run_batch(config.batch).await {
            Ok(report) => {
                if report.due > 0 {
                    tracing::debug!(
                        sent = report.sent,
                        rescheduled = report.rescheduled,
                        dead = report.dead,
                        released = report.released,
                        "mail batch"
                    );
                }
                report.due as usize >= config.batch
            }
            Err(e) => {
                tracing::warn!(error = %e, "mail batch failed");
                tokio::select! {
                    () = tokio::time::sleep(AFTER_ERROR) => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        if app.db.queued() > 0 {
            tokio::select! {
                () = tokio::time::sleep(BUSY_PACE) => {}
                _ = shutdown.changed() => break,
            }
            if full {
                continue;
            }
        } else if full {
            // More may be due and the writer is idle: go on at once.
            continue;
        }
        let now = Timestamp::now();
        let wait = match dispatcher.outbox().backlog().await {
            Ok(Backlog {
                next_due: Some(next),
                ..
            }) => Duration::from_millis(u64::try_from(next.millis() - now.millis()).unwrap_or(0))
                .min(config.idle_poll),
            _ => config.idle_poll,
        };
        // Something is due already (a released row): go on, but not in a
        // tight loop.
        let wait = wait.max(Duration::from_millis(10));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = feed.changed() => {
                if changed.is_err() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(SETTLE) => {}
                    _ = shutdown.changed() => break,
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    tracing::info!("mail dispatcher stopped");
}
