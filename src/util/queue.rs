//! `Queue`: a first-in first-out queue shared by tasks and actors, held by an actor (Ray's
//! `ray.util.queue.Queue`).

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::{ActorError, GetError, Value};

/// Why a queue operation did not complete.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Nothing to get (at once, or within the timeout).
    #[error("the queue is empty")]
    Empty,
    /// No room to put (at once, or within the timeout).
    #[error("the queue is full")]
    Full,
    /// The queue's actor could not be reached (it died, or the runtime stopped).
    #[error("the queue's actor failed: {0}")]
    Actor(#[from] GetError),
    /// An item could not be encoded or decoded.
    #[error("a queue item could not be encoded or decoded: {0}")]
    Codec(String),
}

/// The actor holding a queue's items, encoded.
#[crate::actor]
pub struct QueueActor {
    items: Mutex<VecDeque<Vec<u8>>>,
    maxsize: usize,
    item_added: Notify,
    room_made: Notify,
}

fn deadline(timeout_ms: Option<u64>) -> Option<Instant> {
    timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms))
}

/// Waits for `notified` until `deadline`; false when the deadline passed.
async fn wait_until(
    notified: impl std::future::Future<Output = ()>,
    deadline: Option<Instant>,
) -> bool {
    match deadline {
        None => {
            notified.await;
            true
        }
        Some(d) => actix_rt::time::timeout(d.saturating_duration_since(Instant::now()), notified)
            .await
            .is_ok(),
    }
}

// Helpers live in their own impl block: every method of an #[actor] impl block is remote.
impl QueueActor {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_room(&self, items: &VecDeque<Vec<u8>>, n: usize) -> bool {
        self.maxsize == 0 || items.len() + n <= self.maxsize
    }
}

#[crate::actor]
impl QueueActor {
    fn new(maxsize: usize) -> Self {
        QueueActor {
            items: Mutex::new(VecDeque::new()),
            maxsize,
            item_added: Notify::new(),
            room_made: Notify::new(),
        }
    }

    /// Puts one item, waiting for room; false if the timeout passed first.
    async fn put(&self, item: Vec<u8>, timeout_ms: Option<u64>) -> bool {
        let deadline = deadline(timeout_ms);
        loop {
            let room = self.room_made.notified();
            {
                let mut items = self.lock();
                if self.has_room(&items, 1) {
                    items.push_back(item);
                    self.item_added.notify_one();
                    return true;
                }
            }
            if !wait_until(room, deadline).await {
                return false;
            }
        }
    }

    /// Takes one item, waiting for one; `None` if the timeout passed first.
    async fn get(&self, timeout_ms: Option<u64>) -> Option<Vec<u8>> {
        let deadline = deadline(timeout_ms);
        loop {
            let added = self.item_added.notified();
            if let Some(item) = self.lock().pop_front() {
                self.room_made.notify_one();
                return Some(item);
            }
            if !wait_until(added, deadline).await {
                return None;
            }
        }
    }

    /// Puts all the items, or none if they do not all fit now.
    fn put_batch(&self, batch: Vec<Vec<u8>>) -> bool {
        let mut items = self.lock();
        if !self.has_room(&items, batch.len()) {
            return false;
        }
        let n = batch.len();
        items.extend(batch);
        drop(items);
        (0..n).for_each(|_| self.item_added.notify_one());
        true
    }

    /// Takes `n` items, or none if fewer are there now.
    fn get_batch(&self, n: usize) -> Option<Vec<Vec<u8>>> {
        let mut items = self.lock();
        if items.len() < n {
            return None;
        }
        let batch: Vec<_> = items.drain(..n).collect();
        drop(items);
        (0..n).for_each(|_| self.room_made.notify_one());
        Some(batch)
    }

    fn size(&self) -> usize {
        self.lock().len()
    }
}

/// A first-in first-out queue of `T`s that tasks and actors share: pass it (it is `Clone` and
/// serializable) to whoever puts or gets. Its items live in an actor, so every copy sees the
/// same queue. `maxsize` 0 means unbounded.
///
/// The blocking methods (`put`, `get`, ...) must not be called inside async tasks or async
/// actors; use `put_async` and `get_async` there.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Queue<T> {
    actor: QueueActorHandle,
    maxsize: usize,
    #[serde(skip)]
    _item: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            actor: self.actor.clone(),
            maxsize: self.maxsize,
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Queue(maxsize {}, {:?})", self.maxsize, self.actor)
    }
}

