//! Streaming generators (Ray's generators): a remote function or actor method that yields
//! gives its caller an [`ObjectRefGenerator`] at once, and a ref per item as each is made.
//!
//! The caller's node keeps a table of the generators it consumes ([`Generators`]; the rule
//! that bounds them is `base::generator`). The task gets a [`Sink`] as a hidden argument;
//! its body pushes each item there through a [`Yielder`]: into the table directly when the
//! consumer is on its node, over the cluster otherwise (the item encoded, the answer coming
//! back once the item fits in the window). The task's own result is the number of items,
//! and its end (or its error) ends the generator.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::Stream;
// Not tokio's oneshot: a blocking producer waits with `block_on` on a runtime's thread, where
// tokio's cooperative budget, never reset while the thread blocks, would starve the wait.
use futures::channel::oneshot;

use super::actor::call::decode_value;
use super::cluster_port::DecodeValue;
use super::context;
use super::global;
use super::object_ref::{ObjectRef, SharedFuture};
use crate::base::error::GetError;
use crate::base::function::AppError;
use crate::base::generator::{End, ItemStream, Next, Sink, in_flight};
use crate::base::id::IdMint;
use crate::base::id::ObjectId;
use crate::base::id::TaskId;
use crate::base::value::Value;
use crate::object::store::Store;
use crate::object::table::Producer;
use crate::object::value::StoredValue;

/// The answer to one push: `Err` says why the producer should stop.
type Answer = oneshot::Sender<Result<(), String>>;

/// One generator this node consumes.
struct Entry {
    stream: ItemStream<ObjectRef<()>, Answer, GetError>,
    decode: DecodeValue,
    /// The pending object the consumer waits on, for the item of this index.
    slot: Option<(u64, ObjectRef<()>)>,
    /// The function or method, for errors.
    label: &'static str,
}

/// The generators this node consumes, by id. An entry lives from the call to the drop of
/// its [`ObjectRefGenerator`].
pub(crate) struct Generators {
    table: Mutex<HashMap<ObjectId, Entry>>,
    /// Where their items are kept, and the ids they are kept under.
    store: Store,
    ids: Arc<IdMint>,
}

/// Why an item was not taken, as its producer hears it.
const CONSUMER_GONE: &str = "the generator's consumer dropped it";

