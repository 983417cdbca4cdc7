//! The actor host: an actix actor that owns one user actor's lifecycle.
//!
//! It asks the scheduler for the actor's resources, runs the constructor (on a worker, since
//! constructors may block), and supervises: when a call panics or the actor is killed with
//! restarts allowed, it runs the constructor again (the state is reset, as in Ray) up to
//! `max_restarts`, retrying the calls that were in flight up to `max_task_retries`; past the
//! budget it marks the actor dead, so every call fails at once with the cause. Async actors'
//! calls run as futures in the host's context, so stopping the host drops them.

use std::sync::Arc;

use actix::prelude::*;

use super::core::{ActorCore, Call};
use crate::base::call_queue::Phase;
use crate::base::error::GetError;
use crate::base::id::TaskId;
use crate::runtime::actor::handle::ActorClass;
use crate::runtime::context::with_task;
use crate::runtime::panic;
use crate::runtime::scheduler::Scheduler;

/// Runs the actor's constructor (with the arguments it was created with).
pub(crate) type Constructor<A> = Arc<dyn Fn() -> Result<A, String> + Send + Sync>;

pub(crate) struct ActorHost<A: ActorClass> {
    core: Arc<ActorCore<A>>,
    construct: Constructor<A>,
    scheduler: Scheduler,
    /// The id under which the scheduler accounts the actor's resources.
    placement: TaskId,
    restarts: u32,
    /// Calls caught by a failure that run again once the actor is back.
    retrying: Vec<Call<A>>,
}

impl<A: ActorClass> ActorHost<A> {
    pub fn new(
        core: Arc<ActorCore<A>>,
        construct: Constructor<A>,
        scheduler: Scheduler,
        placement: TaskId,
    ) -> Self {
        ActorHost {
            core,
            construct,
            scheduler,
            placement,
            restarts: 0,
            retrying: Vec::new(),
        }
    }

    fn construct(&mut self, ctx: &mut Context<Self>) {
        let (core, construct, me) = (
            Arc::clone(&self.core),
            Arc::clone(&self.construct),
            ctx.address(),
        );
        let job = Box::new(move || {
            let context = core.constructor_context();
            let built = panic::catching(|| match with_task(&context, || construct()) {
                // After a restart the old state is replaced, and dropped here.
                Ok(actor) => {
                    drop(core.install_state(actor));
                    Ok(())
                }
                Err(e) => Err(e),
            });
            me.do_send(Constructed(
                built.unwrap_or_else(|p| Err(format!("panicked: {p}"))),
            ));
        });
        if let Err(reason) = self.core.pool.execute(job) {
            self.die(&format!("its constructor could not run: {reason}"), ctx);
        }
    }

    /// A failure (the queue already crashed, handing back `in_flight`): restart if the
    /// budget allows, else die.
    fn failure(&mut self, cause: String, in_flight: Vec<Call<A>>, ctx: &mut Context<Self>) {
        let settings = &self.core.settings;
        if !settings.max_restarts.allows(self.restarts) {
            let how = match settings.max_restarts {
                crate::base::scheduling::retry::Retries::Limited(0) => {
                    "it may not restart (max_restarts = 0)".to_string()
                }
                _ => format!(
                    "it was already restarted {} (max_restarts)",
                    crate::base::error::times(u64::from(self.restarts))
                ),
            };
            self.retrying.extend(in_flight);
            return self.die(&format!("{cause}; {how}"), ctx);
        }
        self.restarts += 1;
        self.core
            .restarts
            .store(self.restarts, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(actor = %self.core.label, restart = self.restarts, %cause, "restarting actor");
        for mut call in in_flight {
            if settings.max_task_retries.allows(call.attempt() - 1) {
                call.next_attempt();
                self.core.live_calls.requeued(call.id());
                self.retrying.push(call);
            } else {
                let err = GetError::ActorRestarting {
                    actor: self.core.label.clone(),
                    cause: cause.clone(),
                };
                self.core.fail_call(call.id(), call.return_id(), err);
            }
        }
        self.construct(ctx);
    }

    fn die(&mut self, cause: &str, ctx: &mut Context<Self>) {
        tracing::info!(actor = %self.core.label, %cause, "actor died");
        let err = self.core.died(cause);
        let queued = self.core.queue().die(cause.into());
        for call in queued.into_iter().chain(self.retrying.drain(..)) {
            self.core
                .fail_call(call.id(), call.return_id(), err.clone());
        }
        // Calls running now fail at once too, as when Ray kills the actor's process: a
        // blocking body cannot be stopped, and what it returns later is void.
        for (id, result) in self.core.live_calls.running() {
            self.core.fail_call(id, result, err.clone());
        }
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        // The state is dropped on a worker: its Drop is user code and may block or panic.
        if let Some(state) = self.core.drop_state() {
            let _ = self.core.pool.execute(Box::new(move || {
                let _ = panic::catching(move || drop(state));
            }));
        }
        self.scheduler.actor_gone(self.placement);
        self.core.directory.remove(self.core.id);
        ctx.stop();
    }

    fn spawn_slot(&mut self, generation: u64, ctx: &mut Context<Self>) {
        ctx.spawn(
            Arc::clone(&self.core)
                .drain_async(generation)
                .into_actor(self),
        );
    }
}

impl<A: ActorClass> Actor for ActorHost<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let settings = &self.core.settings;
        self.scheduler.place_actor(
            self.placement,
            &settings.place,
            &settings.hold,
            Box::new(move |placed| me.do_send(Placed(placed))),
        );
    }
}

