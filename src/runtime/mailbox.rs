//! Letters between the members of a collective group: this process's mailbox.
//!
//! A member posts a letter (bytes, addressed by [`Letter`]) to another rank; a letter for a
//! member in this process is put straight into the mailbox (moved, never through the object
//! store), one for a member on another node goes over QUIC (`ClusterPort::send_mail`) into
//! that node's mailbox. A member takes its letters in any order it likes, each by its key,
//! waiting (its CPU lent back, as in a blocking get) until the letter is there or the group
//! has failed.
//!
//! A group fails, and every wait on it ends with the reason, when one of its member actors
//! ends in this process (`actor_gone`, from the actor directory), when a node that holds a
//! member dies (`node_gone`, from the cluster's view), when a letter cannot be delivered, or
//! when another node says so (`Message::MailFailed`).
//!
//! Bounded: letters for a group not opened here yet (a fast member wrote before a slow one
//! joined) are kept up to [`EARLY_LIMIT`] bytes, everything buffered up to [`MAILBOX_LIMIT`];
//! past that, a letter is refused and its sender's group fails. Letters for a group closed
//! here are dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use actix_rt::ArbiterHandle;
use futures::future::LocalBoxFuture;

use super::cluster_port::ClusterPort;
use super::global::BlockedInGet;
use crate::base::id::{ActorId, NodeId};
use crate::wire::Letter;

/// Bytes kept for groups not opened in this process yet.
pub const EARLY_LIMIT: u64 = 1 << 30;

/// Bytes kept in the mailbox in all.
pub const MAILBOX_LIMIT: u64 = 8 << 30;

/// Spare letter buffers kept for reuse, and the most bytes they may hold: a buffer used
/// again skips the page faults a fresh one pays for every page (most of the cost of moving
/// a large letter within a node).
const SPARE_BUFFERS: usize = 8;
const SPARE_BYTES: usize = 1 << 30;

/// What a letter counts for against the limits beyond its bytes (its key and entry), so that
/// empty letters are bounded too.
const LETTER_OVERHEAD: u64 = 64;

/// Groups not opened here that may hold early letters or failures at once, and how long
/// they are kept (a group whose member here never comes is let go).
const EARLY_GROUPS: usize = 1024;
const EARLY_TTL: Duration = Duration::from_secs(600);

/// What a letter counts for against the limits.
fn cost(letter: &[u8]) -> u64 {
    letter.len() as u64 + LETTER_OVERHEAD
}

/// What a group's letters count for.
fn cost_of(group: &Group) -> u64 {
    group.letters.values().map(|l| cost(l)).sum()
}

/// Groups closed here whose late letters are dropped (the latest ones).
const REMEMBER_CLOSED: usize = 1024;

/// A group: its name and generation.
pub type GroupKey = (String, u64);

/// Where a member of a group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberAt {
    /// Its node.
    pub node: NodeId,
    /// Its actor, when the member is one.
    pub actor: Option<ActorId>,
}

#[derive(Default)]
struct Group {
    members: Vec<MemberAt>,
    /// How many members in this process opened it.
    opened: u32,
    failed: Option<String>,
    letters: HashMap<(u32, u32, u64), Vec<u8>>,
    /// For a group not opened here yet: when its first letter or failure came.
    since: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<GroupKey, Group>,
    /// Letters that came before their group was opened here, and failures likewise.
    early: HashMap<GroupKey, Group>,
    early_bytes: u64,
    bytes: u64,
    closed: VecDeque<GroupKey>,
    closed_set: HashSet<GroupKey>,
    stopped: bool,
}

impl Inner {
    /// Lets go of groups not opened here within [`EARLY_TTL`] of their first letter.
    fn forget_stale_early(&mut self, now: Instant) {
        let stale: Vec<GroupKey> = self
            .early
            .iter()
            .filter(|(_, g)| g.since.is_some_and(|t| now.duration_since(t) > EARLY_TTL))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(group) = self.early.remove(&key) {
                self.early_bytes -= cost_of(&group);
            }
        }
    }
}

