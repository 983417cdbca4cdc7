//! An actor's calls ending and the actor's own end: failing a call, terminating after the
//! queued calls, killing at once, and the last handle going.

use std::sync::Arc;

use super::core::{ActorCore, Call};
use super::host::{Kill, NoHandles, Stopped};
use crate::base::call_queue::{Phase, Push};
use crate::base::error::GetError;
use crate::base::id::{ObjectId, TaskId};
use crate::base::rows::TaskState;
use crate::runtime::actor::handle::ActorClass;

impl<A: ActorClass> ActorCore<A> {
    /// Fails call `id`'s result with `err`, and lists the call as failed.
    pub fn fail_call(&self, id: TaskId, return_id: ObjectId, err: GetError) {
        let message = err.to_string();
        self.store.fail(return_id, err);
        self.call_ended(id, TaskState::Failed, Some(message));
    }

    /// Call `id` ended: it moves from the actor's live calls to the node's ended ones.
    pub fn call_ended(&self, id: TaskId, state: TaskState, error: Option<String>) {
        if let Some(log) = self.live_calls.take(id) {
            self.directory.calls.ended(log, state, error);
        }
    }

    /// A slot reached a terminate marker: the actor is dead; later calls fail.
    pub(super) fn terminated(&self, rest: Vec<Call<A>>) {
        let err = self.died("it was terminated");
        for call in rest {
            self.fail_call(call.id(), call.return_id(), err.clone());
        }
        if let Some(host) = self.host.get() {
            host.do_send(Stopped);
        }
    }

    pub fn terminate(self: &Arc<Self>) {
        let pushed = self.queue().push_terminate();
        if let Push::Queued {
            slot: Some(generation),
        } = pushed
        {
            self.start_slot(generation);
        }
    }

    /// Kills the actor. For good, it takes effect at once: when this returns, every queued
    /// and later call fails; the host then releases what the actor held.
    pub fn kill(&self, allow_restart: bool) {
        if !allow_restart {
            let cause = "it was killed with mobula::kill";
            let queued = {
                let mut queue = self.queue();
                if matches!(queue.phase(), Phase::Dead(_)) {
                    return;
                }
                queue.die(cause.into())
            };
            let err = self.died(cause);
            for call in queued {
                self.fail_call(call.id(), call.return_id(), err.clone());
            }
        }
        if let Some(host) = self.host.get() {
            host.do_send(Kill { allow_restart });
        }
    }

    /// One handle fewer.
    pub fn release_handle(&self) {
        self.directory.release(self.id);
    }

    /// The last handle is gone: stop after the pending calls (Ray's reference counting of
    /// actor handles).
    pub fn no_handles(&self) {
        if let Some(host) = self.host.get() {
            host.do_send(NoHandles);
        }
    }
}
