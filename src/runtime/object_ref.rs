//! `ObjectRef<T>`: a typed reference to a value in the object store.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base::error::GetError;
use crate::base::id::ObjectId;
use crate::base::value::Value;
use crate::object::store::Store;
use crate::object::table::{Probe, Ready};
use crate::object::table::{RemoteCopy, RemoteKey};
use crate::object::value::{self, StoredValue};
use crate::object::waiter::{Signal, Waiter};
use crate::runtime::{context, global};

/// One reference to an object, shared by all clones of an `ObjectRef`. The object lives as
/// long as some handle (in this process, or inside another stored object) refers to it.
pub(crate) struct RefHandle {
    id: ObjectId,
    /// `None` for a ref made while no runtime was running; getting it says so.
    store: Option<Store>,
}

impl Drop for RefHandle {
    fn drop(&mut self) {
        if let Some(store) = &self.store {
            store.decref(self.id);
        }
    }
}

/// A typed reference to a value in the object store: the result of a remote call, or a
/// value given to [`put`](crate::put).
///
/// Like Ray's `ObjectRef`: get its value with [`get`](Self::get) (blocking) or `.await`; pass
/// it to other remote calls, which receive the value once it is ready; keep it in other
/// values, which keeps the object alive. The object is freed when the last ref to it is
/// dropped. Cloning is cheap (no store traffic); the type parameter makes a wrong use a
/// compile error.
pub struct ObjectRef<T> {
    handle: Arc<RefHandle>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef {
            handle: Arc::clone(&self.handle),
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ObjectRef<{}>({})",
            std::any::type_name::<T>(),
            self.handle.id
        )
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.handle.id == other.handle.id
    }
}

impl<T> Eq for ObjectRef<T> {}

impl<T> Hash for ObjectRef<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.handle.id.hash(state);
    }
}

impl<T> ObjectRef<T> {
    /// A ref to an object that was just registered with one handle.
    pub(crate) fn adopt(id: ObjectId, store: Store) -> Self {
        ObjectRef {
            handle: Arc::new(RefHandle {
                id,
                store: Some(store),
            }),
            _marker: PhantomData,
        }
    }

    /// The same ref, typed as `S`: for the runtime's own paths that make a ref before its type
    /// is named (a call through an actor's sink).
    pub(crate) fn cast<S>(self) -> ObjectRef<S> {
        ObjectRef {
            handle: self.handle,
            _marker: PhantomData,
        }
    }

    /// A ref made while no runtime runs: getting it reports that.
    pub(crate) fn detached() -> Self {
        ObjectRef {
            handle: Arc::new(RefHandle {
                id: ObjectId::NIL,
                store: None,
            }),
            _marker: PhantomData,
        }
    }

    /// The id of the object.
    pub fn id(&self) -> ObjectId {
        self.handle.id
    }

    pub(crate) fn store(&self) -> Result<&Store, GetError> {
        match &self.handle.store {
            None => Err(GetError::NotInitialized),
            Some(s) if s.is_closed() => Err(GetError::ShutDown {
                object_id: self.handle.id,
            }),
            Some(s) => Ok(s),
        }
    }
}

impl<T: Value> ObjectRef<T> {
    /// Blocks until the value is ready and returns a copy of it (a local value is cloned, not
    /// deserialized). Errors if the task failed, was cancelled or cannot run.
    ///
    /// Inside a blocking task, waiting lends the task's CPUs to other tasks until the value
    /// arrives, so tasks that wait for tasks they submitted cannot deadlock the node. Inside
    /// an async task, use `.await` instead: a blocking get there returns
    /// [`GetError::WouldBlock`].
    pub fn get(&self) -> Result<T, GetError> {
        self.get_shared_blocking(None).map(|v| (*v).clone())
    }

    /// As [`get`](Self::get), giving up after `timeout` with [`GetError::Timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_shared_blocking(Some(Instant::now() + timeout))
            .map(|v| (*v).clone())
    }

    /// The value shared with the store, waiting until `deadline`.
    pub(crate) fn get_shared_blocking(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Arc<T>, GetError> {
        let started = Instant::now();
        let store = self.store()?;
        let id = self.handle.id;
        match store.probe(id, &mut None) {
            Probe::Ready(ready) => return resolve_ready(store, id, ready),
            Probe::Missing => return Err(missing(store, id)),
            Probe::NotReady { .. } => {}
        }
        if context::on_runtime_thread() {
            return Err(GetError::WouldBlock { object_id: id });
        }
        // The value is often microseconds away: give the CPU to whoever makes it a few
        // times before paying for a sleep and a wake-up.
        if context::spin_until(|| !matches!(store.probe(id, &mut None), Probe::NotReady { .. })) {
            if let Probe::Ready(ready) = store.probe(id, &mut None) {
                return resolve_ready(store, id, ready);
            }
        }
        let _lent = global::BlockedInGet::enter();
        let signal = Arc::new(Signal::default());
        loop {
            let mut waiter = Some(Waiter::Signal(Arc::clone(&signal)));
            match store.probe(id, &mut waiter) {
                Probe::Ready(ready) => return resolve_ready(store, id, ready),
                Probe::Missing => return Err(missing(store, id)),
                Probe::NotReady { .. } => {}
            }
            if !signal.wait_until(deadline) {
                // How long this get waited, not what was left of it.
                return Err(GetError::Timeout {
                    object_id: id,
                    timeout: started.elapsed(),
                });
            }
        }
    }

    /// A future of the value shared with the store.
    pub(crate) fn get_shared(&self) -> SharedFuture<T> {
        SharedFuture {
            target: self.clone(),
            lent: None,
        }
    }

    /// Whether the value exists, here or on the node that made it (or will never exist).
    pub(crate) fn exists_anywhere(&self) -> bool {
        match self.store() {
            Err(_) => true,
            Ok(store) => store.exists_anywhere(self.handle.id),
        }
    }

    /// Whether the value (or the error) is there now, without waiting.
    pub(crate) fn is_ready(&self) -> bool {
        match self.store() {
            Err(_) => true,
            Ok(store) => !matches!(
                store.probe(self.handle.id, &mut None),
                Probe::NotReady { .. }
            ),
        }
    }
}