impl Generators {
    /// An empty table for a node's `store`, minting ids from `ids`.
    pub fn new(store: Store, ids: Arc<IdMint>) -> Self {
        Generators {
            table: Mutex::default(),
            store,
            ids,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectId, Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many generators this node consumes now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Item `index` of `generator`, made on this node. The answer goes back on `answer`,
    /// now or once the item fits in the window.
    pub fn arrive(&self, generator: ObjectId, index: u64, value: StoredValue, answer: Answer) {
        let store = &self.store;
        let mut table = self.lock();
        let Some(entry) = table.get_mut(&generator) else {
            let _ = answer.send(Err(CONSUMER_GONE.into()));
            return;
        };
        let item = match &entry.slot {
            Some((slot, r)) if *slot == index => {
                let r = r.clone();
                store.seal(r.id(), value);
                entry.slot = None;
                r
            }
            _ => {
                let id = self.ids.object();
                store.put(id, value);
                ObjectRef::adopt(id, store.clone())
            }
        };
        match entry.stream.arrive(index, item, answer) {
            Ok(Some(answer)) => {
                let _ = answer.send(Ok(()));
            }
            Ok(None) => {}
            Err((refusal, answer)) => {
                tracing::warn!(%generator, "refused an item: {refusal}");
                let _ = answer.send(Err(refusal.to_string()));
            }
        }
    }

    /// The decoder of `generator`'s items, if this node consumes it.
    pub fn decoder(&self, generator: ObjectId) -> Option<DecodeValue> {
        self.lock().get(&generator).map(|e| e.decode)
    }

    /// Item `index` of `generator`, made on another node and encoded: decoded and kept.
    /// Returns when it is answered (or why it is refused).
    pub async fn arrive_encoded(
        &self,
        generator: ObjectId,
        index: u64,
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        let Some(decode) = self.decoder(generator) else {
            return Err(CONSUMER_GONE.into());
        };
        let value = decode(bytes).map_err(|e| format!("item {index} does not decode: {e}"))?;
        let (answer, answered) = oneshot::channel();
        self.arrive(generator, index, value, answer);
        answered.await.unwrap_or_else(|_| Err(CONSUMER_GONE.into()))
    }

    /// The task behind `generator` ended.
    fn end(&self, generator: ObjectId, end: End<GetError>) {
        let mut table = self.lock();
        let Some(entry) = table.get_mut(&generator) else {
            return;
        };
        entry.stream.end(end);
        // A consumer waiting for an item that will not come wakes and looks again.
        if let Some((_, slot)) = entry.slot.take()
            && let Ok(store) = slot.store()
        {
            store.fail(
                slot.id(),
                GetError::ObjectLost {
                    object_id: slot.id(),
                    reason: "the generator ended".into(),
                },
            );
        }
    }

    /// The next item for the consumer, or the slot to wait on.
    fn take(&self, generator: ObjectId) -> Step {
        let mut table = self.lock();
        let Some(entry) = table.get_mut(&generator) else {
            return Step::Done;
        };
        let (next, released) = entry.stream.take();
        for answer in released {
            let _ = answer.send(Ok(()));
        }
        match next {
            Next::Item(r) => Step::Item(r),
            Next::Done => {
                // Every item was given: the entry goes (its producer has ended).
                table.remove(&generator);
                Step::Done
            }
            Next::Failed(e) => Step::Failed(e),
            Next::Pending => {
                if let Some(index) = entry.stream.missing() {
                    let error = GetError::ObjectLost {
                        object_id: generator,
                        reason: format!(
                            "item {index} of the generator of `{}` never arrived",
                            entry.label
                        ),
                    };
                    // Reported once: the generator ends with it.
                    table.remove(&generator);
                    return Step::Failed(error);
                }
                let index = entry.stream.taken();
                if let Some((at, slot)) = &entry.slot
                    && *at == index
                {
                    return Step::Wait(slot.clone());
                }
                let id = self.ids.object();
                let producer = Producer {
                    task: TaskId::NIL,
                    function: entry.label,
                };
                self.store.create_pending(id, producer);
                let slot = ObjectRef::<()>::adopt(id, self.store.clone());
                entry.slot = Some((index, slot.clone()));
                Step::Wait(slot)
            }
        }
    }

    /// The consumer went away: its entry goes, and every producer waiting hears so.
    fn close(&self, generator: ObjectId) {
        let entry = self.lock().remove(&generator);
        if let Some(mut entry) = entry {
            for answer in entry.stream.close() {
                let _ = answer.send(Err(CONSUMER_GONE.into()));
            }
        }
    }
}

enum Step {
    Item(ObjectRef<()>),
    Wait(ObjectRef<()>),
    Done,
    Failed(GetError),
}

/// A generator of refs, returned at once by a call of a remote function or actor method
/// that yields (Ray's `ObjectRefGenerator`).
///
/// Iterate it (blocking), or turn it [`into_stream`](Self::into_stream) (async): each item
/// is a ref, given as
/// soon as its item is made and in the order the items were yielded; get it, wait on it or
/// await it as any ref. The producer runs at most a window of items ahead of this consumer
/// (`generator_backpressure`, default [`DEFAULT_WINDOW`](crate::generator::DEFAULT_WINDOW))
/// and pauses until it takes more.
///
/// If the task fails, the items it yielded before are given, then one ref whose get
/// returns the error, then the generator ends. A task retried after a system failure yields
/// again from the start; the items already given are not given twice. Dropping the
/// generator stops its producer at its next item.
///
/// ```no_run
/// # use mobula::prelude::*;
/// #[mobula::remote]
/// fn countdown(from: u32) -> impl Iterator<Item = u32> {
///     (0..from).rev()
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let _mobula = mobula::init(Config::default())?;
/// for item in countdown.remote(3) {
///     println!("{}", item.get()?); // 2, 1, 0
/// }
/// # Ok(())
/// # }
/// ```
pub struct ObjectRefGenerator<T> {
    id: ObjectId,
    end: ObjectRef<u64>,
    table: Option<Arc<Generators>>,
    /// The slot an async consumer waits on.
    waiting: Option<SharedFuture<()>>,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ObjectRefGenerator<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ObjectRefGenerator<{}>({})",
            std::any::type_name::<T>(),
            self.id
        )
    }
}

