//! Serve's errors.

use super::config::ConfigError;

/// Why Serve could not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Mobula is not running in this process.
    #[error(
        "Mobula is not running in this process: call mobula::init(Config::default()) before serve::run"
    )]
    NotInitialized,
    /// An option is wrong.
    #[error("deployment `{deployment}`: {error}")]
    Config {
        /// The deployment (or `route_prefix`).
        deployment: String,
        /// What is wrong.
        error: ConfigError,
    },
    /// Replicas could not start.
    #[error("deployment `{deployment}` could not start its replicas: {reason}")]
    Start {
        /// The deployment.
        deployment: String,
        /// The latest failure.
        reason: String,
    },
    /// The HTTP proxy could not listen.
    #[error("the Serve proxy cannot listen on {address}: {reason}")]
    Proxy {
        /// The address asked for.
        address: String,
        /// Why.
        reason: String,
    },
    /// Another route prefix is taken by another application.
    #[error("route prefix {prefix} is already served by application `{app}`")]
    RouteTaken {
        /// The prefix.
        prefix: String,
        /// The application holding it.
        app: String,
    },
    /// The controller could not be created or reached.
    #[error("the Serve controller: {0}")]
    Controller(String),
    /// No application of that name runs.
    #[error("no Serve application is named `{0}`")]
    UnknownApplication(String),
}
