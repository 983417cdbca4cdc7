//! Collective communication between actors (Ray's `ray.util.collective`): allreduce, reduce,
//! broadcast, allgather, reducescatter, barrier, send and recv, in place on slices of `f32`,
//! `f64`, `i32`, `i64` and `u8`.
//!
//! ```no_run
//! use mobula::collective::{self, ReduceOp};
//!
//! #[mobula::actor]
//! struct Worker {
//!     grads: Vec<f32>,
//! }
//!
//! #[mobula::actor]
//! impl Worker {
//!     fn new(rank: u32) -> Self {
//!         Worker { grads: vec![rank as f32; 1024] }
//!     }
//!     fn sync(&mut self) -> Result<f32, collective::CollectiveError> {
//!         collective::allreduce(&mut self.grads, ReduceOp::Sum, "grads")?;
//!         Ok(self.grads[0])
//!     }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! mobula::init(mobula::Config::default())?;
//! let workers: Vec<WorkerHandle> =
//!     (0..2).map(|r| Worker::remote(r)).collect::<Result<_, _>>()?;
//! collective::create_collective_group(&workers, "grads")?;
//! let sums: Vec<f32> = workers
//!     .iter()
//!     .map(|w| w.sync().get())
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(sums, vec![1.0, 1.0]);
//! # Ok(())
//! # }
//! ```
//!
//! Data goes member to member through each node's mailbox (`runtime::mailbox`): moved
//! within a process, over a QUIC stream between the two nodes otherwise, never through the
//! object store or the head. Allreduce, reduce-scatter and allgather walk a ring
//! ([`ring`]), so each member sends `2 (n - 1) / n` of the buffer for an allreduce.
//! Operations block the calling thread (lending its CPU back, as a blocking get does): call
//! them from blocking actor methods or tasks.
//!
//! A member that dies (its actor ends, its node is lost) fails the group: every pending and
//! later operation on every member returns [`CollectiveError::GroupFailed`] naming it, within
//! the cluster's failure-detection bound, rather than hanging.

pub mod element;
pub mod error;
pub(crate) mod group;
pub mod ring;

use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use element::{Element, ReduceOp};
pub use error::CollectiveError;
pub use group::{CollectiveGroupInfo, CollectiveGroupInfoHandle, NAMESPACE};

use crate::runtime::actor::handle::{ActorClass, ActorHandle};
use crate::wire::Letter;
use group::{Member, Seat};

/// How long a member waits for a letter before it checks that its sender still lives.
const WATCH: std::time::Duration = std::time::Duration::from_secs(1);

/// Makes group `name` of the actors behind `handles`, ranked in their order (Ray's
/// `create_collective_group`). The members learn their rank at their first operation.
pub fn create_collective_group<A: ActorClass, H: std::ops::Deref<Target = ActorHandle<A>>>(
    handles: &[H],
    name: &str,
) -> Result<(), CollectiveError> {
    let seats = handles
        .iter()
        .map(|h| Seat {
            node: h.node_id(),
            actor: Some(h.id()),
        })
        .collect();
    group::create(name, seats)
}

/// The calling member takes rank `rank` of `world_size` in group `name`, and returns once
/// every member has (Ray's `init_collective_group`).
pub fn init_collective_group(
    world_size: u32,
    rank: u32,
    name: &str,
) -> Result<(), CollectiveError> {
    group::init(world_size, rank, name)
}

/// The calling member leaves group `name`; called where the group was made with
/// [`create_collective_group`], its table goes too, so the name can be used again.
pub fn destroy_collective_group(name: &str) -> Result<(), CollectiveError> {
    group::destroy(name)
}

/// Whether the caller is a member of group `name` in this process (it has joined it, or
/// run an operation of a group made for it).
pub fn is_group_initialized(name: &str) -> bool {
    group::is_member(name)
}

/// The caller's rank in group `name`.
pub fn get_rank(name: &str) -> Result<usize, CollectiveError> {
    Ok(lock(&group::member(name)?).rank)
}