impl<T: Value> ObjectRefGenerator<T> {
    /// A ref to the number of items, ready when the task has ended (Ray's `completed()`);
    /// its get returns the task's error if it failed.
    pub fn completed(&self) -> ObjectRef<u64> {
        self.end.clone()
    }

    /// The generator's id (the id its items are pushed to).
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// The generator as a [`Stream`] of refs, for async code (where a blocking `next`
    /// cannot wait).
    pub fn into_stream(self) -> RefStream<T> {
        RefStream { inner: self }
    }

    /// A ref that gets `error`, for the consumer.
    fn failed(error: GetError) -> ObjectRef<T> {
        global::with_runtime(|rt| {
            let id = rt.ids.object();
            rt.store.create_pending(
                id,
                Producer {
                    task: TaskId::NIL,
                    function: "generator",
                },
            );
            rt.store.fail(id, error);
            ObjectRef::adopt(id, rt.store.clone())
        })
        .unwrap_or_else(ObjectRef::detached)
    }

    fn step(&self) -> Step {
        match &self.table {
            Some(table) => table.take(self.id),
            // It ended (or was made with no runtime, its `completed()` saying so).
            None => Step::Done,
        }
    }
}

impl<T: Value> Iterator for ObjectRefGenerator<T> {
    type Item = ObjectRef<T>;

    /// The next item's ref, waiting until it is made; `None` once every item was given.
    /// On the node's event loop (inside an async task) it cannot wait: use the generator
    /// as a `Stream` there; a blocking `next` gives a ref whose get says so.
    fn next(&mut self) -> Option<ObjectRef<T>> {
        loop {
            match self.step() {
                Step::Item(r) => return Some(r.cast()),
                Step::Done => {
                    self.table = None;
                    return None;
                }
                Step::Failed(e) => return Some(Self::failed(e)),
                Step::Wait(slot) => {
                    if context::on_runtime_thread() {
                        return Some(Self::failed(GetError::WouldBlock {
                            object_id: slot.id(),
                        }));
                    }
                    // Its value or error comes with the item, or with the generator's end.
                    let _ = slot.get_shared_blocking(None);
                }
            }
        }
    }
}

impl<T: Value> std::iter::FusedIterator for ObjectRefGenerator<T> {}

/// An [`ObjectRefGenerator`] as a [`Stream`], for async code:
/// `while let Some(item) = generator.next().await` (with `futures::StreamExt`).
pub struct RefStream<T> {
    inner: ObjectRefGenerator<T>,
}

impl<T> std::fmt::Debug for RefStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<T: Value> RefStream<T> {
    /// The generator back.
    pub fn into_inner(self) -> ObjectRefGenerator<T> {
        self.inner
    }
}

impl<T: Value> Stream for RefStream<T> {
    type Item = ObjectRef<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ObjectRef<T>>> {
        let this = &mut self.get_mut().inner;
        loop {
            if let Some(waiting) = &mut this.waiting {
                match Pin::new(waiting).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(_) => this.waiting = None,
                }
            }
            match this.step() {
                Step::Item(r) => return Poll::Ready(Some(r.cast())),
                Step::Done => {
                    this.table = None;
                    return Poll::Ready(None);
                }
                Step::Failed(e) => return Poll::Ready(Some(ObjectRefGenerator::failed(e))),
                Step::Wait(slot) => this.waiting = Some(slot.get_shared()),
            }
        }
    }
}

impl<T> Drop for ObjectRefGenerator<T> {
    fn drop(&mut self) {
        if let Some(table) = &self.table {
            table.close(self.id);
        }
    }
}

