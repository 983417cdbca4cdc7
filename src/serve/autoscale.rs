//! The autoscaling policy of a deployment (Ray Serve's `autoscaling_config`), pure: the
//! replicas' reported load and the time in, the number of replicas wanted out.
//!
//! Each decision looks at the requests a deployment holds (running on replicas and queued
//! for one) and wants `ceil(load / target_ongoing_requests)` replicas, kept within
//! `[min_replicas, max_replicas]`. A change is made only once it has been wanted without a
//! break for the upscale (or downscale) delay, so a burst does not start replicas and a lull
//! does not stop them; the size of a change is what is wanted at that moment. A deployment
//! scaled to zero that receives a request goes to one replica at once (a cold start: the
//! request is held meanwhile), whatever the upscale delay.

/// How a deployment scales with its load.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalingConfig {
    /// Fewest replicas; 0 allows scaling to zero.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// Requests each replica should hold, running or queued for it (Ray's default: 2).
    pub target_ongoing_requests: f64,
    /// How long more replicas must be wanted before they are started, in ms (Ray: 30 s).
    pub upscale_delay_ms: u64,
    /// How long fewer replicas must be wanted before some are stopped, in ms (Ray: 600 s).
    pub downscale_delay_ms: u64,
}

impl Default for AutoscalingConfig {
    fn default() -> Self {
        AutoscalingConfig {
            min_replicas: 1,
            max_replicas: 1,
            target_ongoing_requests: 2.0,
            upscale_delay_ms: 30_000,
            downscale_delay_ms: 600_000,
        }
    }
}

/// Why an autoscaling config cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AutoscalingError {
    /// `min_replicas` above `max_replicas`.
    #[error("min_replicas ({min}) is above max_replicas ({max})")]
    MinAboveMax {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// No replica at all may run.
    #[error("max_replicas must be at least 1")]
    NoReplicas,
    /// The target is not a positive number.
    #[error("target_ongoing_requests must be a positive number, not {0}")]
    BadTarget(f64),
}

