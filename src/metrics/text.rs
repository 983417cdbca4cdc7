//! The Prometheus text exposition format (version 0.0.4): families of samples as text. Pure.

use std::fmt::Write as _;

/// A metric's kind, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label names and values.
pub type Labels = Vec<(String, String)>;

/// One series' value: a number, or a histogram's buckets (upper bound, cumulative count),
/// sum and count.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A counter's or gauge's value.
    Value(f64),
    /// A histogram.
    Histogram {
        /// Cumulative counts at each upper bound (without `+Inf`).
        buckets: Vec<(f64, u64)>,
        /// Sum of the observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// A metric: its name, help, kind and every labelled series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The metric's name.
    pub name: String,
    /// What it measures.
    pub help: String,
    /// Its kind.
    pub kind: Kind,
    /// Its series.
    pub samples: Vec<(Labels, Sample)>,
}

/// Whether `name` is a valid metric (or label) name: `[a-zA-Z_:][a-zA-Z0-9_:]*` (no `:` in a
/// label name).
pub fn valid_name(name: &str, label: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (c == ':' && !label);
    chars.next().is_some_and(first_ok)
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (c == ':' && !label))
}

fn escape(value: &str, help: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if !help => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == f64::INFINITY {
        "+Inf".into()
    } else if x == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{x}")
    }
}

fn labels(list: &[(String, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v, false)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// The families as exposition text.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape(&f.help, true));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
        for (l, sample) in &f.samples {
            match sample {
                Sample::Value(v) => {
                    let _ = writeln!(out, "{}{} {}", f.name, labels(l, None), number(*v));
                }
                Sample::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for (le, n) in buckets {
                        let le = Some(("le", number(*le)));
                        let _ = writeln!(out, "{}_bucket{} {n}", f.name, labels(l, le));
                    }
                    let inf = Some(("le", "+Inf".to_string()));
                    let _ = writeln!(out, "{}_bucket{} {count}", f.name, labels(l, inf));
                    let _ = writeln!(out, "{}_sum{} {}", f.name, labels(l, None), number(*sum));
                    let _ = writeln!(out, "{}_count{} {count}", f.name, labels(l, None));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_as_prometheus_text() {
        let families = vec![
            Family {
                name: "jobs_total".into(),
                help: "Jobs done\nby kind".into(),
                kind: Kind::Counter,
                samples: vec![
                    (vec![("kind".into(), "a\"b".into())], Sample::Value(3.0)),
                    (vec![], Sample::Value(0.5)),
                ],
            },
            Family {
                name: "latency_seconds".into(),
                help: "Latency".into(),
                kind: Kind::Histogram,
                samples: vec![(
                    vec![],
                    Sample::Histogram {
                        buckets: vec![(0.1, 1), (1.0, 3)],
                        sum: 2.5,
                        count: 4,
                    },
                )],
            },
        ];
        let text = render(&families);
        let expected = "\
# HELP jobs_total Jobs done\\nby kind
# TYPE jobs_total counter
jobs_total{kind=\"a\\\"b\"} 3
jobs_total 0.5
# HELP latency_seconds Latency
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"1\"} 3
latency_seconds_bucket{le=\"+Inf\"} 4
latency_seconds_sum 2.5
latency_seconds_count 4
";
        assert_eq!(text, expected);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("mobula_tasks", false));
        assert!(valid_name("ns:metric", false));
        assert!(!valid_name("ns:label", true));
        assert!(!valid_name("9lives", false));
        assert!(!valid_name("", false));
        assert!(!valid_name("a-b", false));
    }
}
