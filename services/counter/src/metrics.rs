//! Prometheus metrics: requests by route and status, latency, store errors,
//! breaker state and discovery changes, served at `/metrics` in text format.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreErrorLabels {
    op: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Cheap to clone: all handles point at one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    store_errors: Family<StoreErrorLabels, Counter>,
    breaker_state: Family<EndpointLabels, Gauge>,
    discovery_changes: Family<ServiceLabels, Counter>,
    write_batch: Histogram,
    reloads: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("counter");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        // 50 µs .. ~3.3 s: loopback answers are sub-millisecond, store timeouts are seconds.
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.00005, 2.0, 17))) as fn() -> Histogram,
        );
        registry.register("http_request_duration_seconds", "Time to answer, by route", latency.clone());
        let store_errors = Family::<StoreErrorLabels, Counter>::default();
        registry.register("store_errors", "Store calls that failed, by operation and kind", store_errors.clone());
        let breaker_state = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "breaker_state",
            "Circuit breaker per Redis endpoint: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        let discovery_changes = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "discovery_changes",
            "Changes of the Redis endpoints seen in Consul",
            discovery_changes.clone(),
        );
        let write_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "write_batch_size",
            "Increments acknowledged by one transaction of INCRs + WAIT (group commit)",
            write_batch.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "runtime_reloads",
            "Runtime-file reloads (SIGHUP) by outcome: applied, or rejected and the old settings kept",
            reloads.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                reloads,
                registry,
                requests,
                latency,
                store_errors,
                breaker_state,
                discovery_changes,
                write_batch,
            }),
        }
    }

    pub fn request(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.inner.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.inner.latency.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    }

    pub fn store_error(&self, op: &'static str, kind: &'static str) {
        self.inner.store_errors.get_or_create(&StoreErrorLabels { op, kind }).inc();
    }

    pub fn breaker(&self, endpoint: String, state: i64) {
        self.inner.breaker_state.get_or_create(&EndpointLabels { endpoint }).set(state);
    }

    pub fn discovery_change(&self, service: &'static str) {
        self.inner.discovery_changes.get_or_create(&ServiceLabels { service }).inc();
    }

    pub fn reload(&self, outcome: &'static str) {
        self.inner.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn write_batch(&self, size: usize) {
        self.inner.write_batch.observe(size as f64);
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_shows_recorded_requests() {
        let m = Metrics::new();
        m.request("/inc", 200, Duration::from_millis(1));
        m.store_error("get", "timeout");
        let text = m.encode();
        assert!(text.contains(r#"counter_http_requests_total{route="/inc",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"counter_store_errors_total{op="get",kind="timeout"} 1"#), "{text}");
        assert!(text.contains("counter_http_request_duration_seconds_bucket"), "{text}");
    }
}
