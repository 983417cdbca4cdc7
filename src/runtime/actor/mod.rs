//! User actors: a host actor per actor owns its lifecycle; calls go through a shared queue.
//!
//! - [`call`]: one method call, type-erased.
//! - [`core`]: what all handles of an actor share, and queueing a call.
//! - [`runner`]: the slots that run calls; [`lifecycle`]: calls and the actor ending.
//! - [`sink`]: where a handle's calls go (here, another node, nowhere), as one trait.
//! - [`host`]: the actix actor that places, constructs, restarts and stops the actor.
//! - [`directory`]: the node's actors, their names and handle counts.
//! - [`calls`]: method calls as the state API lists them.

pub(crate) mod call;
pub(crate) mod calls;
pub(crate) mod core;
pub(crate) mod directory;
pub(crate) mod handle;
pub(crate) mod host;
pub(crate) mod lifecycle;
pub(crate) mod runner;
pub(crate) mod sink;

use std::borrow::Cow;
use std::sync::Arc;

use actix::Actor;

use self::core::ActorCore;
use self::directory::Named;
use self::host::ActorHost;
use crate::base::args::{ArgList, Params};
use crate::base::error::ActorError;
use crate::base::id::{ActorId, NodeId, TaskId};
use crate::base::options::ActorOptions;
use crate::base::scheduling::placement::Placement;
use crate::runtime::actor::handle::{ActorClass, ActorHandle};
use crate::runtime::cluster_port::{ClusterPort, encoder};
use crate::runtime::global::{self, Runtime};
use crate::runtime::hosted::ActorMethods;
use crate::runtime::submit::where_to_run;
use crate::wire::Message;

/// Creates an actor of class `A`: on this node, or in a cluster where its scheduling
/// strategy places it.
pub(crate) fn spawn<A: ActorMethods>(
    options: &ActorOptions,
    args: <A::Params as Params>::Args,
) -> Result<ActorHandle<A>, ActorError> {
    spawn_as::<A>(options, args, None)
}

/// [`spawn`] under a given id (an actor another node asked this one to host).
pub(crate) fn spawn_as<A: ActorMethods>(
    options: &ActorOptions,
    args: <A::Params as Params>::Args,
    id: Option<ActorId>,
) -> Result<ActorHandle<A>, ActorError> {
    global::with_runtime(|rt| spawn_on::<A>(rt, options, args, id))
        .unwrap_or(Err(ActorError::NotInitialized))
}

fn spawn_on<A: ActorMethods>(
    rt: &Runtime,
    options: &ActorOptions,
    args: <A::Params as Params>::Args,
    id: Option<ActorId>,
) -> Result<ActorHandle<A>, ActorError> {
    let mut settings = options
        .resolve(A::ASYNC)
        .map_err(|reason| ActorError::InvalidOptions {
            class: A::CLASS.to_string(),
            reason,
        })?;
    settings.log_to = Some(super::context::log_to().unwrap_or(rt.node_id));
    // Created here for another node's owner, which placed and named it already.
    let for_owner = id.is_some();
    let id = id.unwrap_or_else(|| rt.ids.actor());
    if let Some(cluster) = rt.cluster.get()
        && !for_owner
    {
        let target = match where_to_run(rt, &settings.place, options.strategy()) {
            Placement::Local => rt.node_id,
            Placement::Remote(target) => target,
            Placement::Infeasible(reason) => {
                return Err(ActorError::Unschedulable {
                    class: A::CLASS.to_string(),
                    reason: reason.replace("this task", "this actor"),
                });
            }
            Placement::Wait(_) => {
                let what = format!("actor {id} ({})", A::CLASS);
                Arc::clone(cluster)
                    .wait_to_place_blocking(rt, &settings.place, options.strategy(), what)
                    .map_err(|reason| ActorError::Unschedulable {
                        class: A::CLASS.to_string(),
                        reason: reason.replace("this task", "this actor"),
                    })?
            }
        };
        if let Some((namespace, name)) = &settings.name
            && let Some(existing) = claim_name::<A>(
                rt,
                cluster,
                namespace,
                name,
                id,
                target,
                settings.get_if_exists,
            )?
        {
            return Ok(existing);
        }
        if target != rt.node_id {
            let function = Cow::Owned(format!("{}.new", A::CLASS));
            let ctor = encoder(args, function, TaskId::NIL, target);
            let remote =
                Arc::clone(cluster).create_actor(rt, A::CLASS, options, settings, ctor, id, target);
            return Ok(ActorHandle::remote(remote));
        }
    }
    let name = settings.name.clone();
    let share = settings.get_if_exists;
    let core = Arc::new(ActorCore::<A>::new(
        id,
        settings,
        rt.node_id,
        rt.store.clone(),
        rt.actor_pool.clone(),
        Arc::clone(&rt.ids),
        Arc::clone(&rt.actors),
    ));
    let on_last: Option<directory::OnLast> = if core.settings.detached {
        None
    } else {
        let weak = Arc::downgrade(&core);
        Some(Arc::new(move || {
            if let Some(core) = weak.upgrade() {
                core.no_handles();
            }
        }))
    };
    if let Err(Named::Found {
        class,
        core: existing,
    }) = rt.actors.register(
        id,
        A::CLASS,
        name.clone(),
        Arc::clone(&core) as _,
        on_last,
        share,
    ) {
        let (namespace, name) = name.unwrap_or_default();
        if !share {
            return Err(ActorError::NameTaken {
                name,
                namespace,
                class: class.to_string(),
            });
        }
        return match existing.downcast::<ActorCore<A>>() {
            Ok(existing) if class == A::CLASS => Ok(ActorHandle::adopt(existing)),
            _ => Err(ActorError::WrongClass {
                name,
                namespace,
                expected: A::CLASS.to_string(),
                found: class.to_string(),
            }),
        };
    }
    let construct: host::Constructor<A> = Arc::new(move || {
        let args = args
            .resolve_blocking()
            .map_err(|e| format!("an argument of the constructor failed: {e}"))?;
        A::construct(args).map_err(|e| e.0)
    });
    let placement = rt.ids.task();
    let host_core = Arc::clone(&core);
    let scheduler = rt.scheduler.clone();
    let host = ActorHost::start_in_arbiter(&rt.node_arbiter, move |_| {
        ActorHost::new(host_core, construct, scheduler, placement)
    });
    let _ = core.host.set(host);
    Ok(ActorHandle::adopt(core))
}