/// The number of members of group `name`.
pub fn get_collective_group_size(name: &str) -> Result<usize, CollectiveError> {
    Ok(lock(&group::member(name)?).world())
}

fn lock(m: &Arc<Mutex<Member>>) -> std::sync::MutexGuard<'_, Member> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(m: &Member, reason: String) -> CollectiveError {
    CollectiveError::GroupFailed {
        group: m.name().to_string(),
        reason,
    }
}

impl Member {
    /// The chunk rank `rank` holds fully reduced after a reduce-scatter with offset 0: the
    /// one at the next ring position.
    fn reduced_chunk(&self, rank: usize) -> usize {
        let n = self.world();
        self.order[ring::next(n, self.position[rank])]
    }

    /// The elements' bytes, in a reused buffer when the mailbox has one.
    fn bytes_of<T: Element>(&self, elements: &[T]) -> Vec<u8> {
        let mut out = self.mailbox.buffer(elements.len() * T::WIDTH);
        T::write_le(elements, &mut out);
        out
    }

    /// Sends `bytes` to rank `to`.
    fn post(&mut self, to: usize, bytes: Vec<u8>) {
        let letter = Letter {
            group: self.key.0.clone(),
            generation: self.key.1,
            from: self.rank as u32,
            to: to as u32,
            seq: self.sent[to],
        };
        self.sent[to] += 1;
        self.mailbox.post(self.seats[to], letter, bytes);
    }

    /// Takes the next letter from rank `from`.
    fn take(&mut self, from: usize) -> Result<Vec<u8>, CollectiveError> {
        let letter = Letter {
            group: self.key.0.clone(),
            generation: self.key.1,
            from: from as u32,
            to: self.rank as u32,
            seq: self.taken[from],
        };
        self.taken[from] += 1;
        loop {
            match self.mailbox.take_within(&letter, WATCH) {
                Ok(Some(bytes)) => return Ok(bytes),
                Ok(None) => self.watch(from)?,
                Err(why) => return Err(failed(self, why)),
            }
        }
    }

    /// While a letter from rank `from` is slow to come: fails the group if that member is
    /// dead (an actor that died before it ever opened the group cannot say so itself).
    fn watch(&self, from: usize) -> Result<(), CollectiveError> {
        let Some(actor) = self.seats[from].actor else {
            return Ok(());
        };
        let options = crate::state::ListOptions::new().filter("actor_id", actor);
        let Ok(listed) = crate::state::list_actors(&options) else {
            return Ok(()); // the head is away: the view and the links tell the rest
        };
        match listed.rows.iter().find(|a| a.actor_id == actor) {
            Some(a) if a.state == crate::state::ActorState::Dead => {
                let reason = format!(
                    "member rank {from} of group {} (actor {actor} on node {}) died{}",
                    self.name(),
                    a.node_id,
                    a.death_cause
                        .as_ref()
                        .map(|c| format!(": {c}"))
                        .unwrap_or_default()
                );
                self.mailbox.fail(&self.key, reason.clone());
                Err(failed(self, reason))
            }
            _ => Ok(()),
        }
    }

    /// Takes the next letter from rank `from`, which must hold `len` elements of `T`.
    fn take_elements<T: Element>(
        &mut self,
        from: usize,
        len: usize,
    ) -> Result<Vec<u8>, CollectiveError> {
        let bytes = self.take(from)?;
        if bytes.len() != len * T::WIDTH {
            let reason = format!(
                "rank {from} sent {} bytes where {} elements of {} ({} bytes) were expected: \
                 the members called different operations or passed buffers of different lengths",
                bytes.len(),
                len,
                T::NAME,
                len * T::WIDTH
            );
            self.mailbox.fail(&self.key, reason.clone());
            return Err(failed(self, reason));
        }
        Ok(bytes)
    }

