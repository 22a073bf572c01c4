//! Prometheus metrics (prometheus-client), rendered by `GET /metrics`.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    orders_placed: Counter,
    feed_waiters: Gauge,
    batch_size: Histogram,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    write_failures: Family<CauseLabels, Counter>,
    notifications: Family<OutcomeLabels, Counter>,
    outbox_backlog: Gauge,
    outbox_oldest_due: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl oms_core::WriteObserver for Metrics {
    fn group(&self, jobs: usize) {
        self.observe_batch(jobs);
    }

    fn refused(&self, cause: &'static str, jobs: usize) {
        self.write_failed(cause, jobs);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oms");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by route",
            latency.clone(),
        );
        let orders_placed = Counter::default();
        registry.register(
            "orders_placed",
            "Orders placed over HTTP",
            orders_placed.clone(),
        );
        let feed_waiters = Gauge::default();
        registry.register(
            "feed_waiters",
            "Long-poll requests waiting now",
            feed_waiters.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "writer_batch_size",
            "Jobs per group commit",
            batch_size.clone(),
        );
        let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Payment webhook deliveries by event and outcome",
            webhook_deliveries.clone(),
        );
        let write_failures = Family::<CauseLabels, Counter>::default();
        registry.register(
            "write_failures",
            "Writes refused because their commit failed, by cause (storage_full: the disk is full)",
            write_failures.clone(),
        );
        let notifications = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification delivery attempts by outcome (sent, rescheduled, dead)",
            notifications.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Notifications due for delivery now",
            outbox_backlog.clone(),
        );
        let outbox_oldest_due = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "outbox_oldest_due_age_seconds",
            "How long the longest-waiting due notification has been due (0 when none is)",
            outbox_oldest_due.clone(),
        );
        Metrics {
            webhook_deliveries,
            registry: Mutex::new(registry),
            write_failures,
            notifications,
            outbox_backlog,
            outbox_oldest_due,
            requests,
            latency,
            orders_placed,
            feed_waiters,
            batch_size,
        }
    }

    /// Counts a finished request.
    pub fn observe_request(
        &self,
        route: &'static str,
        method: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    pub fn order_placed(&self) {
        self.orders_placed.inc();
    }

    /// Counts a webhook delivery: `event` is a known event name, `other`
    /// or `unverified`; `outcome` what it did (`applied`, `duplicate`,
    /// `ignored`, `bad_signature`, ...).
    pub fn webhook_delivery(&self, event: &'static str, outcome: &'static str) {
        self.webhook_deliveries
            .get_or_create(&WebhookLabels { event, outcome })
            .inc();
    }

    pub fn observe_batch(&self, jobs: usize) {
        self.batch_size.observe(jobs as f64);
    }

    /// Counts `jobs` writes that failed for `cause`.
    pub fn write_failed(&self, cause: &'static str, jobs: usize) {
        self.write_failures
            .get_or_create(&CauseLabels { cause })
            .inc_by(jobs as u64);
    }

    /// Counts the outcomes of a dispatcher batch.
    pub fn notifications_sent(&self, sent: u64, rescheduled: u64, dead: u64) {
        for (outcome, n) in [("sent", sent), ("rescheduled", rescheduled), ("dead", dead)] {
            self.notifications
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n);
        }
    }

    /// The outbox gauges, read before each render.
    pub fn set_outbox(&self, backlog: &oms_core::Backlog, now: oms_core::Timestamp) {
        self.outbox_backlog
            .set(i64::try_from(backlog.due).unwrap_or(i64::MAX));
        let age = backlog
            .oldest_due
            .map_or(0.0, |t| (now.millis() - t.millis()).max(0) as f64 / 1000.0);
        self.outbox_oldest_due.set(age);
    }

    /// The text exposition format.
    pub fn render(&self, feed_waiters: usize) -> String {
        self.feed_waiters
            .set(i64::try_from(feed_waiters).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock()
            && let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry)
        {
            tracing::warn!(error = %e, "cannot render metrics");
        }
        out
    }
}
