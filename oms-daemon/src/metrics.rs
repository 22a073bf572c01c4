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
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    orders_placed: Counter,
    feed_waiters: Gauge,
    batch_size: Histogram,
    write_failures: Family<CauseLabels, Counter>,
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
        let write_failures = Family::<CauseLabels, Counter>::default();
        registry.register(
            "write_failures",
            "Writes refused because their commit failed, by cause (storage_full: the disk is full)",
            write_failures.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            write_failures,
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

    pub fn observe_batch(&self, jobs: usize) {
        self.batch_size.observe(jobs as f64);
    }

    /// Counts `jobs` writes that failed for `cause`.
    pub fn write_failed(&self, cause: &'static str, jobs: usize) {
        self.write_failures
            .get_or_create(&CauseLabels { cause })
            .inc_by(jobs as u64);
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