    /// A walk around the ring with offset `k` over chunks `chunk(i)` of `data`, `i` a rank
    /// (the chunk at ring position `p` is that of the rank there): each step sends one chunk
    /// to the next member and reduces (or copies) the one from the previous.
    fn walk<T: Element>(
        &mut self,
        data: &mut [T],
        chunk: &dyn Fn(usize) -> Range<usize>,
        k: usize,
        reduce: Option<ReduceOp>,
    ) -> Result<(), CollectiveError> {
        let (n, p) = (self.world(), self.position[self.rank]);
        let (next, prev) = (self.order[ring::next(n, p)], self.order[ring::prev(n, p)]);
        for s in 0..n.saturating_sub(1) {
            let (send, recv) = ring::step(n, p, k, s);
            let letter = self.bytes_of(&data[chunk(self.order[send])]);
            self.post(next, letter);
            let range = chunk(self.order[recv]);
            let bytes = self.take_elements::<T>(prev, range.len())?;
            match reduce {
                Some(op) => T::reduce_le(&mut data[range], &bytes, op),
                None => T::read_le(&bytes, &mut data[range]),
            }
            self.mailbox.recycle(bytes);
        }
        Ok(())
    }
}

/// Checks that rank `root` is a member of the group. (Buffers of different lengths are not
/// checked up front: they show as letters of the wrong size, which fail the group.)
fn check_root(m: &Member, root: usize) -> Result<(), CollectiveError> {
    if root >= m.world() {
        return Err(CollectiveError::Invalid(format!(
            "root rank {root} is out of range for group \"{}\" of {} members",
            m.name(),
            m.world()
        )));
    }
    Ok(())
}

/// Checks that `what` holds `n` members' `each` elements.
fn check_len(what: &str, len: usize, n: usize, each: usize) -> Result<(), CollectiveError> {
    if len == n * each {
        return Ok(());
    }
    Err(CollectiveError::Invalid(format!(
        "{what} holds {len} elements; {n} members of {each} need {}",
        n * each
    )))
}

/// Combines `data` across the members of group `name` by `op`; every member ends with the
/// result (Ray's `allreduce`). Every member passes a buffer of the same length.
pub fn allreduce<T: Element>(
    data: &mut [T],
    op: ReduceOp,
    name: &str,
) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    let (n, len) = (m.world(), data.len());
    let chunk = |i| ring::chunk(len, n, i);
    m.walk(data, &chunk, 0, Some(op))?;
    if op == ReduceOp::Mean {
        // Each member divides the chunk it holds reduced, before it goes round.
        T::divide(&mut data[chunk(m.reduced_chunk(m.rank))], n);
    }
    m.walk(data, &chunk, 1, None)
}

/// Combines `data` across the members by `op` into rank `root`'s buffer (Ray's `reduce`);
/// the other members' buffers are left as they were.
pub fn reduce<T: Element>(
    data: &mut [T],
    root: usize,
    op: ReduceOp,
    name: &str,
) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    check_root(&m, root)?;
    let (n, r, len) = (m.world(), m.rank, data.len());
    let chunk = |i| ring::chunk(len, n, i);
    // Reduce-scatter (on a copy, away from the root), then each rank's reduced chunk to it.
    let mut scratch;
    let buf: &mut [T] = if r == root {
        data
    } else {
        scratch = data.to_vec();
        &mut scratch
    };
    m.walk(buf, &chunk, 0, Some(op))?;
    let mine = chunk(m.reduced_chunk(r));
    if op == ReduceOp::Mean {
        T::divide(&mut buf[mine.clone()], n);
    }
    if r == root {
        for from in (0..n).filter(|&f| f != root) {
            let range = chunk(m.reduced_chunk(from));
            let bytes = m.take_elements::<T>(from, range.len())?;
            T::read_le(&bytes, &mut buf[range]);
            m.mailbox.recycle(bytes);
        }
    } else {
        let bytes = m.bytes_of(&buf[mine]);
        m.post(root, bytes);
    }
    Ok(())
}

