//! Running an actor's calls: a slot drains the call queue in order, on a worker thread for a
//! blocking actor or as a future on the runtime thread for an async one, and stores each
//! result; a panic fails the actor at once.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::call::{CallOutcome, ErasedCall};
use super::core::{ActorCore, Call};
use super::host::{Crashed, RunSlot};
use crate::base::call_queue::{Phase, Take};
use crate::base::error::{GetError, TaskError, TaskErrorKind};
use crate::base::id::{ObjectId, TaskId};
use crate::base::rows::TaskState;
use crate::object::table::CancelProbe;
use crate::runtime::actor::handle::ActorClass;
use crate::runtime::context::{self, TaskContext};

/// Calls a blocking slot runs before it gives its thread back to the pool (and queues itself
/// again), so that busy actors share the pool fairly.
const SLOT_BATCH: usize = 256;

impl<A: ActorClass> ActorCore<A> {
    /// Starts a slot of `generation`: a worker draining the queue (blocking actor) or a
    /// future on the runtime thread (async actor).
    pub fn start_slot(self: &Arc<Self>, generation: u64) {
        if self.settings.is_async {
            if let Some(host) = self.host.get() {
                host.do_send(RunSlot(generation));
            }
            return;
        }
        let core = Arc::clone(self);
        if let Err(reason) = self.pool.execute(Box::new(move || core.drain(generation))) {
            tracing::error!(actor = %self.label, %reason, "cannot run the actor's calls");
        }
    }

    /// A blocking slot: runs queued calls in order on this worker thread.
    fn drain(self: Arc<Self>, generation: u64) {
        let Some(state) = self.state() else {
            self.queue().release_slot(generation);
            return;
        };
        for _ in 0..SLOT_BATCH {
            let next = self.queue().take(generation);
            match next {
                Take::Stop => return,
                Take::Terminate(rest) => return self.terminated(rest),
                Take::Run(call) => {
                    if !self.wanted(&*call) {
                        self.queue().done(generation);
                        self.call_ended(call.id(), TaskState::Cancelled, None);
                        continue;
                    }
                    self.live_calls.started(
                        &self.directory.calls.clock,
                        call.id(),
                        call.attempt(),
                        call.return_id(),
                    );
                    let task = self.task_context(&*call);
                    let outcome = context::with_task(&task, || call.run_blocking(&state));
                    if self.complete(generation, call, outcome) {
                        return;
                    }
                }
            }
        }
        let core = Arc::clone(&self);
        if self
            .pool
            .execute(Box::new(move || core.drain(generation)))
            .is_err()
        {
            self.queue().release_slot(generation);
        }
    }

    /// An async slot: the same loop, awaiting each call on the runtime thread.
    pub async fn drain_async(self: Arc<Self>, generation: u64) {
        let Some(state) = self.state() else {
            self.queue().release_slot(generation);
            return;
        };
        loop {
            let next = self.queue().take(generation);
            match next {
                Take::Stop => return,
                Take::Terminate(rest) => return self.terminated(rest),
                Take::Run(call) => {
                    if !self.wanted(&*call) {
                        self.queue().done(generation);
                        self.call_ended(call.id(), TaskState::Cancelled, None);
                        continue;
                    }
                    self.live_calls.started(
                        &self.directory.calls.clock,
                        call.id(),
                        call.attempt(),
                        call.return_id(),
                    );
                    let task = self.task_context(&*call);
                    let body = context::WithTask {
                        task,
                        inner: Box::pin(call.run_async(Arc::clone(&state))),
                    };
                    let guarded = crate::runtime::panic::CatchPanic {
                        inner: Box::pin(body),
                    };
                    // If the host stops (a kill) while the call runs, this future is dropped:
                    // the call's result then says why.
                    let mut unfinished = Unfinished {
                        core: &*self,
                        id: call.id(),
                        return_id: call.return_id(),
                        armed: true,
                    };
                    let outcome = guarded.await.unwrap_or_else(CallOutcome::Panicked);
                    unfinished.armed = false;
                    if self.complete(generation, call, outcome) {
                        return;
                    }
                }
            }
        }
    }

