//! A placement group's bundles on this node: announced, reserved through the scheduler as a
//! placed actor would be, and given back. Used for the groups this node makes and for those
//! another node asks it to host.

use std::sync::Arc;

use super::Scheduler;
use crate::base::id::TaskId;
use crate::base::scheduling::bundles;
use crate::base::scheduling::resources::ResourceRequest;

/// One bundle to reserve on this node: its index, resources and reservation id.
pub(crate) type LocalBundle = (usize, ResourceRequest, TaskId);

/// Announces bundles' resources on this node, then reserves each; once reserved, its
/// resources become free for what is placed into it and `done` hears of it.
pub(crate) fn reserve_here(
    scheduler: &Scheduler,
    group: &str,
    bundles: &[LocalBundle],
    done: Arc<dyn Fn(usize, Result<(), String>) + Send + Sync>,
) {
    for (i, bundle, _) in bundles {
        scheduler.add_resources(&bundles::group_resources(group, *i, bundle), false);
    }
    for (i, bundle, reservation) in bundles {
        let (i, names, done) = (
            *i,
            bundles::group_resources(group, *i, bundle),
            done.clone(),
        );
        let freeing = scheduler.clone();
        scheduler.place_actor(
            *reservation,
            bundle,
            bundle,
            Box::new(move |placed| match placed {
                Ok(_) => {
                    freeing.add_resources(&names, true);
                    done(i, Ok(()));
                }
                Err(why) => done(i, Err(format!("bundle {i}: {why}"))),
            }),
        );
    }
}

/// Gives bundles reserved on this node back; what waits for them fails.
pub(crate) fn release_here(scheduler: &Scheduler, group: &str, bundles: &[LocalBundle]) {
    for (i, bundle, reservation) in bundles {
        scheduler.actor_gone(*reservation);
        // Announced totals go; what was freed (reserved bundles) goes with them.
        scheduler.remove_resources(&bundles::group_resources(group, *i, bundle));
    }
}