/// The scheduler's answer: the actor's GPU ids, or why it can never be placed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Placed(pub Result<Vec<u32>, String>);

impl<A: ActorClass> Handler<Placed> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, Placed(placed): Placed, ctx: &mut Context<Self>) {
        match placed {
            Ok(gpu_ids) => {
                *self.core.gpu_ids.lock().unwrap_or_else(|e| e.into_inner()) = gpu_ids;
                self.construct(ctx);
            }
            Err(reason) => self.die(&format!("it can never be placed here: {reason}"), ctx),
        }
    }
}

/// The constructor ran.
#[derive(Message)]
#[rtype(result = "()")]
struct Constructed(Result<(), String>);

impl<A: ActorClass> Handler<Constructed> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, Constructed(built): Constructed, ctx: &mut Context<Self>) {
        if let Err(reason) = built {
            let in_flight = self.core.queue().crash();
            return self.failure(format!("its constructor failed: {reason}"), in_flight, ctx);
        }
        let retry = std::mem::take(&mut self.retrying);
        let (slots, generation) = self.core.queue().running(retry);
        for _ in 0..slots {
            if self.core.settings.is_async {
                self.spawn_slot(generation, ctx);
            } else {
                self.core.start_slot(generation);
            }
        }
    }
}

/// Start an async slot.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RunSlot(pub u64);

impl<A: ActorClass> Handler<RunSlot> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, RunSlot(generation): RunSlot, ctx: &mut Context<Self>) {
        self.spawn_slot(generation, ctx);
    }
}

/// A call panicked; the queue already crashed and these calls were in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Crashed<A: ActorClass> {
    pub cause: String,
    pub in_flight: Vec<Call<A>>,
}

impl<A: ActorClass> Handler<Crashed<A>> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, msg: Crashed<A>, ctx: &mut Context<Self>) {
        self.failure(msg.cause, msg.in_flight, ctx);
    }
}

/// `kill`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Kill {
    pub allow_restart: bool,
}

impl<A: ActorClass> Handler<Kill> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, msg: Kill, ctx: &mut Context<Self>) {
        if msg.allow_restart {
            // Only a running actor restarts; one already restarting just goes on.
            let in_flight = {
                let mut queue = self.core.queue();
                (*queue.phase() == Phase::Running).then(|| queue.crash())
            };
            if let Some(in_flight) = in_flight {
                self.failure(
                    "it was killed (with restart allowed)".into(),
                    in_flight,
                    ctx,
                );
            }
        } else {
            // The queue is already dead (see ActorCore::kill); what it was retrying fails too.
            self.die("it was killed with mobula::kill", ctx);
        }
    }
}

/// The last handle was dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct NoHandles;

impl<A: ActorClass> Handler<NoHandles> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, _: NoHandles, _: &mut Context<Self>) {
        self.core.terminate();
    }
}

/// A slot reached the terminate marker: the actor has stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stopped;

impl<A: ActorClass> Handler<Stopped> for ActorHost<A> {
    type Result = ();

    fn handle(&mut self, _: Stopped, ctx: &mut Context<Self>) {
        for call in self.retrying.drain(..) {
            self.core
                .store
                .fail(call.return_id(), self.core.died("it was terminated"));
        }
        self.finish(ctx);
    }
}
