//! Submitting a task: the hot path behind `f.remote(args...)`.
//!
//! Minting ids, registering the pending result and handing the task to the scheduler: no
//! lock beyond one shard of the object table, no serialization, one message.

use std::sync::Arc;

use super::global;
use super::task_spec::{TaskSpec, TypedTask};
use crate::api::object_ref::ObjectRef;
use crate::base::args::ArgList;
use crate::base::args::Params;
use crate::base::error::GetError;
use crate::base::function::RemoteFunction;
use crate::base::options::TaskOptions;
use crate::base::scheduling::placement::Placement;
use crate::cluster::remote;
use crate::cluster::remote::Outgoing;
use crate::object::table::Producer;

/// Submits a call of `F`; `options` are the builder's, or `None` for the attribute's.
pub fn submit<F: RemoteFunction>(
    options: Option<TaskOptions>,
    args: <F::Params as Params>::Args,
) -> ObjectRef<F::Output> {
    global::with_runtime(|rt| {
        let function = F::descriptor();
        let options = match options {
            None => Arc::clone(function.default_options()),
            Some(o) => Arc::new(o.resolve()),
        };
        let id = rt.ids.task();
        let return_id = rt.ids.object();
        let log_to = super::context::log_to().unwrap_or(rt.node_id);
        let mut deps = Vec::new();
        args.deps(&mut deps);
        if deps.len() > 1 {
            deps.sort_unstable();
            deps.dedup();
        }
        rt.store.create_pending(
            return_id,
            Producer {
                task: id,
                function: function.id,
            },
        );
        let result = ObjectRef::adopt(return_id, rt.store.clone());
        if let Some(cluster) = rt.cluster.get()
            && let Ok(request) = &options.request
        {
            let place = options.place_request.as_ref().unwrap_or(request);
            match cluster.place(place, options.strategy) {
                Placement::Local => {}
                Placement::Remote(target) => {
                    let out = Outgoing::<F> {
                        task: id,
                        result: return_id,
                        args,
                        options,
                        target,
                        log_to,
                    };
                    let (cluster, store) = (cluster.clone(), rt.store.clone());
                    rt.node_arbiter.spawn_fn(move || {
                        actix_rt::spawn(remote::send(cluster, store, out));
                    });
                    return result;
                }
                Placement::Infeasible(reason) => {
                    rt.store.fail(
                        return_id,
                        GetError::Unschedulable {
                            function: function.id.to_string(),
                            task_id: id,
                            reason,
                        },
                    );
                    return result;
                }
            }
        }
        let spec = TaskSpec {
            id,
            return_id,
            function,
            options,
            deps,
            body: Box::new(TypedTask::<F> { args }),
            log_to,
        };
        if rt.store.is_closed() {
            rt.store.fail(
                return_id,
                GetError::ShutDown {
                    object_id: return_id,
                },
            );
        } else {
            rt.scheduler.submit(Arc::new(spec));
        }
        result
    })
    .unwrap_or_else(ObjectRef::detached)
}
