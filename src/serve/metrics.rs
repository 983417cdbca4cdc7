//! Serve's Prometheus metrics, on each node's `/metrics` with the user metrics: requests,
//! errors and latency per deployment (counted by the replicas, on their nodes), requests
//! running and waiting, and replicas per deployment (set by the controller). Labels are the
//! application and the deployment only, so the series stay as many as the deployments.

use std::sync::OnceLock;
use std::time::Duration;

use super::status::LATENCY_BOUNDS_US;
use crate::metrics::{Counter, Gauge, Histogram};

pub(crate) struct ServeMetrics {
    requests: Counter,
    errors: Counter,
    latency: Histogram,
    ongoing: Gauge,
    replicas: Gauge,
}

/// The metrics, registered on first use; `None` if a user metric took one of their names.
pub(crate) fn metrics() -> Option<&'static ServeMetrics> {
    static METRICS: OnceLock<Option<ServeMetrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let labels = ["application", "deployment"];
            let buckets = LATENCY_BOUNDS_US
                .iter()
                .map(|us| *us as f64 / 1000.0)
                .collect();
            Some(ServeMetrics {
                requests: Counter::new(
                    "mobula_serve_requests_total",
                    "Requests a deployment's replicas finished",
                    &labels,
                )
                .map_err(|e| tracing::warn!(error = %e, "Serve's metrics are off"))
                .ok()?,
                errors: Counter::new(
                    "mobula_serve_errors_total",
                    "Requests that failed (an error, a panic, a full queue)",
                    &labels,
                )
                .map_err(|e| tracing::warn!(error = %e, "Serve's metrics are off"))
                .ok()?,
                latency: Histogram::new(
                    "mobula_serve_latency_ms",
                    "Time a request spent on its replica, queue included (ms)",
                    buckets,
                    &labels,
                )
                .map_err(|e| tracing::warn!(error = %e, "Serve's metrics are off"))
                .ok()?,
                ongoing: Gauge::new(
                    "mobula_serve_ongoing_requests",
                    "Requests running or waiting on a deployment's replicas",
                    &labels,
                )
                .map_err(|e| tracing::warn!(error = %e, "Serve's metrics are off"))
                .ok()?,
                replicas: Gauge::new(
                    "mobula_serve_replicas",
                    "Running replicas of a deployment",
                    &labels,
                )
                .map_err(|e| tracing::warn!(error = %e, "Serve's metrics are off"))
                .ok()?,
            })
        })
        .as_ref()
}

/// A request arrived at a replica.
pub(crate) fn arrived(app: &str, deployment: &str) {
    if let Some(m) = metrics() {
        let _ = m.ongoing.add(1.0, &[app, deployment]);
    }
}

/// A request left a replica.
pub(crate) fn finished(app: &str, deployment: &str, took: Duration, failed: bool) {
    if let Some(m) = metrics() {
        let labels = [app, deployment];
        let _ = m.ongoing.add(-1.0, &labels);
        let _ = m.requests.inc(&labels);
        if failed {
            let _ = m.errors.inc(&labels);
        }
        let _ = m.latency.observe(took.as_secs_f64() * 1000.0, &labels);
    }
}

/// A request refused by a full replica.
pub(crate) fn refused(app: &str, deployment: &str) {
    if let Some(m) = metrics() {
        let labels = [app, deployment];
        let _ = m.requests.inc(&labels);
        let _ = m.errors.inc(&labels);
    }
}

/// The controller's count of running replicas.
pub(crate) fn replicas(app: &str, deployment: &str, running: usize) {
    if let Some(m) = metrics() {
        let _ = m.replicas.set(running as f64, &[app, deployment]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serve_metrics_register() {
        assert!(super::metrics().is_some());
    }
}