/// A node's mailbox (one per runtime).
pub struct Mailbox {
    inner: Mutex<Inner>,
    changed: Condvar,
    early_limit: u64,
    limit: u64,
    node: NodeId,
    /// The node's event loop, where letters to other nodes are sent from.
    arbiter: Option<ArbiterHandle>,
    /// Buffers of letters read, for the next letters written.
    spare: Mutex<Vec<Vec<u8>>>,
    /// The node's part in a cluster, once it joined one (held weakly: the node holds the
    /// mailbox).
    cluster: OnceLock<Weak<dyn ClusterPort>>,
}

impl Mailbox {
    /// The mailbox of node `node`, whose event loop is `arbiter`.
    pub fn new(node: NodeId, arbiter: ArbiterHandle) -> Self {
        let mut mailbox = Mailbox::with_limits(node, EARLY_LIMIT, MAILBOX_LIMIT);
        mailbox.arbiter = Some(arbiter);
        mailbox
    }

    /// A mailbox that keeps up to `early_limit` bytes for groups not opened yet and `limit`
    /// in all, and reaches no other node.
    pub fn with_limits(node: NodeId, early_limit: u64, limit: u64) -> Self {
        Mailbox {
            inner: Mutex::default(),
            changed: Condvar::new(),
            early_limit,
            limit,
            node,
            spare: Mutex::default(),
            arbiter: None,
            cluster: OnceLock::new(),
        }
    }

    /// The node joined a cluster: letters to other nodes go through `cluster`.
    pub fn connect(&self, cluster: &Arc<dyn ClusterPort>) {
        let _ = self.cluster.set(Arc::downgrade(cluster));
    }