impl AutoscalingConfig {
    /// Checks the config.
    pub fn check(&self) -> Result<(), AutoscalingError> {
        if self.max_replicas == 0 {
            return Err(AutoscalingError::NoReplicas);
        }
        if self.min_replicas > self.max_replicas {
            return Err(AutoscalingError::MinAboveMax {
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        if !(self.target_ongoing_requests.is_finite() && self.target_ongoing_requests > 0.0) {
            return Err(AutoscalingError::BadTarget(self.target_ongoing_requests));
        }
        Ok(())
    }

    /// The replicas wanted for `load` requests, within the bounds, with no delay.
    pub fn wanted(&self, load: u64) -> u32 {
        let raw = (load as f64 / self.target_ongoing_requests).ceil();
        let raw = if raw >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            raw as u32
        };
        raw.clamp(self.min_replicas, self.max_replicas)
    }
}

/// A deployment's autoscaler: remembers since when a change has been wanted.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    config: AutoscalingConfig,
    /// Since when more replicas than run have been wanted, without a break (ms).
    up_since: Option<u64>,
    /// Since when fewer have been wanted.
    down_since: Option<u64>,
}

impl Autoscaler {
    /// An autoscaler for a checked config.
    pub fn new(config: AutoscalingConfig) -> Result<Self, AutoscalingError> {
        config.check()?;
        Ok(Autoscaler {
            config,
            up_since: None,
            down_since: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &AutoscalingConfig {
        &self.config
    }

    /// The replicas to run now, given `running` replicas, `load` requests held (running and
    /// queued) and the time `now_ms`.
    pub fn decide(&mut self, now_ms: u64, running: u32, load: u64) -> u32 {
        let wanted = self.config.wanted(load);
        // Below the bounds (a config change, replicas lost): straight back within them.
        if running < self.config.min_replicas || running > self.config.max_replicas {
            self.up_since = None;
            self.down_since = None;
            return running.clamp(self.config.min_replicas, self.config.max_replicas);
        }
        // A cold start: requests wait for a deployment with no replica.
        if running == 0 && load > 0 {
            self.up_since = None;
            self.down_since = None;
            return wanted.max(1);
        }
        if wanted > running {
            self.down_since = None;
            let since = *self.up_since.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= self.config.upscale_delay_ms {
                self.up_since = None;
                return wanted;
            }
        } else if wanted < running {
            self.up_since = None;
            let since = *self.down_since.get_or_insert(now_ms);
            if now_ms.saturating_sub(since) >= self.config.downscale_delay_ms {
                self.down_since = None;
                return wanted;
            }
        } else {
            self.up_since = None;
            self.down_since = None;
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min: u32, max: u32, up: u64, down: u64) -> AutoscalingConfig {
        AutoscalingConfig {
            min_replicas: min,
            max_replicas: max,
            target_ongoing_requests: 2.0,
            upscale_delay_ms: up,
            downscale_delay_ms: down,
        }
    }

    #[test]
    fn bad_configs_are_refused_saying_why() {
        assert_eq!(
            config(3, 2, 0, 0).check(),
            Err(AutoscalingError::MinAboveMax { min: 3, max: 2 })
        );
        assert_eq!(
            config(0, 0, 0, 0).check(),
            Err(AutoscalingError::NoReplicas)
        );
        let mut c = config(1, 2, 0, 0);
        c.target_ongoing_requests = 0.0;
        assert_eq!(c.check(), Err(AutoscalingError::BadTarget(0.0)));
    }

    #[test]
    fn the_replicas_wanted_follow_the_load_within_bounds() {
        let c = config(1, 5, 0, 0);
        assert_eq!(c.wanted(0), 1);
        assert_eq!(c.wanted(2), 1);
        assert_eq!(c.wanted(3), 2);
        assert_eq!(c.wanted(8), 4);
        assert_eq!(c.wanted(1000), 5);
        assert_eq!(config(0, 5, 0, 0).wanted(0), 0);
    }

    #[test]
    fn scaling_up_waits_for_load_sustained_over_the_delay() {
        let mut a = Autoscaler::new(config(1, 10, 1_000, 5_000)).unwrap();
        assert_eq!(a.decide(0, 1, 8), 1); // wanted 4 from t = 0
        assert_eq!(a.decide(500, 1, 8), 1);
        // The load dips: the clock starts again.
        assert_eq!(a.decide(700, 1, 2), 1);
        assert_eq!(a.decide(800, 1, 10), 1);
        assert_eq!(a.decide(1_700, 1, 10), 1);
        assert_eq!(a.decide(1_800, 1, 10), 5);
    }

    #[test]
    fn scaling_down_waits_longer_and_stops_at_the_minimum() {
        let mut a = Autoscaler::new(config(2, 10, 1_000, 5_000)).unwrap();
        assert_eq!(a.decide(0, 6, 0), 6);
        assert_eq!(a.decide(4_999, 6, 0), 6);
        assert_eq!(a.decide(5_000, 6, 0), 2);
        assert_eq!(a.decide(6_000, 2, 0), 2);
    }

    #[test]
    fn a_deployment_scaled_to_zero_starts_one_replica_at_once_for_a_request() {
        let mut a = Autoscaler::new(config(0, 4, 30_000, 1_000)).unwrap();
        assert_eq!(a.decide(0, 1, 0), 1);
        assert_eq!(a.decide(1_000, 1, 0), 0);
        assert_eq!(a.decide(2_000, 0, 0), 0);
        assert_eq!(
            a.decide(2_001, 0, 1),
            1,
            "no upscale delay for a cold start"
        );
        assert_eq!(a.decide(2_002, 1, 7), 1, "but the usual delay after it");
    }

    #[test]
    fn replicas_outside_the_bounds_go_back_within_them_at_once() {
        let mut a = Autoscaler::new(config(2, 3, 1_000, 1_000)).unwrap();
        assert_eq!(a.decide(0, 0, 0), 2);
        assert_eq!(a.decide(0, 9, 100), 3);
    }

    /// Scripted load: a ramp up, a plateau, a drop; replicas follow with the delays, never
    /// beyond the bounds, and end at the minimum.
    #[test]
    fn replicas_follow_a_scripted_load() {
        let mut a = Autoscaler::new(config(1, 6, 2_000, 4_000)).unwrap();
        let mut running = 1;
        let mut history = Vec::new();
        for second in 0..40u64 {
            let load = match second {
                0..5 => 1,
                5..20 => 20,
                _ => 0,
            };
            running = a.decide(second * 1_000, running, load);
            assert!((1..=6).contains(&running));
            history.push(running);
        }
        // Up two seconds after the load rose (t = 7), down four after it fell (t = 24).
        assert_eq!(&history[..7], &[1; 7]);
        assert_eq!(history[7], 6);
        assert_eq!(&history[7..24], &[6; 17]);
        assert_eq!(&history[24..], &[1; 16]);
    }
}