/// Copies rank `root`'s `data` into every member's (Ray's `broadcast`): the root scatters
/// one chunk to each member, then the chunks go round the ring.
pub fn broadcast<T: Element>(
    data: &mut [T],
    root: usize,
    name: &str,
) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    check_root(&m, root)?;
    let (n, r, len) = (m.world(), m.rank, data.len());
    // Chunks numbered from the root: rank r holds chunk (r - root) after the scatter.
    let shift = |i: usize| (i + n - root) % n;
    let chunk = |i: usize| ring::chunk(len, n, shift(i));
    if r == root {
        for to in (0..n).filter(|&t| t != root) {
            let bytes = m.bytes_of(&data[chunk(to)]);
            m.post(to, bytes);
        }
    } else {
        let range = chunk(r);
        let bytes = m.take_elements::<T>(root, range.len())?;
        T::read_le(&bytes, &mut data[range]);
    }
    m.walk(data, &chunk, 0, None)
}

/// Gathers every member's `input` into `output`, rank by rank (Ray's `allgather`):
/// `output` holds `world_size * input.len()` elements.
pub fn allgather<T: Element>(
    input: &[T],
    output: &mut [T],
    name: &str,
) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    let (n, r, each) = (m.world(), m.rank, input.len());
    check_len("allgather's output", output.len(), n, each)?;
    let chunk = |i: usize| i * each..(i + 1) * each;
    output[chunk(r)].copy_from_slice(input);
    m.walk(output, &chunk, 0, None)
}

/// Combines `input` across the members by `op` and gives each rank its share (Ray's
/// `reducescatter`): `input` holds `world_size * output.len()` elements, and rank `r`'s
/// `output` gets the combined elements `r * output.len()..(r + 1) * output.len()`.
pub fn reducescatter<T: Element>(
    input: &[T],
    output: &mut [T],
    op: ReduceOp,
    name: &str,
) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    let (n, r, each) = (m.world(), m.rank, output.len());
    check_len("reducescatter's input", input.len(), n, each)?;
    let chunk = |i: usize| i * each..(i + 1) * each;
    let mut buf = input.to_vec();
    // Offset n - 1: the walk ends with rank r holding chunk r.
    m.walk(&mut buf, &chunk, n - 1, Some(op))?;
    output.copy_from_slice(&buf[chunk(r)]);
    if op == ReduceOp::Mean {
        T::divide(output, n);
    }
    Ok(())
}

/// Returns once every member of group `name` has called it (Ray's `barrier`).
pub fn barrier(name: &str) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    let (n, r) = (m.world(), m.rank);
    // Dissemination: in round k, tell rank r + 2^k and hear from rank r - 2^k.
    let mut d = 1;
    while d < n {
        m.post((r + d) % n, Vec::new());
        m.take((r + n - d) % n)?;
        d *= 2;
    }
    Ok(())
}

/// Sends `data` to rank `dst` of group `name` (Ray's `send`); it returns once the data is on
/// its way. The receiver calls [`recv`] with a buffer of the same length.
pub fn send<T: Element>(data: &[T], dst: usize, name: &str) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    check_root(&m, dst)?;
    if dst == m.rank {
        return Err(CollectiveError::Invalid(
            "a member cannot send to itself".into(),
        ));
    }
    let bytes = m.bytes_of(data);
    m.post(dst, bytes);
    Ok(())
}

/// Receives into `data` what rank `src` of group `name` sends with [`send`] (Ray's `recv`).
pub fn recv<T: Element>(data: &mut [T], src: usize, name: &str) -> Result<(), CollectiveError> {
    let member = group::member(name)?;
    let mut m = lock(&member);
    check_root(&m, src)?;
    if src == m.rank {
        return Err(CollectiveError::Invalid(
            "a member cannot receive from itself".into(),
        ));
    }
    let bytes = m.take_elements::<T>(src, data.len())?;
    T::read_le(&bytes, data);
    Ok(())
}
