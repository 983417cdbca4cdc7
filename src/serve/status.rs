//! What Serve shows: its applications, deployments and replicas with their state, request
//! rates and latency percentiles (`mobula serve status`, `serve::status()`, the proxy's
//! `/-/status`), and the latency histogram replicas keep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds of the latency buckets, in microseconds (the last bucket has none).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Request latencies counted in buckets (Prometheus' histogram shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Count per bucket: `counts[i]` holds latencies at most `LATENCY_BOUNDS_US[i]`, the last
    /// one those above every bound.
    pub counts: Vec<u64>,
    /// Sum of all latencies, in microseconds.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_US.len() + 1];
        }
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_US.len() + 1];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The counts of `self` that `earlier` did not have (both from one replica).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        if earlier.counts.len() != self.counts.len() {
            return self.clone();
        }
        LatencyHistogram {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_us: self.sum_us.saturating_sub(earlier.sum_us),
        }
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The bucket bound under which fraction `q` of latencies fall, in ms (`None` if no
    /// latency was counted; the top bucket reports its lower bound).
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_US
                    .get(i)
                    .or(LATENCY_BOUNDS_US.last())
                    .copied()
                    .unwrap_or(0);
                return Some(bound as f64 / 1000.0);
            }
        }
        None
    }
}

/// The state of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Created, its constructor and first health check not yet done.
    Starting,
    /// Taking requests.
    Running,
    /// Taking no new requests, finishing those it has.
    Stopping,
}

impl std::fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplicaState::Starting => "STARTING",
            ReplicaState::Running => "RUNNING",
            ReplicaState::Stopping => "STOPPING",
        })
    }
}

/// One replica as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its number in the deployment.
    pub replica: u64,
    /// Its state.
    pub state: ReplicaState,
    /// The node it runs on.
    pub node: String,
    /// The deployment version it runs.
    pub version: u64,
    /// Requests running and waiting on it.
    pub ongoing: u32,
    /// Requests it finished.
    pub served: u64,
}

/// One deployment as status shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// Its name.
    pub name: String,
    /// `HEALTHY` when it runs the replicas it wants, `UPDATING` while it gets there,
    /// `UNHEALTHY` when replicas fail to start.
    pub status: String,
    /// Replicas it wants now.
    pub target_replicas: u32,
    /// Its replicas.
    pub replicas: Vec<ReplicaStatus>,
    /// Requests finished, all replicas.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Requests per second over the last few seconds.
    pub requests_per_s: f64,
    /// Median latency (ms), over every request so far.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency (ms).
    pub p99_ms: Option<f64>,
    /// Latency histogram, every request so far (for /metrics).
    pub latency: LatencyHistogram,
    /// Why replicas failed to start, the latest.
    pub message: String,
}

/// One application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationStatus {
    /// Its name.
    pub name: String,
    /// Its route prefix.
    pub route_prefix: String,
    /// Its ingress deployment.
    pub ingress: String,
    /// Its deployments.
    pub deployments: Vec<DeploymentStatus>,
}

/// Everything Serve runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServeStatus {
    /// Where the proxy listens, if it runs.
    pub proxy: Option<String>,
    /// The applications.
    pub applications: Vec<ApplicationStatus>,
}

impl ServeStatus {
    /// The status as a table for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.proxy {
            Some(p) => out.push_str(&format!("proxy: http://{p}\n")),
            None => out.push_str("proxy: not running\n"),
        }
        if self.applications.is_empty() {
            out.push_str("no applications\n");
        }
        for app in &self.applications {
            out.push_str(&format!(
                "\napplication {} (route {}, ingress {})\n",
                app.name, app.route_prefix, app.ingress
            ));
            out.push_str(
                "  DEPLOYMENT           STATUS     REPLICAS  REQUESTS   ERRORS  REQ/S      P50 MS   P99 MS\n",
            );
            for d in &app.deployments {
                let running = d
                    .replicas
                    .iter()
                    .filter(|r| r.state == ReplicaState::Running)
                    .count();
                let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
                out.push_str(&format!(
                    "  {:<20} {:<10} {:>3}/{:<5} {:>9} {:>8}  {:<10.1} {:>7} {:>8}\n",
                    d.name,
                    d.status,
                    running,
                    d.target_replicas,
                    d.requests,
                    d.errors,
                    d.requests_per_s,
                    ms(d.p50_ms),
                    ms(d.p99_ms),
                ));
                for r in &d.replicas {
                    out.push_str(&format!(
                        "    replica {:<4} {:<9} v{:<3} node {} ongoing {} served {}\n",
                        r.replica, r.state, r.version, r.node, r.ongoing, r.served
                    ));
                }
                if !d.message.is_empty() {
                    out.push_str(&format!("    note: {}\n", d.message));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for _ in 0..98 {
            h.record(Duration::from_micros(300));
        }
        h.record(Duration::from_millis(20));
        h.record(Duration::from_secs(60));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_ms(0.5), Some(0.5));
        assert_eq!(h.quantile_ms(0.99), Some(25.0));
        assert_eq!(h.quantile_ms(1.0), Some(10_000.0));
        let before = h.clone();
        h.record(Duration::from_micros(50));
        assert_eq!(h.since(&before).count(), 1);
        let mut m = LatencyHistogram::default();
        m.merge(&h);
        assert_eq!(m, h);
    }
}
