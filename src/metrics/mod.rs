//! Metrics in Prometheus' text format: every node's own (tasks, actors, the object store,
//! the scheduler's queue, links to other nodes) and the ones users define from tasks and
//! actors ([`Counter`], [`Gauge`], [`Histogram`]), served at `/metrics` by a node started
//! with [`Config::metrics_address`](crate::Config::metrics_address).
//!
//! - `text`: the exposition format (pure).
//! - `user`: user-defined metrics, registered by name in the process.
//! - `node_metrics`: the node's own, read from its runtime.

mod node_metrics;
pub mod text;
mod user;

pub use user::{Counter, Gauge, Histogram, MetricsError};

use crate::runtime::global::Runtime;

/// Everything a node exports at `/metrics`: its own metrics, then the process's user metrics.
pub(crate) fn exposition(rt: &Runtime) -> String {
    let mut families = node_metrics::families(rt);
    families.extend(user::families());
    text::render(&families)
}
