//! Model serving (Ray Serve), being built (issue 18): deployments of replicas behind an
//! HTTP proxy. What is here so far are its pure decisions, each unit-tested:
//!
//! - [`autoscale`]: how many replicas a deployment wants for its load, with delays and
//!   scale to zero.
//! - [`router`]: which replica takes a request (power of two choices bounded by
//!   `max_ongoing_requests`), and the bounded queue behind them.
//! - [`batch`]: requests gathered into batches by size or by wait.
//! - [`config`]: a deployment's options with Ray's defaults, and their checks.

pub mod autoscale;
pub mod batch;
pub mod config;
pub mod router;
