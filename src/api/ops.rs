//! The free functions of the API: `put`, `get_all`, `wait`, `cancel`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::error::{CancelError, GetError, PutError, WaitError};
use crate::base::value::Value;
use crate::object::table::{CancelProbe, Probe};
use crate::object::value::StoredValue;
use crate::object::waiter::{Signal, Waiter};
use crate::runtime::object_ref::ObjectRef;
use crate::runtime::{context, global};

/// Stores a value in the object store and returns a ref to it (Ray's `ray.put`).
///
/// The value is moved in, not copied; tasks that take the ref as an argument share it. It is
/// freed when the last ref to it is dropped.
pub fn put<T: Value>(value: T) -> Result<ObjectRef<T>, PutError> {
    global::with_runtime(|rt| {
        let id = rt.ids.object();
        rt.store.put(id, StoredValue::new(value));
        ObjectRef::adopt(id, rt.store.clone())
    })
    .ok_or(PutError::NotInitialized)
}

/// Gets the values of several refs, in order (Ray's `ray.get(list)`); the first error wins.
pub fn get_all<T: Value>(refs: &[ObjectRef<T>]) -> Result<Vec<T>, GetError> {
    refs.iter().map(ObjectRef::get).collect()
}

/// What [`wait`] returns: the ready refs, then the others.
pub type ReadyAndPending<T> = (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>);

/// Waits until `num_returns` of `refs` are ready or `timeout` passes (Ray's `ray.wait`).
///
/// Returns `(ready, pending)`: at most `num_returns` ready refs, then the others, each in the
/// order given. A ref whose task failed counts as ready (its get returns the error). With a
/// timeout, fewer than `num_returns` may be ready.
///
/// `refs` is a slice, `&Vec` or `Vec`: given the vector itself, the refs are moved into the
/// two results instead of cloned, which is what a loop that waits on the pending rest wants:
///
/// ```no_run
/// # fn demo(mut pending: Vec<mobula::ObjectRef<u64>>) -> Result<(), mobula::WaitError> {
/// while !pending.is_empty() {
///     let (ready, rest) = mobula::wait(pending, 1, None)?;
///     pending = rest;
///     # drop(ready);
/// }
/// # Ok(())
/// # }
/// ```
pub fn wait<'a, T: Value>(
    refs: impl Into<Cow<'a, [ObjectRef<T>]>>,
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<ReadyAndPending<T>, WaitError> {
    wait_for(refs.into(), num_returns, timeout, true)
}

/// As [`wait`], but a value counts as ready as soon as it exists anywhere: one left on the
/// node that made it is not fetched here (Ray's `ray.wait(..., fetch_local=False)`). For a
/// scheduler that only needs to know which tasks are done.
pub fn wait_anywhere<'a, T: Value>(
    refs: impl Into<Cow<'a, [ObjectRef<T>]>>,
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<ReadyAndPending<T>, WaitError> {
    wait_for(refs.into(), num_returns, timeout, false)
}

fn wait_for<T: Value>(
    refs: Cow<'_, [ObjectRef<T>]>,
    num_returns: usize,
    timeout: Option<Duration>,
    fetch_local: bool,
) -> Result<ReadyAndPending<T>, WaitError> {
    let is_ready = |r: &ObjectRef<T>| {
        if fetch_local {
            r.is_ready()
        } else {
            r.exists_anywhere()
        }
    };
    if num_returns > refs.len() {
        return Err(WaitError::TooManyReturns {
            num_returns,
            given: refs.len(),
        });
    }
    if !global::is_running() {
        return Err(WaitError::NotInitialized);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut ready = vec![false; refs.len()];
    let mut signal: Option<Arc<Signal>> = None;
    let mut _lent = None;
    loop {
        let mut count = 0;
        for (i, r) in refs.iter().enumerate() {
            if count == num_returns {
                break;
            }
            ready[i] = ready[i] || is_ready(r);
            count += usize::from(ready[i]);
        }
        if count >= num_returns || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if context::on_runtime_thread() {
            return Err(WaitError::WouldBlock);
        }
        // Before sleeping, yield a few times watching the first refs not ready (the next to
        // finish, usually): often one is done within microseconds.
        let watched: Vec<&ObjectRef<T>> = refs
            .iter()
            .zip(&ready)
            .filter(|(_, ready)| !**ready)
            .map(|(r, _)| r)
            .take(8)
            .collect();
        if context::spin_until(|| watched.iter().any(|r| is_ready(r))) {
            continue;
        }
        _lent.get_or_insert_with(global::BlockedInGet::enter);
        let signal = signal.get_or_insert_with(Default::default);
        let registered_all = refs
            .iter()
            .zip(&ready)
            .filter(|(_, ready)| !**ready)
            .all(|(r, _)| {
                let Ok(store) = r.store() else { return false };
                if fetch_local {
                    let mut waiter = Some(Waiter::Signal(Arc::clone(signal)));
                    matches!(store.probe(r.id(), &mut waiter), Probe::NotReady { .. })
                } else {
                    !store.watch(r.id(), Waiter::Watch(Arc::clone(signal)))
                }
            });
        if registered_all {
            // Woken by any of them, or at the deadline; either way count again.
            signal.wait_until(deadline);
        }
    }
    Ok(partition(refs, &ready, num_returns))
}

/// Splits `refs` into at most `num_returns` ready ones and the rest, keeping their order;
/// an owned list is split by moving its refs, a borrowed one by cloning them.
fn partition<T>(
    refs: Cow<'_, [ObjectRef<T>]>,
    ready: &[bool],
    num_returns: usize,
) -> ReadyAndPending<T> {
    let mut ready_refs = Vec::with_capacity(num_returns);
    let mut pending = Vec::with_capacity(refs.len() - num_returns.min(refs.len()));
    let mut place = |i: usize, r: ObjectRef<T>| {
        if ready[i] && ready_refs.len() < num_returns {
            ready_refs.push(r)
        } else {
            pending.push(r)
        }
    };
    match refs {
        Cow::Owned(refs) => refs.into_iter().enumerate().for_each(|(i, r)| place(i, r)),
        Cow::Borrowed(refs) => refs
            .iter()
            .enumerate()
            .for_each(|(i, r)| place(i, r.clone())),
    }
    (ready_refs, pending)
}

/// Cancels the task that makes `object_ref` (Ray's `ray.cancel`).
///
/// A task that has not started never runs. A running async task is aborted (its future is
/// dropped). A running blocking task cannot be interrupted: it runs on, its result is
/// discarded, and [`context().is_cancelled()`](crate::Context::is_cancelled) turns true for
/// it. In every case a get of the ref returns [`GetError::Cancelled`] from now on, unless the
/// task had already finished, in which case cancel does nothing.
pub fn cancel<T>(object_ref: &ObjectRef<T>) -> Result<(), CancelError> {
    let store = match object_ref.store() {
        Ok(s) => s,
        Err(GetError::ShutDown { .. }) => return Ok(()),
        Err(_) => return Err(CancelError::NotInitialized),
    };
    let id = object_ref.id();
    match store.cancel_probe(id) {
        CancelProbe::NotATask => Err(CancelError::NotATask { object_id: id }),
        CancelProbe::Done | CancelProbe::Missing => Ok(()),
        CancelProbe::Pending(producer) => {
            let err = GetError::Cancelled {
                function: producer.function.to_string(),
                task_id: producer.task,
            };
            if store.fail(id, err) {
                global::with_runtime(|rt| rt.cancel_task(producer.task));
            }
            Ok(())
        }
    }
}