/// A generator registered with this node, its task not yet submitted.
pub(crate) struct Opened<T> {
    pub sink: Sink,
    id: ObjectId,
    table: Option<Arc<Generators>>,
    _marker: std::marker::PhantomData<fn() -> T>,
}

/// Registers a generator of `T` items made by `label`, `window` items ahead at most.
pub(crate) fn open<T: Value>(label: &'static str, window: u32) -> Opened<T> {
    let made = global::with_runtime(|rt| {
        let id = rt.ids.object();
        let entry = Entry {
            stream: ItemStream::new(window),
            decode: decode_value::<T>,
            slot: None,
            label,
        };
        rt.generators.lock().insert(id, entry);
        (rt.node_id, id, Arc::clone(&rt.generators))
    });
    match made {
        Some((node, id, table)) => Opened {
            sink: Sink {
                node,
                generator: id,
                window,
            },
            id,
            table: Some(table),
            _marker: std::marker::PhantomData,
        },
        None => Opened {
            sink: Sink {
                // No runtime: the call's ref says so, and nothing is pushed here.
                node: crate::base::id::NodeId::random(),
                generator: ObjectId::NIL,
                window,
            },
            id: ObjectId::NIL,
            table: None,
            _marker: std::marker::PhantomData,
        },
    }
}

impl<T: Value> Opened<T> {
    /// The generator, its task submitted with `end` the ref to its result (the number of
    /// items): when that is ready (or failed), the generator ends.
    pub fn attach(self, end: ObjectRef<u64>) -> ObjectRefGenerator<T> {
        if let Some(table) = &self.table {
            let (watcher, id, watched) = (Arc::clone(table), self.id, end.clone());
            let spawned = global::with_runtime(move |rt| {
                rt.node_arbiter.spawn(async move {
                    let end = match watched.get_shared().await {
                        Ok(count) => End::Finished(*count),
                        Err(e) => End::Failed(e),
                    };
                    watcher.end(id, end);
                })
            });
            if spawned != Some(true) {
                table.end(
                    self.id,
                    End::Failed(GetError::ShutDown { object_id: self.id }),
                );
            }
        }
        ObjectRefGenerator {
            id: self.id,
            end,
            table: self.table,
            waiting: None,
            _marker: std::marker::PhantomData,
        }
    }
}

/// The producer's side: pushes a task's items to its sink, keeping the window's rule.
#[doc(hidden)]
pub struct Yielder {
    sink: Sink,
    /// The stream to the consumer's node, once an item went there.
    channel: Option<super::cluster_port::ItemSender>,
    sent: u64,
    /// Answers not yet heard, oldest first (item `sent - acks.len()` first).
    acks: VecDeque<oneshot::Receiver<Result<(), String>>>,
}

fn stopped(why: String) -> AppError {
    AppError(format!("the generator stopped: {why}"))
}

fn heard(answer: Result<Result<(), String>, oneshot::Canceled>) -> Result<(), AppError> {
    match answer {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(stopped(why)),
        Err(_) => Err(stopped(CONSUMER_GONE.into())),
    }
}

impl Yielder {
    /// A producer for `sink`.
    pub fn new(sink: Sink) -> Self {
        Yielder {
            sink,
            channel: None,
            sent: 0,
            acks: VecDeque::new(),
        }
    }

    /// Whether another push may go out now (fewer than the window's in-flight share are
    /// unanswered).
    fn has_room(&self) -> bool {
        (self.acks.len() as u64) < in_flight(self.sink.window)
    }

    /// Waits (this thread blocks) until another item may be made: the consumer took enough.
    pub fn room_blocking(&mut self) -> Result<(), AppError> {
        while !self.has_room() {
            let oldest = self.acks.pop_front().expect("a full window has pushes");
            heard(futures::executor::block_on(oldest))?;
        }
        Ok(())
    }

    /// Waits until another item may be made.
    pub async fn room(&mut self) -> Result<(), AppError> {
        while !self.has_room() {
            let oldest = self.acks.pop_front().expect("a full window has pushes");
            heard(oldest.await)?;
        }
        Ok(())
    }