fn missing(store: &Store, id: ObjectId) -> GetError {
    if store.is_closed() {
        GetError::ShutDown { object_id: id }
    } else {
        GetError::ObjectLost {
            object_id: id,
            reason: "it was freed: no ref to it was left".into(),
        }
    }
}

/// Turns what the store holds into a `T`: a downcast for a local value, a decode (kept for
/// later gets) for bytes read back from disk.
fn resolve_ready<T: Value>(store: &Store, id: ObjectId, ready: Ready) -> Result<Arc<T>, GetError> {
    match ready {
        Ready::Value(v) => v.downcast::<T>().map_err(|stored| GetError::TypeMismatch {
            object_id: id,
            stored: stored.to_string(),
            expected: std::any::type_name::<T>().to_string(),
        }),
        Ready::Bytes(bytes) => {
            let value: T = value::decode(&bytes).map_err(|reason| GetError::ObjectLost {
                object_id: id,
                reason: format!("restored bytes: {reason}"),
            })?;
            let size = crate::object::size::estimate(&value);
            let shared = Arc::new(value);
            store.upgrade(id, StoredValue::from_arc(Arc::clone(&shared), size));
            Ok(shared)
        }
        Ready::Failed(err) => Err((*err).clone()),
    }
}

/// Waits for an object without blocking a thread; resolves to the value shared with the store.
pub(crate) struct SharedFuture<T> {
    target: ObjectRef<T>,
    /// Set while an async task waits here: its CPUs are lent out meanwhile.
    lent: Option<global::BlockedInGet>,
}

impl<T: Value> Future for SharedFuture<T> {
    type Output = Result<Arc<T>, GetError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let store = match this.target.store() {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let id = this.target.id();
        let mut waiter = Some(Waiter::Wake(cx.waker().clone()));
        let result = match store.probe(id, &mut waiter) {
            Probe::Ready(ready) => resolve_ready(store, id, ready),
            Probe::Missing => Err(missing(store, id)),
            Probe::NotReady { .. } => {
                this.lent.get_or_insert_with(global::BlockedInGet::enter);
                return Poll::Pending;
            }
        };
        this.lent = None;
        Poll::Ready(result)
    }
}

/// The future of `ObjectRef::into_future`: `let v = object_ref.await?;`.
pub struct GetFuture<T> {
    inner: SharedFuture<T>,
}

impl<T: Value> Future for GetFuture<T> {
    type Output = Result<T, GetError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|r| r.map(|v| (*v).clone()))
    }
}

impl<T> Unpin for SharedFuture<T> {}

impl<T: Value> IntoFuture for ObjectRef<T> {
    type Output = Result<T, GetError>;
    type IntoFuture = GetFuture<T>;

    fn into_future(self) -> GetFuture<T> {
        GetFuture {
            inner: SharedFuture {
                target: self,
                lent: None,
            },
        }
    }
}

impl<T: Value> IntoFuture for &ObjectRef<T> {
    type Output = Result<T, GetError>;
    type IntoFuture = GetFuture<T>;

    fn into_future(self) -> GetFuture<T> {
        GetFuture {
            inner: SharedFuture {
                target: self.clone(),
                lent: None,
            },
        }
    }
}

/// The name under which a ref is serialized.
const WIRE_NAME: &str = "mobula::ObjectRef";

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        value::note_serialized_ref(self.handle.id);
        serializer.serialize_newtype_struct(WIRE_NAME, &self.handle.id)
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename = "mobula::ObjectRef")]
        struct Wire(ObjectId);
        let Wire(id) = Wire::deserialize(deserializer)?;
        let here = global::with_runtime(|rt| {
            let owner = rt.cluster.get().and_then(|c| c.owner_of(id.node_prefix()));
            (rt.store.clone(), owner)
        });
        Ok(match here {
            // Minted by another node of the cluster: fetched from its store when wanted.
            Some((store, Some(owner))) => {
                let copy = RemoteCopy {
                    node: owner,
                    key: RemoteKey::Object(id),
                };
                store.adopt_remote(id, copy);
                ObjectRef::adopt(id, store)
            }
            Some((store, None)) => {
                // A ref rebuilt from bytes is one more handle. If the object is unknown here
                // the ref dangles, and getting it says the object is lost.
                store.incref(id);
                ObjectRef::adopt(id, store)
            }
            None => ObjectRef::detached(),
        })
    }
}