fn encode<T: Value>(item: &T) -> Result<Vec<u8>, QueueError> {
    postcard::to_allocvec(item).map_err(|e| QueueError::Codec(e.to_string()))
}

fn decode<T: Value>(bytes: &[u8]) -> Result<T, QueueError> {
    postcard::from_bytes(bytes).map_err(|e| QueueError::Codec(e.to_string()))
}

fn millis(d: Duration) -> Option<u64> {
    Some(d.as_millis().min(u64::MAX as u128) as u64)
}

impl<T: Value> Queue<T> {
    /// A new queue holding at most `maxsize` items (0: no limit).
    pub fn new(maxsize: usize) -> Result<Self, ActorError> {
        let actor = QueueActor::remote(maxsize)?;
        Ok(Queue {
            actor,
            maxsize,
            _item: PhantomData,
        })
    }

    /// Puts an item, waiting while the queue is full.
    pub fn put(&self, item: T) -> Result<(), QueueError> {
        self.put_inner(item, None)
    }

    /// Puts an item, waiting at most `timeout` for room.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), QueueError> {
        self.put_inner(item, millis(timeout))
    }

    /// Puts an item if there is room now.
    pub fn put_nowait(&self, item: T) -> Result<(), QueueError> {
        self.put_inner(item, Some(0))
    }

    fn put_inner(&self, item: T, timeout_ms: Option<u64>) -> Result<(), QueueError> {
        if self.actor.put(encode(&item)?, timeout_ms).get()? {
            Ok(())
        } else {
            Err(QueueError::Full)
        }
    }

    /// Puts an item, waiting while the queue is full, without blocking a thread.
    pub async fn put_async(&self, item: T) -> Result<(), QueueError> {
        if self.actor.put(encode(&item)?, None).await? {
            Ok(())
        } else {
            Err(QueueError::Full)
        }
    }

    /// Takes the oldest item, waiting while the queue is empty.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_inner(None)
    }

    /// Takes the oldest item, waiting at most `timeout` for one.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_inner(millis(timeout))
    }

    /// Takes the oldest item if there is one now.
    pub fn get_nowait(&self) -> Result<T, QueueError> {
        self.get_inner(Some(0))
    }

    fn get_inner(&self, timeout_ms: Option<u64>) -> Result<T, QueueError> {
        match self.actor.get(timeout_ms).get()? {
            Some(bytes) => decode(&bytes),
            None => Err(QueueError::Empty),
        }
    }

    /// Takes the oldest item, waiting while the queue is empty, without blocking a thread.
    pub async fn get_async(&self) -> Result<T, QueueError> {
        match self.actor.get(None).await? {
            Some(bytes) => decode(&bytes),
            None => Err(QueueError::Empty),
        }
    }

    /// Puts all the items if they all fit now, else none.
    pub fn put_nowait_batch(&self, items: Vec<T>) -> Result<(), QueueError> {
        let encoded = items.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        if self.actor.put_batch(encoded).get()? {
            Ok(())
        } else {
            Err(QueueError::Full)
        }
    }

    /// Takes the `n` oldest items if there are that many now, else none.
    pub fn get_nowait_batch(&self, n: usize) -> Result<Vec<T>, QueueError> {
        match self.actor.get_batch(n).get()? {
            Some(batch) => batch.iter().map(|b| decode(b)).collect(),
            None => Err(QueueError::Empty),
        }
    }

    /// Items in the queue now.
    pub fn size(&self) -> Result<usize, QueueError> {
        Ok(self.actor.size().get()?)
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.size()? == 0)
    }

    /// Whether the queue is full now.
    pub fn is_full(&self) -> Result<bool, QueueError> {
        Ok(self.maxsize > 0 && self.size()? >= self.maxsize)
    }

    /// Stops the queue's actor; later operations fail with [`QueueError::Actor`].
    pub fn shutdown(&self) {
        self.actor.kill(false);
    }
}
