//! What the calling side of an actor channel decides when an answer comes or the hosting
//! node is lost: pure, so the driver loop (`owner`) only carries the decisions out.

use crate::base::error::TaskErrorKind;
use crate::base::scheduling::placement::SchedulingStrategy;
use crate::base::scheduling::retry::Retries;
use crate::wire::TaskOutcome;

/// How a call's answer settles its result.
#[derive(Debug, PartialEq)]
pub(super) enum Settled {
    /// The value, encoded: decode and seal it.
    Value(Vec<u8>),
    /// The call failed with this kind and message.
    Failed(TaskErrorKind, String),
    /// The actor died under the call.
    ActorDied(String),
}

/// What an answer means for its call.
pub(super) fn settle(outcome: TaskOutcome) -> Settled {
    match outcome {
        TaskOutcome::Value(bytes) => Settled::Value(bytes),
        TaskOutcome::Failed { kind, message } => Settled::Failed(kind, message),
        TaskOutcome::ActorDied(cause) => Settled::ActorDied(cause),
        TaskOutcome::DepFailed(message) | TaskOutcome::Refused(message) => {
            Settled::Failed(TaskErrorKind::Failed, message)
        }
        TaskOutcome::Streamed { .. } | TaskOutcome::Held { .. } => Settled::Failed(
            TaskErrorKind::ResultRejected,
            "a large result arrived without its payload".into(),
        ),
        TaskOutcome::Moved(node) => Settled::Failed(
            TaskErrorKind::ResultRejected,
            format!("an actor call was answered as a task passed on to node {node}"),
        ),
    }
}

/// What the owner does when its actor's node is lost.
#[derive(Debug, PartialEq)]
pub(super) enum AfterLoss {
    /// Create the actor again, placed with this strategy.
    Restart(SchedulingStrategy),
    /// The actor is dead, for this reason.
    Die(String),
}

/// The owner's choice after a loss: restart while `max_restarts` allows (`restarts` used so
/// far), anywhere the cluster can place it (a node affinity pointed at the lost node).
pub(super) fn after_loss(
    max_restarts: Retries,
    restarts: u32,
    strategy: SchedulingStrategy,
) -> AfterLoss {
    if !max_restarts.allows(restarts) {
        return AfterLoss::Die(format!("no restarts left ({restarts} used)"));
    }
    AfterLoss::Restart(match strategy {
        SchedulingStrategy::NodeAffinity { .. } => SchedulingStrategy::Default,
        s => s,
    })
}

/// Whether a call caught by a loss after `attempts` attempts is sent again to the
/// restarted actor (`max_task_retries`).
pub(super) fn resend(max_task_retries: Retries, attempts: u32) -> bool {
    max_task_retries.allows(attempts.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::NodeId;

    #[test]
    fn restarts_are_counted_and_affinity_to_the_lost_node_is_dropped() {
        let pinned = SchedulingStrategy::NodeAffinity {
            node: NodeId::random(),
            soft: false,
        };
        assert_eq!(
            after_loss(Retries::Limited(1), 0, pinned),
            AfterLoss::Restart(SchedulingStrategy::Default)
        );
        assert_eq!(
            after_loss(Retries::Limited(1), 1, SchedulingStrategy::Spread),
            AfterLoss::Die("no restarts left (1 used)".into())
        );
        assert_eq!(
            after_loss(Retries::Unlimited, 1000, SchedulingStrategy::Spread),
            AfterLoss::Restart(SchedulingStrategy::Spread)
        );
    }

    #[test]
    fn a_caught_call_is_resent_while_its_retries_allow() {
        assert!(!resend(Retries::Limited(0), 1));
        assert!(resend(Retries::Limited(1), 1));
        assert!(!resend(Retries::Limited(1), 2));
        assert!(resend(Retries::Unlimited, 50));
    }

    #[test]
    fn answers_settle_as_values_errors_or_a_dead_actor() {
        assert_eq!(settle(TaskOutcome::Value(vec![1])), Settled::Value(vec![1]));
        assert_eq!(
            settle(TaskOutcome::Refused("no".into())),
            Settled::Failed(TaskErrorKind::Failed, "no".into())
        );
        assert_eq!(
            settle(TaskOutcome::ActorDied("gone".into())),
            Settled::ActorDied("gone".into())
        );
    }
}