    /// Sends item number `self.sent` (made once there was room).
    pub fn send<T: Value>(&mut self, item: T) -> Result<(), AppError> {
        let (answer, answered) = oneshot::channel();
        let (sink, index) = (self.sink, self.sent);
        let sent = global::with_runtime(|rt| {
            if sink.node == rt.node_id {
                rt.generators
                    .arrive(sink.generator, index, StoredValue::new(item), answer);
                return Ok(());
            }
            let mut bytes = Vec::new();
            crate::object::codec::write::<T>(&item, &mut bytes)
                .map_err(|e| AppError(format!("item {index} could not be encoded: {e}")))?;
            let channel = match &self.channel {
                Some(channel) => channel,
                None => {
                    let Some(cluster) = rt.cluster.get().cloned() else {
                        return Err(stopped(format!(
                            "its consumer is on node {} and this node is in no cluster",
                            sink.node
                        )));
                    };
                    self.channel
                        .insert(cluster.open_items(rt, sink.node, sink.generator))
                }
            };
            let push = super::cluster_port::ItemPush {
                index,
                bytes,
                answer,
            };
            if let Err(unsent) = channel.send(push) {
                let _ = unsent.0.answer.send(Err("the node is stopping".into()));
            }
            Ok(())
        });
        sent.unwrap_or_else(|| Err(stopped("the node is stopping".into())))?;
        self.sent += 1;
        self.acks.push_back(answered);
        Ok(())
    }

    /// Waits (blocking) until every item is answered; returns how many were yielded.
    pub fn finish_blocking(mut self) -> Result<u64, AppError> {
        while let Some(oldest) = self.acks.pop_front() {
            heard(futures::executor::block_on(oldest))?;
        }
        Ok(self.sent)
    }

    /// Waits until every item is answered; returns how many were yielded.
    pub async fn finish(mut self) -> Result<u64, AppError> {
        while let Some(oldest) = self.acks.pop_front() {
            heard(oldest.await)?;
        }
        Ok(self.sent)
    }
}

/// Drives a blocking body's items into `sink`; an `Err` item ends the task with its error.
#[doc(hidden)]
pub fn drive_iter<T: Value>(
    sink: Sink,
    items: impl IntoIterator<Item = Result<T, AppError>>,
) -> Result<u64, AppError> {
    let mut out = Yielder::new(sink);
    let mut items = items.into_iter();
    // The next item is made only once there is room for it.
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loop {
            out.room_blocking()?;
            let Some(item) = items.next() else {
                return Ok(());
            };
            out.send(item?)?;
        }
    }));
    settle(out.finish_blocking(), made)
}

/// How a producer's run ended, once every item it sent was answered (so that they reach the
/// consumer before the task's end, or its error, does): its count, its error, or its panic
/// going on.
fn settle(
    count: Result<u64, AppError>,
    made: Result<Result<(), AppError>, Box<dyn std::any::Any + Send>>,
) -> Result<u64, AppError> {
    match made {
        Ok(Ok(())) => count,
        Ok(Err(e)) => Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Drives an async body's iterator into `sink`.
#[doc(hidden)]
pub async fn drive_iter_async<T: Value>(
    sink: Sink,
    items: impl IntoIterator<Item = Result<T, AppError>>,
) -> Result<u64, AppError> {
    drive_stream(sink, futures::stream::iter(items)).await
}

/// Drives an async body's stream into `sink`.
#[doc(hidden)]
pub async fn drive_stream<T: Value>(
    sink: Sink,
    items: impl Stream<Item = Result<T, AppError>>,
) -> Result<u64, AppError> {
    use futures::{FutureExt, StreamExt};
    let mut out = Yielder::new(sink);
    let mut items = std::pin::pin!(items);
    let made = std::panic::AssertUnwindSafe(async {
        loop {
            out.room().await?;
            let Some(item) = items.next().await else {
                return Ok::<(), AppError>(());
            };
            out.send(item?)?;
        }
    })
    .catch_unwind()
    .await;
    settle(out.finish().await, made)
}