    /// A cancelled call (its result already failed) is skipped. A call whose every ref was
    /// dropped still runs, for its effects (Ray's fire-and-forget `actor.method.remote()`):
    /// its result is let go.
    fn wanted(&self, call: &dyn ErasedCall<A>) -> bool {
        !matches!(self.store.cancel_probe(call.return_id()), CancelProbe::Done)
    }

    /// The context a run of the constructor sees: the actor's, under a task id of its own.
    pub fn constructor_context(&self) -> Arc<TaskContext> {
        self.context(self.ids.task(), A::CLASS, 1)
    }

    fn task_context(&self, call: &dyn ErasedCall<A>) -> Arc<TaskContext> {
        self.context(call.id(), call.label(), call.attempt())
    }

    fn context(&self, task_id: TaskId, function: &'static str, attempt: u32) -> Arc<TaskContext> {
        Arc::new(TaskContext {
            task_id,
            node_id: self.node_id,
            function,
            actor_id: Some(self.id),
            attempt,
            log_to: self.settings.log_to.unwrap_or(self.node_id),
            gpu_ids: self
                .gpu_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            cancelled: Arc::new(AtomicBool::new(false)),
            waits: Default::default(),
        })
    }

    /// Stores a call's outcome. Returns true when the slot must stop: the call panicked (the
    /// actor is failing) or the actor failed while the call ran.
    fn complete(&self, generation: u64, call: Call<A>, outcome: CallOutcome) -> bool {
        let panicked = matches!(outcome, CallOutcome::Panicked(_));
        let (current, phase, in_flight) = {
            let mut q = self.queue();
            q.done(generation);
            let current = q.generation();
            // A panic fails the actor at once, under the queue's lock: a call made after the
            // caller sees this call's error waits for the restart instead of being caught in
            // the failure.
            let in_flight = (panicked && current == generation).then(|| q.crash());
            (current, q.phase().clone(), in_flight)
        };
        let return_id = call.return_id();
        if current != generation {
            // The actor failed or was killed while this call ran: its result is void.
            let err = match phase {
                Phase::Dead(cause) => self.died(&cause),
                _ => GetError::ActorRestarting {
                    actor: self.label.clone(),
                    cause: "the actor failed while this call ran".into(),
                },
            };
            self.fail_call(call.id(), return_id, err);
            return true;
        }
        let task_error = |kind, message| {
            GetError::Task(TaskError {
                function: call.label().to_string(),
                task_id: call.id(),
                node_id: self.node_id,
                kind,
                message,
                attempts: call.attempt(),
            })
        };
        match outcome {
            CallOutcome::Value(v) => {
                self.store.seal(return_id, v);
                self.call_ended(call.id(), TaskState::Finished, None);
            }
            CallOutcome::Failed(message) => {
                self.fail_call(
                    call.id(),
                    return_id,
                    task_error(TaskErrorKind::Failed, message),
                );
            }
            CallOutcome::DepFailed(err) => {
                self.fail_call(call.id(), return_id, err);
            }
            CallOutcome::Panicked(message) => {
                let cause = format!("`{}` panicked: {message}", call.label());
                if let Some(host) = self.host.get() {
                    host.do_send(Crashed {
                        cause,
                        in_flight: in_flight.unwrap_or_default(),
                    });
                }
                self.fail_call(
                    call.id(),
                    return_id,
                    task_error(TaskErrorKind::Panicked, message),
                );
                return true;
            }
        }
        false
    }
}

/// Fails a call's result if its future is dropped before the call ends.
struct Unfinished<'a, A: ActorClass> {
    core: &'a ActorCore<A>,
    id: TaskId,
    return_id: ObjectId,
    armed: bool,
}

impl<A: ActorClass> Drop for Unfinished<'_, A> {
    fn drop(&mut self) {
        if self.armed {
            let err = self.core.died("it stopped while this call ran");
            self.core.fail_call(self.id, self.return_id, err);
        }
    }
}
