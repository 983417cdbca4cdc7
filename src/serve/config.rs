//! A deployment's options (Ray Serve's `@serve.deployment(...)` arguments) as plain data,
//! with Ray's defaults, and their checks.

use super::autoscale::{AutoscalingConfig, AutoscalingError};

/// How a deployment runs: its replicas, what each may hold, how they are watched.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentConfig {
    /// The deployment's name, unique in its application.
    pub name: String,
    /// Replicas to run when it does not autoscale (Ray: 1).
    pub num_replicas: u32,
    /// CPUs each replica holds (Ray: 1).
    pub num_cpus: f64,
    /// GPUs each replica holds.
    pub num_gpus: f64,
    /// Custom resources each replica holds.
    pub resources: Vec<(String, f64)>,
    /// Requests a replica runs at once; more wait for room (Ray: 5).
    pub max_ongoing_requests: u32,
    /// Requests that may wait for a replica; beyond, a request is refused with 503
    /// (`None`: no limit, Ray's -1).
    pub max_queued_requests: Option<usize>,
    /// How the replica count follows the load, if it does.
    pub autoscaling: Option<AutoscalingConfig>,
    /// How often each replica's health check runs, in ms (Ray: 10 s).
    pub health_check_period_ms: u64,
    /// How long a health check may take before the replica counts as unhealthy (Ray: 30 s).
    pub health_check_timeout_ms: u64,
    /// How long a stopping replica may finish its requests, in ms (Ray: 20 s).
    pub graceful_shutdown_timeout_ms: u64,
}

impl DeploymentConfig {
    /// Ray's defaults for a deployment named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DeploymentConfig {
            name: name.into(),
            num_replicas: 1,
            num_cpus: 1.0,
            num_gpus: 0.0,
            resources: Vec::new(),
            max_ongoing_requests: 5,
            max_queued_requests: None,
            autoscaling: None,
            health_check_period_ms: 10_000,
            health_check_timeout_ms: 30_000,
            graceful_shutdown_timeout_ms: 20_000,
        }
    }

    /// Checks every option, saying which is wrong.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() || self.name.contains('/') || self.name.contains('#') {
            return Err(ConfigError::BadName(self.name.clone()));
        }
        match &self.autoscaling {
            Some(a) => a.check()?,
            None if self.num_replicas == 0 => return Err(ConfigError::NoReplicas),
            None => {}
        }
        if self.max_ongoing_requests == 0 {
            return Err(ConfigError::Zero("max_ongoing_requests"));
        }
        if self.health_check_period_ms == 0 {
            return Err(ConfigError::Zero("health_check_period"));
        }
        if self.health_check_timeout_ms == 0 {
            return Err(ConfigError::Zero("health_check_timeout"));
        }
        let amounts = [("num_cpus", self.num_cpus), ("num_gpus", self.num_gpus)];
        let custom = self.resources.iter().map(|(n, a)| (n.as_str(), *a));
        for (what, amount) in amounts.into_iter().chain(custom) {
            if !(amount.is_finite() && amount >= 0.0) {
                return Err(ConfigError::BadAmount {
                    what: what.to_string(),
                    amount,
                });
            }
        }
        Ok(())
    }

    /// The replicas it starts with: its `num_replicas`, or when it autoscales its minimum.
    pub fn initial_replicas(&self) -> u32 {
        match &self.autoscaling {
            Some(a) => a.min_replicas,
            None => self.num_replicas,
        }
    }
}

/// Why a deployment's options cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The name is empty or holds a character routes and metrics use.
    #[error("deployment name {0:?} must be non-empty, without '/' or '#'")]
    BadName(String),
    /// No replica, and no autoscaling to start one.
    #[error(
        "num_replicas must be at least 1 (or give an autoscaling config with min_replicas = 0)"
    )]
    NoReplicas,
    /// An option that must be positive is 0.
    #[error("{0} must be above 0")]
    Zero(&'static str),
    /// A resource amount is negative or not a number.
    #[error("{what} must be a non-negative number, not {amount}")]
    BadAmount {
        /// The resource.
        what: String,
        /// The amount given.
        amount: f64,
    },
    /// The autoscaling config is wrong.
    #[error("autoscaling: {0}")]
    Autoscaling(#[from] AutoscalingError),
    /// A route prefix is not a path.
    #[error("route prefix {0:?} must start with '/' and not end with one (except \"/\" itself)")]
    BadRoutePrefix(String),
}

/// Checks an application's route prefix: `/`, or `/a/b` (no trailing `/`).
pub fn check_route_prefix(prefix: &str) -> Result<(), ConfigError> {
    let ok = prefix == "/"
        || (prefix.starts_with('/')
            && !prefix.ends_with('/')
            && !prefix.contains("//")
            && !prefix.contains(['?', '#', ' ']));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadRoutePrefix(prefix.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_defaults_pass_their_check() {
        let c = DeploymentConfig::new("Model");
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.initial_replicas(), 1);
        assert_eq!(c.max_ongoing_requests, 5);
    }

    #[test]
    fn each_bad_option_is_named() {
        let bad = |f: fn(&mut DeploymentConfig)| {
            let mut c = DeploymentConfig::new("Model");
            f(&mut c);
            c.check().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.name = "a/b".into()),
            ConfigError::BadName("a/b".into())
        );
        assert_eq!(bad(|c| c.num_replicas = 0), ConfigError::NoReplicas);
        assert_eq!(
            bad(|c| c.max_ongoing_requests = 0),
            ConfigError::Zero("max_ongoing_requests")
        );
        assert_eq!(
            bad(|c| c.health_check_timeout_ms = 0),
            ConfigError::Zero("health_check_timeout")
        );
        assert_eq!(
            bad(|c| c.resources = vec![("tpu".into(), -1.0)]),
            ConfigError::BadAmount {
                what: "tpu".into(),
                amount: -1.0
            }
        );
        assert!(matches!(
            bad(|c| {
                c.autoscaling = Some(AutoscalingConfig {
                    min_replicas: 3,
                    max_replicas: 1,
                    ..AutoscalingConfig::default()
                })
            }),
            ConfigError::Autoscaling(AutoscalingError::MinAboveMax { min: 3, max: 1 })
        ));
    }

    #[test]
    fn an_autoscaled_deployment_starts_at_its_minimum_even_zero() {
        let mut c = DeploymentConfig::new("Model");
        c.num_replicas = 0;
        c.autoscaling = Some(AutoscalingConfig {
            min_replicas: 0,
            max_replicas: 4,
            ..AutoscalingConfig::default()
        });
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.initial_replicas(), 0);
    }

    #[test]
    fn route_prefixes_are_paths() {
        for good in ["/", "/a", "/api/v1"] {
            assert_eq!(check_route_prefix(good), Ok(()), "{good}");
        }
        for bad in ["", "a", "/a/", "//a", "/a?b", "/a b"] {
            assert!(check_route_prefix(bad).is_err(), "{bad}");
        }
    }
}