    /// Runs `send` on the node's event loop; a failure fails group `key`.
    fn send_out(
        self: &Arc<Self>,
        key: GroupKey,
        send: impl FnOnce(Arc<dyn ClusterPort>) -> LocalBoxFuture<'static, Result<(), String>>
        + Send
        + 'static,
    ) {
        let cluster = self.cluster.get().and_then(Weak::upgrade);
        let (Some(cluster), Some(arbiter)) = (cluster, &self.arbiter) else {
            self.fail(
                &key,
                "another node is not reachable: this node is in no cluster".into(),
            );
            return;
        };
        let mailbox = Arc::clone(self);
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                if let Err(why) = send(cluster).await {
                    mailbox.fail(&key, why);
                }
            });
        });
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A member in this process joins group `key` whose ranks run at `members`. Letters that
    /// came early are kept; a failure that came early fails it at once.
    pub fn open(&self, key: &GroupKey, members: Vec<MemberAt>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(early) = inner.early.remove(key) {
            let bytes = cost_of(&early);
            inner.early_bytes -= bytes;
            inner.bytes += bytes;
            inner.groups.insert(key.clone(), early);
        }
        let group = inner.groups.entry(key.clone()).or_default();
        group.members = members;
        group.opened += 1;
        if inner.stopped && group.failed.is_none() {
            group.failed = Some("the node is stopping".into());
        }
    }

    /// A member in this process leaves group `key`; the last one to leave drops it and its
    /// letters, and letters still on their way to it are dropped when they come.
    pub fn close(&self, key: &GroupKey) {
        let mut inner = self.lock();
        let Some(group) = inner.groups.get_mut(key) else {
            return;
        };
        group.opened = group.opened.saturating_sub(1);
        if group.opened > 0 {
            return;
        }
        if let Some(group) = inner.groups.remove(key) {
            inner.bytes -= cost_of(&group);
        }
        if inner.closed.len() == REMEMBER_CLOSED
            && let Some(old) = inner.closed.pop_front()
        {
            inner.closed_set.remove(&old);
        }
        inner.closed.push_back(key.clone());
        inner.closed_set.insert(key.clone());
    }

    /// Puts a letter that came for a member in this process into the mailbox.
    pub fn deposit(&self, letter: Letter, bytes: Vec<u8>) -> Result<(), String> {
        let key = (letter.group, letter.generation);
        let slot = (letter.from, letter.to, letter.seq);
        let len = cost(&bytes);
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.closed_set.contains(&key) {
            return Ok(()); // its group is gone here: nobody will read it
        }
        inner.forget_stale_early(Instant::now());
        if inner.bytes + inner.early_bytes + len > self.limit {
            return Err(format!(
                "the mailbox is full ({} bytes waiting to be read)",
                inner.bytes
            ));
        }
        let early = !inner.groups.contains_key(&key);
        if early && inner.early_bytes + len > self.early_limit {
            return Err(format!(
                "group {} is not open on this node and {} bytes already wait for groups \
                 that are not",
                key.0, inner.early_bytes
            ));
        }
        if early && !inner.early.contains_key(&key) && inner.early.len() >= EARLY_GROUPS {
            return Err(format!(
                "group {} is not open on this node and {EARLY_GROUPS} other groups wait for \
                 their members here",
                key.0
            ));
        }
        let group = if early {
            let group = inner.early.entry(key).or_default();
            group.since.get_or_insert_with(Instant::now);
            group
        } else {
            inner.groups.get_mut(&key).expect("checked above")
        };
        if group.failed.is_some() {
            return Ok(());
        }
        if let Some(old) = group.letters.insert(slot, bytes) {
            // A second letter under one key: a member sent out of step. The latest stays.
            tracing::warn!(
                from = slot.0,
                to = slot.1,
                seq = slot.2,
                "a letter came twice"
            );
            let counter = if early {
                &mut inner.early_bytes
            } else {
                &mut inner.bytes
            };
            *counter -= cost(&old);
        }
        if early {
            inner.early_bytes += len;
        } else {
            inner.bytes += len;
        }
        self.changed.notify_all();
        Ok(())
    }

    /// Fails group `key` here: every wait on it ends with `reason` (the first reason stays).
    pub fn fail(&self, key: &GroupKey, reason: String) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.closed_set.contains(key) {
            return;
        }
        let group = match inner.groups.get_mut(key) {
            Some(group) => group,
            None if inner.early.len() < EARLY_GROUPS => {
                let group = inner.early.entry(key.clone()).or_default();
                group.since.get_or_insert_with(Instant::now);
                group
            }
            None => return,
        };
        if group.failed.is_none() {
            group.failed = Some(reason);
            let bytes = cost_of(group);
            group.letters.clear();
            if inner.groups.contains_key(key) {
                inner.bytes -= bytes;
            } else {
                inner.early_bytes -= bytes;
            }
        }
        self.changed.notify_all();
    }

    /// The groups open here with a member on `node`, or with member actor `actor`, and why
    /// each fails: the dead member named.
    fn failing(&self, dead: impl Fn(&MemberAt) -> bool, what: &str) -> Vec<(GroupKey, String)> {
        let inner = self.lock();
        inner
            .groups
            .iter()
            .filter(|(_, g)| g.failed.is_none())
            .filter_map(|(key, g)| {
                let rank = g.members.iter().position(&dead)?;
                let m = g.members[rank];
                let who = match m.actor {
                    Some(actor) => format!("actor {actor} on node {}", m.node),
                    None => format!("node {}", m.node),
                };
                Some((
                    key.clone(),
                    format!("member rank {rank} of group {} ({who}) {what}", key.0),
                ))
            })
            .collect()
    }

    /// Actor `actor` ended in this process: its groups fail here, and on every other node
    /// that holds one of their members.
    pub fn actor_gone(self: &Arc<Self>, actor: ActorId) {
        for (key, reason) in self.failing(|m| m.actor == Some(actor), "died") {
            let others: HashSet<NodeId> = self
                .lock()
                .groups
                .get(&key)
                .map(|g| g.members.iter().map(|m| m.node).collect())
                .unwrap_or_default();
            self.fail(&key, reason.clone());
            if self.cluster.get().is_none() {
                continue;
            }
            for node in others.into_iter().filter(|n| *n != self.node) {
                let (group, reason) = (key.clone(), reason.clone());
                // A node that cannot be told finds out from its own view or link.
                self.send_out(key.clone(), move |cluster| {
                    Box::pin(async move {
                        let _ = cluster.mail_failed(node, group, reason).await;
                        Ok(())
                    })
                });
            }
        }
    }

    /// Node `node` died: the groups with a member on it fail here.
    pub fn node_gone(&self, node: NodeId) {
        for (key, reason) in self.failing(|m| m.node == node, "was lost with its node") {
            self.fail(&key, reason);
        }
    }

    /// The node stops: every group fails.
    pub fn stop(&self) {
        let keys: Vec<GroupKey> = {
            let mut inner = self.lock();
            inner.stopped = true;
            inner.groups.keys().cloned().collect()
        };
        for key in keys {
            self.fail(&key, "the node is stopping".into());
        }
    }

    /// Sends `bytes` to the rank `letter.to` of its group, which runs at `to`: moved into the
    /// mailbox when it runs in this process, sent over QUIC otherwise (a failure to deliver
    /// fails the group here).
    pub fn post(self: &Arc<Self>, to: MemberAt, letter: Letter, bytes: Vec<u8>) {
        let key = (letter.group.clone(), letter.generation);
        if to.node == self.node {
            if let Err(why) = self.deposit(letter, bytes) {
                self.fail(&key, why);
            }
            return;
        }
        let rank = letter.to;
        self.send_out(key, move |cluster| {
            Box::pin(async move {
                cluster
                    .send_mail(to.node, letter, bytes)
                    .await
                    .map_err(|e| {
                        format!("a letter to rank {rank} on node {} was lost: {e}", to.node)
                    })
            })
        });
    }

    /// Takes the letter `letter`, waiting for it (with the caller's CPU lent back) until it
    /// comes, its group fails (the error is the failure), or `patience` passes (`None`).
    pub fn take_within(
        &self,
        letter: &Letter,
        patience: Duration,
    ) -> Result<Option<Vec<u8>>, String> {
        let key = (letter.group.clone(), letter.generation);
        let slot = (letter.from, letter.to, letter.seq);
        let deadline = Instant::now() + patience;
        let mut inner = self.lock();
        let mut lent = None;
        loop {
            let Some(group) = inner.groups.get_mut(&key) else {
                return Err(format!("group {} is not open here", key.0));
            };
            if let Some(why) = &group.failed {
                return Err(why.clone());
            }
            if let Some(bytes) = group.letters.remove(&slot) {
                inner.bytes -= cost(&bytes);
                return Ok(Some(bytes));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            if lent.is_none() {
                // Entered without the lock: it may ask the scheduler for another thread.
                drop(inner);
                lent = Some(BlockedInGet::enter());
                inner = self.lock();
                continue;
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// An empty buffer with room for `len` bytes: a spare one when one is large enough.
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        match spare.iter().position(|b| b.capacity() >= len) {
            Some(i) => {
                let mut b = spare.swap_remove(i);
                b.clear();
                b
            }
            None => Vec::with_capacity(len),
        }
    }

    /// Keeps a letter's buffer, once read, for a later [`Mailbox::buffer`].
    pub fn recycle(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = spare.iter().map(Vec::capacity).sum();
        if spare.len() < SPARE_BUFFERS && held + buffer.capacity() <= SPARE_BYTES {
            spare.push(buffer);
        } else if let Some(smallest) = spare
            .iter_mut()
            .min_by_key(|b| b.capacity())
            .filter(|b| b.capacity() < buffer.capacity())
            .filter(|b| held - b.capacity() + buffer.capacity() <= SPARE_BYTES)
        {
            *smallest = buffer;
        }
    }

    /// Whether group `key` failed here (or is not open).
    pub fn has_failed(&self, key: &GroupKey) -> bool {
        self.lock()
            .groups
            .get(key)
            .is_none_or(|g| g.failed.is_some())
    }

    /// Bytes waiting in the mailbox.
    #[cfg(test)]
    pub fn buffered(&self) -> u64 {
        let inner = self.lock();
        inner.bytes + inner.early_bytes
    }

    /// Groups open here.
    #[cfg(test)]
    pub fn groups(&self) -> usize {
        self.lock().groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(from: u32, to: u32, seq: u64) -> Letter {
        Letter {
            group: "g".into(),
            generation: 1,
            from,
            to,
            seq,
        }
    }

    const WAIT: Duration = Duration::from_secs(60);

    fn mailbox() -> Mailbox {
        Mailbox::with_limits(NodeId::random(), EARLY_LIMIT, MAILBOX_LIMIT)
    }

    fn key() -> GroupKey {
        ("g".into(), 1)
    }

    fn members(node: NodeId, actors: &[ActorId]) -> Vec<MemberAt> {
        actors
            .iter()
            .map(|a| MemberAt {
                node,
                actor: Some(*a),
            })
            .collect()
    }

    #[test]
    fn early_letters_wait_for_their_group_and_closed_groups_drop_theirs() {
        let mailbox = mailbox();
        mailbox.deposit(letter(1, 0, 0), vec![1, 2, 3]).unwrap();
        assert_eq!(mailbox.buffered(), 3 + LETTER_OVERHEAD);
        let node = NodeId::random();
        let (a, b) = (ActorId::from_parts(1, 1), ActorId::from_parts(1, 2));
        mailbox.open(&key(), members(node, &[a, b]));
        assert_eq!(
            mailbox.take_within(&letter(1, 0, 0), WAIT).unwrap(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(mailbox.buffered(), 0);
        mailbox.close(&key());
        assert_eq!(mailbox.groups(), 0);
        mailbox.deposit(letter(1, 0, 1), vec![9; 10]).unwrap();
        assert_eq!(
            mailbox.buffered(),
            0,
            "a closed group's late letter is dropped"
        );
    }

    #[test]
    fn a_failed_group_ends_every_wait_with_its_reason() {
        let mailbox = Arc::new(mailbox());
        let node = NodeId::random();
        let (a, b) = (ActorId::from_parts(1, 1), ActorId::from_parts(1, 2));
        mailbox.open(&key(), members(node, &[a, b]));
        let waiting = {
            let mailbox = Arc::clone(&mailbox);
            std::thread::spawn(move || mailbox.take_within(&letter(1, 0, 0), WAIT))
        };
        for (key, reason) in mailbox.failing(|m| m.actor == Some(b), "died") {
            mailbox.fail(&key, reason);
        }
        let err = waiting.join().unwrap().unwrap_err();
        assert!(
            err.contains("rank 1") && err.contains(&b.to_string()),
            "{err}"
        );
        mailbox.deposit(letter(1, 0, 1), vec![0; 4]).unwrap();
        assert_eq!(mailbox.buffered(), 0);
    }

    #[test]
    fn a_failure_that_comes_first_fails_the_group_when_it_opens() {
        let mailbox = mailbox();
        mailbox.fail(&key(), "rank 2 died".into());
        mailbox.open(&key(), Vec::new());
        assert_eq!(
            mailbox.take_within(&letter(2, 0, 0), WAIT).unwrap_err(),
            "rank 2 died"
        );
    }

    #[test]
    fn early_letters_are_bounded() {
        let mailbox =
            Mailbox::with_limits(NodeId::random(), 2 * (51 + LETTER_OVERHEAD) - 1, 10_000);
        let big = vec![0u8; 51];
        mailbox.deposit(letter(1, 0, 0), big.clone()).unwrap();
        let err = mailbox.deposit(letter(1, 0, 1), big).unwrap_err();
        assert!(err.contains("not open"), "{err}");
        // Empty letters to ever new groups are bounded by their count.
        let mailbox = super::tests::mailbox();
        for g in 0..EARLY_GROUPS {
            let to = Letter {
                group: format!("g{g}"),
                ..letter(1, 0, 0)
            };
            mailbox.deposit(to, Vec::new()).unwrap();
        }
        let one_more = Letter {
            group: "another".into(),
            ..letter(1, 0, 0)
        };
        let err = mailbox.deposit(one_more, Vec::new()).unwrap_err();
        assert!(err.contains("other groups wait"), "{err}");
    }
}