/// Takes `name` for actor `id` on the head, cluster-wide. `Ok(Some(handle))` when another
/// actor holds it and `share` (get_if_exists) asks for that one; an error when it is taken
/// otherwise, or when the head does not record it (it did not come back in time, or could
/// not make the name durable): then no actor is made.
fn claim_name<A: ActorMethods>(
    rt: &Runtime,
    cluster: &Arc<dyn ClusterPort>,
    namespace: &str,
    name: &str,
    id: ActorId,
    target: NodeId,
    share: bool,
) -> Result<Option<ActorHandle<A>>, ActorError> {
    let message = Message::NameActor {
        namespace: namespace.to_string(),
        name: name.to_string(),
        class: A::CLASS.to_string(),
        actor: id,
        node: target,
    };
    match Arc::clone(cluster).ask_head_blocking(&rt.node_arbiter, message) {
        Ok(Message::Ack) => Ok(None),
        Ok(Message::ActorFound { actor, class, node }) => {
            if !share {
                return Err(ActorError::NameTaken {
                    name: name.into(),
                    namespace: namespace.into(),
                    class,
                });
            }
            found::<A>(rt, cluster, namespace, name, actor, &class, node).map(Some)
        }
        Ok(other) => Err(ActorError::NameNotTaken {
            name: name.into(),
            namespace: namespace.into(),
            reason: match other {
                Message::Refused { reason } => format!("the head refused: {reason}"),
                other => format!("the head answered {}", other.name()),
            },
        }),
        Err(reason) => Err(ActorError::NameNotTaken {
            name: name.into(),
            namespace: namespace.into(),
            reason,
        }),
    }
}

/// A handle to a named actor the head knows of.
fn found<A: ActorMethods>(
    rt: &Runtime,
    cluster: &Arc<dyn ClusterPort>,
    namespace: &str,
    name: &str,
    actor: ActorId,
    class: &str,
    node: NodeId,
) -> Result<ActorHandle<A>, ActorError> {
    if class != A::CLASS {
        return Err(ActorError::WrongClass {
            name: name.into(),
            namespace: namespace.into(),
            expected: A::CLASS.to_string(),
            found: class.to_string(),
        });
    }
    if node == rt.node_id {
        return lookup::<A>(rt, namespace, name);
    }
    Ok(ActorHandle::remote(Arc::clone(cluster).attach_actor(
        rt,
        actor,
        A::CLASS,
        node,
    )))
}

/// The named actor, as a handle of class `A`: on this node, else (in a cluster) wherever
/// the head says it runs.
pub(crate) fn find<A: ActorMethods>(
    rt: &Runtime,
    namespace: &str,
    name: &str,
) -> Result<ActorHandle<A>, ActorError> {
    let local = lookup::<A>(rt, namespace, name);
    let Some(cluster) = rt.cluster.get() else {
        return local;
    };
    if !matches!(local, Err(ActorError::NotFound { .. })) {
        return local;
    }
    let message = Message::FindActor {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    match Arc::clone(cluster).ask_head_blocking(&rt.node_arbiter, message) {
        Ok(Message::ActorFound { actor, class, node }) => {
            found::<A>(rt, cluster, namespace, name, actor, &class, node)
        }
        _ => local,
    }
}

/// The named actor on this node, as a handle of class `A`.
pub(crate) fn lookup<A: ActorClass>(
    rt: &Runtime,
    namespace: &str,
    name: &str,
) -> Result<ActorHandle<A>, ActorError> {
    match rt.actors.named(namespace, name, A::CLASS) {
        Named::Missing => Err(ActorError::NotFound {
            name: name.into(),
            namespace: namespace.into(),
        }),
        Named::Found { class, core } => match core.downcast::<ActorCore<A>>() {
            Ok(core) if class == A::CLASS => Ok(ActorHandle::adopt(core)),
            _ => Err(ActorError::WrongClass {
                name: name.into(),
                namespace: namespace.into(),
                expected: A::CLASS.to_string(),
                found: class.to_string(),
            }),
        },
    }
}
