//! Metrics users define (Ray's `ray.util.metrics`): counters, gauges and histograms, with
//! labels, registered once per process by name and exported by every node of the process at
//! `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::text::{Family, Kind, Labels, Sample, valid_name};

/// Why a metric could not be made or updated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The name is not `[a-zA-Z_:][a-zA-Z0-9_:]*`, or a label name is not a valid one.
    #[error("{0:?} is not a valid metric or label name")]
    InvalidName(String),
    /// A metric of that name exists with another kind, help or labels.
    #[error("a metric named {name:?} already exists as a {existing}")]
    Conflict {
        /// The name.
        name: String,
        /// What it already is.
        existing: String,
    },
    /// The labels given do not match the metric's label names.
    #[error("metric {name:?} has labels {expected:?}, not {given:?}")]
    Labels {
        /// The metric.
        name: String,
        /// Its label names.
        expected: Vec<String>,
        /// The names given.
        given: Vec<String>,
    },
    /// A counter may only go up.
    #[error("counter {0:?} may only go up")]
    Negative(String),
}

#[derive(Debug)]
enum Series {
    Value(f64),
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Metric {
    name: String,
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    buckets: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Metric {
    fn update(&self, values: &[&str], f: impl FnOnce(&mut Series)) -> Result<(), MetricsError> {
        if values.len() != self.label_names.len() {
            return Err(MetricsError::Labels {
                name: self.name.clone(),
                expected: self.label_names.clone(),
                given: values.iter().map(|v| v.to_string()).collect(),
            });
        }
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let entry = series.entry(key).or_insert_with(|| match self.kind {
            Kind::Histogram => Series::Histogram {
                counts: vec![0; self.buckets.len()],
                sum: 0.0,
                count: 0,
            },
            _ => Series::Value(0.0),
        });
        f(entry);
        Ok(())
    }

    fn family(&self) -> Family {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let samples = series
            .iter()
            .map(|(values, s)| {
                let labels: Labels = self
                    .label_names
                    .iter()
                    .cloned()
                    .zip(values.iter().cloned())
                    .collect();
                let sample = match s {
                    Series::Value(v) => Sample::Value(*v),
                    Series::Histogram { counts, sum, count } => {
                        let mut running = 0;
                        let buckets = self
                            .buckets
                            .iter()
                            .zip(counts)
                            .map(|(le, n)| {
                                running += n;
                                (*le, running)
                            })
                            .collect();
                        Sample::Histogram {
                            buckets,
                            sum: *sum,
                            count: *count,
                        }
                    }
                };
                (labels, sample)
            })
            .collect();
        Family {
            name: self.name.clone(),
            help: self.help.clone(),
            kind: self.kind,
            samples,
        }
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<Metric>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Arc<Metric>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn register(
    name: &str,
    help: &str,
    kind: Kind,
    label_names: &[&str],
    buckets: Vec<f64>,
) -> Result<Arc<Metric>, MetricsError> {
    if !valid_name(name, false) {
        return Err(MetricsError::InvalidName(name.to_string()));
    }
    if let Some(bad) = label_names
        .iter()
        .find(|l| !valid_name(l, true) || l.starts_with("__") || **l == "le")
    {
        return Err(MetricsError::InvalidName(bad.to_string()));
    }
    let mut registry = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = registry.get(name) {
        let same = existing.kind == kind
            && existing.label_names == label_names
            && existing.buckets == buckets;
        return if same {
            Ok(Arc::clone(existing))
        } else {
            Err(MetricsError::Conflict {
                name: name.to_string(),
                existing: format!("{:?} with labels {:?}", existing.kind, existing.label_names),
            })
        };
    }
    let metric = Arc::new(Metric {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        label_names: label_names.iter().map(|l| l.to_string()).collect(),
        buckets,
        series: Mutex::default(),
    });
    registry.insert(name.to_string(), Arc::clone(&metric));
    Ok(metric)
}

/// Every user metric of this process, by name.
pub(crate) fn families() -> Vec<Family> {
    let metrics: Vec<Arc<Metric>> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    metrics.iter().map(|m| m.family()).collect()
}

/// A number that only goes up (Ray's `metrics.Counter`). Made once by name; making it again
/// with the same name and labels gives the same counter, from any task or actor.
///
/// ```
/// let served = mobula::metrics::Counter::new("app_requests_total", "Requests served", &["route"])?;
/// served.inc(&["/predict"])?;
/// # Ok::<(), mobula::metrics::MetricsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Counter(Arc<Metric>);

impl Counter {
    /// The counter `name` with these label names (none: `&[]`).
    pub fn new(name: &str, help: &str, labels: &[&str]) -> Result<Self, MetricsError> {
        register(name, help, Kind::Counter, labels, Vec::new()).map(Counter)
    }

    /// Adds 1 to the series of these label values.
    pub fn inc(&self, labels: &[&str]) -> Result<(), MetricsError> {
        self.inc_by(1.0, labels)
    }

    /// Adds `amount` (not negative).
    pub fn inc_by(&self, amount: f64, labels: &[&str]) -> Result<(), MetricsError> {
        if amount < 0.0 || amount.is_nan() {
            return Err(MetricsError::Negative(self.0.name.clone()));
        }
        self.0.update(labels, |s| {
            if let Series::Value(v) = s {
                *v += amount;
            }
        })
    }
}

/// A number that goes up and down (Ray's `metrics.Gauge`).
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Metric>);

impl Gauge {
    /// The gauge `name` with these label names.
    pub fn new(name: &str, help: &str, labels: &[&str]) -> Result<Self, MetricsError> {
        register(name, help, Kind::Gauge, labels, Vec::new()).map(Gauge)
    }

    /// Sets the series of these label values.
    pub fn set(&self, value: f64, labels: &[&str]) -> Result<(), MetricsError> {
        self.0.update(labels, |s| {
            if let Series::Value(v) = s {
                *v = value;
            }
        })
    }

    /// Adds `delta` (negative to take away).
    pub fn add(&self, delta: f64, labels: &[&str]) -> Result<(), MetricsError> {
        self.0.update(labels, |s| {
            if let Series::Value(v) = s {
                *v += delta;
            }
        })
    }
}

/// Observations counted into buckets (Ray's `metrics.Histogram`).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Metric>);

impl Histogram {
    /// The histogram `name` with these bucket upper bounds (sorted here) and label names.
    pub fn new(
        name: &str,
        help: &str,
        mut buckets: Vec<f64>,
        labels: &[&str],
    ) -> Result<Self, MetricsError> {
        buckets.retain(|b| b.is_finite());
        buckets.sort_by(f64::total_cmp);
        buckets.dedup();
        register(name, help, Kind::Histogram, labels, buckets).map(Histogram)
    }

    /// Counts one observation.
    pub fn observe(&self, value: f64, labels: &[&str]) -> Result<(), MetricsError> {
        let bucket = self.0.buckets.iter().position(|le| value <= *le);
        self.0.update(labels, |s| {
            if let Series::Histogram { counts, sum, count } = s {
                if let Some(i) = bucket {
                    counts[i] += 1;
                }
                *sum += value;
                *count += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::text::render;

    #[test]
    fn user_metrics_count_by_label_and_render() {
        let c = Counter::new("test_user_jobs_total", "Jobs", &["kind"]).unwrap();
        c.inc(&["a"]).unwrap();
        c.inc_by(2.0, &["a"]).unwrap();
        c.inc(&["b"]).unwrap();
        // The same name and labels: the same counter.
        Counter::new("test_user_jobs_total", "Jobs", &["kind"])
            .unwrap()
            .inc(&["b"])
            .unwrap();
        assert!(matches!(
            Gauge::new("test_user_jobs_total", "x", &["kind"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(c.inc(&[]), Err(MetricsError::Labels { .. })));
        assert!(matches!(
            c.inc_by(-1.0, &["a"]),
            Err(MetricsError::Negative(_))
        ));
        assert!(matches!(
            Counter::new("bad-name", "x", &[]),
            Err(MetricsError::InvalidName(_))
        ));
        let h = Histogram::new("test_user_wait_seconds", "Wait", vec![1.0, 0.1], &[]).unwrap();
        for v in [0.05, 0.5, 5.0] {
            h.observe(v, &[]).unwrap();
        }
        let text = render(&families());
        assert!(
            text.contains("test_user_jobs_total{kind=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("test_user_jobs_total{kind=\"b\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("test_user_wait_seconds_bucket{le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("test_user_wait_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("test_user_wait_seconds_count 3\n"), "{text}");
    }
}
