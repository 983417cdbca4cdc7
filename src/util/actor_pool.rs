//! `ActorPool`: spread work over a fixed set of actors (Ray's `ray.util.ActorPool`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::{GetError, ObjectRef, Value};

type Work<H, T> = Box<dyn FnOnce(&H) -> ObjectRef<T> + Send>;

/// A set of actor handles that work is spread over: each submitted item runs on an idle
/// actor, or waits for one.
///
/// ```
/// use mobula::prelude::*;
/// use mobula::util::ActorPool;
///
/// #[mobula::actor]
/// struct Doubler;
///
/// #[mobula::actor]
/// impl Doubler {
///     fn new() -> Self { Doubler }
///     fn double(&self, x: u64) -> u64 { 2 * x }
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let _mobula = mobula::init(Config::default().num_cpus(2))?;
/// let mut pool = ActorPool::new(vec![Doubler::remote()?, Doubler::remote()?]);
/// let doubled: Vec<u64> = pool.map(|a, x| a.double(x), vec![1, 2, 3, 4]).collect::<Result<_, _>>()?;
/// assert_eq!(doubled, vec![2, 4, 6, 8]);
/// # Ok(()) }
/// ```
pub struct ActorPool<H, T> {
    idle: VecDeque<H>,
    /// Submitted work, by submission index: the ref and the actor running it.
    running: BTreeMap<u64, (ObjectRef<T>, H)>,
    waiting: VecDeque<(u64, Work<H, T>)>,
    next_index: u64,
    next_ordered: u64,
}

impl<H: Clone + Send + 'static, T: Value> ActorPool<H, T> {
    /// A pool over these actors.
    pub fn new(actors: Vec<H>) -> Self {
        ActorPool {
            idle: actors.into(),
            running: BTreeMap::new(),
            waiting: VecDeque::new(),
            next_index: 0,
            next_ordered: 0,
        }
    }

    /// Submits `f(actor, value)` to an idle actor, or queues it until one is idle.
    pub fn submit<V: Send + 'static>(
        &mut self,
        f: impl FnOnce(&H, V) -> ObjectRef<T> + Send + 'static,
        value: V,
    ) {
        let index = self.next_index;
        self.next_index += 1;
        let work: Work<H, T> = Box::new(move |actor| f(actor, value));
        match self.idle.pop_front() {
            Some(actor) => self.start(index, work, actor),
            None => self.waiting.push_back((index, work)),
        }
    }

    fn start(&mut self, index: u64, work: Work<H, T>, actor: H) {
        let r = work(&actor);
        self.running.insert(index, (r, actor));
    }

    /// The actor is free again: it takes the next waiting work, if any.
    fn release(&mut self, actor: H) {
        match self.waiting.pop_front() {
            Some((index, work)) => self.start(index, work, actor),
            None => self.idle.push_back(actor),
        }
    }

    /// Whether results remain to be fetched.
    pub fn has_next(&self) -> bool {
        !self.running.is_empty() || !self.waiting.is_empty()
    }

    /// Whether some actor is idle.
    pub fn has_free(&self) -> bool {
        !self.idle.is_empty()
    }

    /// The next result in submission order, waiting for it. `None` when nothing is pending.
    pub fn get_next(&mut self) -> Option<Result<T, GetError>> {
        self.get_next_inner(None)
    }

    /// As [`get_next`](Self::get_next), giving up after `timeout` (the result stays pending).
    pub fn get_next_timeout(&mut self, timeout: Duration) -> Option<Result<T, GetError>> {
        self.get_next_inner(Some(timeout))
    }

    fn get_next_inner(&mut self, timeout: Option<Duration>) -> Option<Result<T, GetError>> {
        while !self.running.contains_key(&self.next_ordered) {
            if self.next_ordered >= self.next_index {
                return None;
            }
            self.next_ordered += 1; // already taken out of order
        }
        let (r, _) = &self.running[&self.next_ordered];
        let result = match timeout {
            None => r.get(),
            Some(t) => r.get_timeout(t),
        };
        if let Err(GetError::Timeout { .. }) = result {
            return Some(result);
        }
        let (_, actor) = self
            .running
            .remove(&self.next_ordered)
            .expect("checked above");
        self.next_ordered += 1;
        self.release(actor);
        Some(result)
    }

    /// Whichever pending result is ready first. `None` when nothing is pending.
    pub fn get_next_unordered(&mut self) -> Option<Result<T, GetError>> {
        if self.running.is_empty() {
            return None;
        }
        let refs: Vec<ObjectRef<T>> = self.running.values().map(|(r, _)| r.clone()).collect();
        let ready = match crate::wait(&refs, 1, None) {
            Ok((ready, _)) => ready,
            Err(e) => {
                return Some(Err(GetError::ObjectLost {
                    object_id: refs[0].id(),
                    reason: e.to_string(),
                }));
            }
        };
        let index = *self
            .running
            .iter()
            .find(|(_, (r, _))| *r == ready[0])
            .map(|(i, _)| i)
            .expect("ready is one of them");
        let (r, actor) = self.running.remove(&index).expect("just found");
        let result = r.get();
        self.release(actor);
        Some(result)
    }

    /// Applies `f` to every value over the pool; results in the order of `values`.
    pub fn map<V: Send + 'static>(
        &mut self,
        f: impl Fn(&H, V) -> ObjectRef<T> + Clone + Send + 'static,
        values: impl IntoIterator<Item = V>,
    ) -> impl Iterator<Item = Result<T, GetError>> + '_ {
        for v in values {
            self.submit(f.clone(), v);
        }
        std::iter::from_fn(move || self.get_next())
    }

    /// Applies `f` to every value over the pool; results as they finish.
    pub fn map_unordered<V: Send + 'static>(
        &mut self,
        f: impl Fn(&H, V) -> ObjectRef<T> + Clone + Send + 'static,
        values: impl IntoIterator<Item = V>,
    ) -> impl Iterator<Item = Result<T, GetError>> + '_ {
        for v in values {
            self.submit(f.clone(), v);
        }
        std::iter::from_fn(move || self.get_next_unordered())
    }

    /// Takes an idle actor out of the pool.
    pub fn pop_idle(&mut self) -> Option<H> {
        self.idle.pop_front()
    }

    /// Adds an actor to the pool (it takes waiting work at once, if any).
    pub fn push(&mut self, actor: H) {
        self.release(actor);
    }
}
