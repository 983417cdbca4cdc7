//! Whether a failed task runs again: pure.
//!
//! Ray's rule: a task lost to a system failure (its worker died) is retried up to
//! `max_retries` times (3 by default, negative for no limit). An application error (in Rust: a
//! panic or an `Err`) is retried only when `retry_exceptions` is set, from the same budget.

use crate::base::error::TaskErrorKind;

/// How many times a task may run again after failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retries {
    Limited(u32),
    Unlimited,
}

impl Retries {
    /// Whether one more is allowed after `used`.
    pub fn allows(self, used: u32) -> bool {
        match self {
            Retries::Unlimited => true,
            Retries::Limited(max) => used < max,
        }
    }

    /// Ray's convention: a negative count means no limit.
    pub fn from_ray(n: i64) -> Self {
        if n < 0 {
            Retries::Unlimited
        } else {
            Retries::Limited(n.min(u32::MAX as i64) as u32)
        }
    }
}

/// A task's retry options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    pub max_retries: Retries,
    pub retry_exceptions: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: Retries::Limited(3),
            retry_exceptions: false,
        }
    }
}

impl RetryPolicy {
    /// Should the task run again, now that attempt number `attempt` (1-based) failed so?
    pub fn should_retry(&self, attempt: u32, kind: TaskErrorKind) -> bool {
        let eligible = match kind {
            TaskErrorKind::WorkerDied => true,
            TaskErrorKind::Panicked | TaskErrorKind::Failed => self.retry_exceptions,
            // The value could not be stored: running again makes the same value.
            TaskErrorKind::ResultRejected => false,
        };
        eligible && self.max_retries.allows(attempt.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_failures_are_retried_up_to_the_budget() {
        let p = RetryPolicy {
            max_retries: Retries::Limited(2),
            retry_exceptions: false,
        };
        assert!(p.should_retry(1, TaskErrorKind::WorkerDied));
        assert!(p.should_retry(2, TaskErrorKind::WorkerDied));
        assert!(
            !p.should_retry(3, TaskErrorKind::WorkerDied),
            "3 attempts = 1 + 2 retries"
        );
    }

    #[test]
    fn application_errors_need_retry_exceptions() {
        let p = RetryPolicy::default();
        assert!(!p.should_retry(1, TaskErrorKind::Panicked));
        assert!(!p.should_retry(1, TaskErrorKind::Failed));
        let p = RetryPolicy {
            retry_exceptions: true,
            ..p
        };
        assert!(p.should_retry(1, TaskErrorKind::Panicked));
        assert!(p.should_retry(3, TaskErrorKind::Failed));
        assert!(!p.should_retry(4, TaskErrorKind::Failed));
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        let p = RetryPolicy {
            max_retries: Retries::Limited(0),
            retry_exceptions: true,
        };
        assert!(!p.should_retry(1, TaskErrorKind::WorkerDied));
        assert!(!p.should_retry(1, TaskErrorKind::Panicked));
    }

    #[test]
    fn negative_means_unlimited() {
        let p = RetryPolicy {
            max_retries: Retries::from_ray(-1),
            retry_exceptions: false,
        };
        assert!(p.should_retry(1_000_000, TaskErrorKind::WorkerDied));
        assert_eq!(Retries::from_ray(5), Retries::Limited(5));
    }

    #[test]
    fn rejected_results_are_not_retried() {
        let p = RetryPolicy {
            max_retries: Retries::Unlimited,
            retry_exceptions: true,
        };
        assert!(!p.should_retry(1, TaskErrorKind::ResultRejected));
    }
}
