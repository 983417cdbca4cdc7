//! `num_returns` (Ray's `@ray.remote(num_returns=N)`): a task that returns a tuple gives one
//! ref per element. Each is an object of its own in this node's store, made when the
//! tuple's value arrives (wherever the task ran) and freed with its last ref; if the task
//! fails, every one of them fails with its error.

use crate::base::id::{ObjectId, TaskId};
use crate::base::value::Value;
use crate::object::table::Producer;
use crate::object::value::StoredValue;
use crate::runtime::global;
use crate::runtime::object_ref::ObjectRef;

/// A ref to a tuple, split into a ref per element: `let (a, b) = r.split();`.
pub trait Split {
    /// One ref per element.
    type Refs;
    /// The refs, at once; each is ready when the tuple is.
    fn split(self) -> Self::Refs;
}

/// New pending objects in this node's store, made by the task behind the split.
fn pending<const N: usize>(rt: &crate::runtime::global::Runtime) -> [ObjectId; N] {
    std::array::from_fn(|_| {
        let id = rt.ids.object();
        let producer = Producer {
            task: TaskId::NIL,
            function: "num_returns",
        };
        rt.store.create_pending(id, producer);
        id
    })
}

macro_rules! split_tuple {
    ($n:literal; $($t:ident $i:tt),+) => {
        impl<$($t: Value),+> Split for ObjectRef<($($t,)+)> {
            type Refs = ($(ObjectRef<$t>,)+);

            fn split(self) -> Self::Refs {
                let made = global::with_runtime(|rt| {
                    let ids: [ObjectId; $n] = pending::<$n>(rt);
                    let refs = ($(ObjectRef::<$t>::adopt(ids[$i], rt.store.clone()),)+);
                    let store = rt.store.clone();
                    let whole = self;
                    rt.node_arbiter.spawn_fn(move || {
                        actix_rt::spawn(async move {
                            match whole.get_shared().await {
                                Ok(value) => {
                                    $(store.seal(ids[$i], StoredValue::new(value.$i.clone()));)+
                                }
                                Err(e) => {
                                    for id in ids {
                                        store.fail(id, e.clone());
                                    }
                                }
                            }
                        });
                    });
                    refs
                });
                made.unwrap_or_else(|| ($(ObjectRef::<$t>::detached(),)+))
            }
        }
    };
}

split_tuple!(2; A 0, B 1);
split_tuple!(3; A 0, B 1, C 2);
split_tuple!(4; A 0, B 1, C 2, D 3);
split_tuple!(5; A 0, B 1, C 2, D 3, E 4);
split_tuple!(6; A 0, B 1, C 2, D 3, E 4, F 5);
