//! Refs made before their value has a producer: a library above the runtime (Serve's
//! handles holding a call while a deployment has no replica) hands out a ref at once and
//! fulfils it later, from a future it runs on the node.

use std::future::Future;
use std::marker::PhantomData;

use crate::base::error::GetError;
use crate::base::id::{ObjectId, TaskId};
use crate::base::value::Value;
use crate::object::store::Store;
use crate::object::table::Producer;
use crate::object::value::StoredValue;
use crate::runtime::global;
use crate::runtime::object_ref::ObjectRef;

/// The right to settle one pending ref. Dropped unsettled, the ref fails with `ObjectLost`.
pub struct Promise<T> {
    slot: Option<(ObjectId, Store)>,
    what: &'static str,
    _marker: PhantomData<fn(T)>,
}

/// A pending ref in this node's store and the promise that settles it; `what` names the
/// producer in errors and the state API. Without a runtime, the ref says so when got.
pub fn promise<T: Value>(what: &'static str) -> (ObjectRef<T>, Promise<T>) {
    let made = global::with_runtime(|rt| {
        let id = rt.ids.object();
        rt.store.create_pending(
            id,
            Producer {
                task: TaskId::NIL,
                function: what,
            },
        );
        (
            ObjectRef::adopt(id, rt.store.clone()),
            (id, rt.store.clone()),
        )
    });
    match made {
        Some((r, slot)) => (
            r,
            Promise {
                slot: Some(slot),
                what,
                _marker: PhantomData,
            },
        ),
        None => (
            ObjectRef::detached(),
            Promise {
                slot: None,
                what,
                _marker: PhantomData,
            },
        ),
    }
}

impl<T: Value> Promise<T> {
    /// Settles the ref with a value shared with another object (no copy), or an error.
    pub fn settle_shared(mut self, result: Result<std::sync::Arc<T>, GetError>) {
        if let Some((id, store)) = self.slot.take() {
            match result {
                Ok(value) => {
                    let size = crate::object::size::estimate(&*value);
                    store.seal(id, StoredValue::from_arc(value, size));
                }
                Err(e) => {
                    store.fail(id, e);
                }
            }
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some((id, store)) = self.slot.take() {
            store.fail(
                id,
                GetError::ObjectLost {
                    object_id: id,
                    reason: format!("{} ended without a value", self.what),
                },
            );
        }
    }
}

/// Runs `future` on this node's event loop; false when no runtime runs (the future is
/// dropped).
pub fn spawn<F>(future: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    global::with_runtime(move |rt| rt.node_arbiter.spawn(future)).unwrap_or(false)
}
