//! Groups: who is in one, where each member runs, and how the members find each other.
//!
//! A group's table lives in a small named actor, `CollectiveGroupInfo`, named after the
//! group in the `mobula.collective` namespace (Ray keeps the same in a named actor too).
//! `create_collective_group` makes it with every seat filled from the handles it is given;
//! `init_collective_group`, called by each member, gets or makes it and takes its seat.
//! Either way a member reads the whole table once, opens the group in its node's mailbox,
//! and keeps its own entry in this process's [`Groups`]: its rank, where every rank runs,
//! and how many letters it sent to and took from each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::CollectiveError;
use crate::base::id::{ActorId, NodeId, TaskId};
use crate::runtime::global;
use crate::runtime::mailbox::{GroupKey, Mailbox, MemberAt};

/// The namespace of the groups' table actors.
pub const NAMESPACE: &str = "mobula.collective";

/// How long a member waits for the others to take their seats (Ray's default collective
/// timeout is 30 minutes; a gang started together joins in seconds).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a member looks for a group made for it before it counts as missing.
const LOOKUP_PATIENCE: Duration = Duration::from_secs(2);

/// Where one member runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// Its node.
    pub node: NodeId,
    /// Its actor, when it is one.
    pub actor: Option<ActorId>,
}

/// A group's table: its generation and, by rank, where each member runs (unfilled seats
/// `None`).
#[crate::actor(num_cpus = 0)]
pub struct CollectiveGroupInfo {
    generation: u64,
    seats: Vec<Option<Seat>>,
}

#[crate::actor]
impl CollectiveGroupInfo {
    fn new(world: u32, seats: Vec<Option<Seat>>) -> Result<Self, String> {
        if world == 0 {
            return Err("a group needs at least one member".into());
        }
        let mut seats = seats;
        seats.resize(world as usize, None);
        Ok(CollectiveGroupInfo {
            generation: uuid::Uuid::new_v4().as_u64_pair().0,
            seats,
        })
    }

    /// Takes seat `rank` for a member at `seat`; a group of another size, a rank out of
    /// range or taken by another member is an error.
    fn join(&mut self, world: u32, rank: u32, seat: Seat) -> Result<(), String> {
        if world as usize != self.seats.len() {
            return Err(format!(
                "the group has {} members; this member says {world}",
                self.seats.len()
            ));
        }
        match self.seats.get_mut(rank as usize) {
            None => Err(format!("rank {rank} is out of range for {world} members")),
            Some(Some(taken)) if *taken != seat => Err(format!("rank {rank} is taken")),
            Some(slot) => {
                *slot = Some(seat);
                Ok(())
            }
        }
    }

    /// The generation and every seat, once all are filled.
    fn table(&self) -> Option<(u64, Vec<Seat>)> {
        let seats: Option<Vec<Seat>> = self.seats.iter().copied().collect();
        seats.map(|s| (self.generation, s))
    }
}

/// Who a member is in this process: an actor, a task, or the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Who {
    Actor(ActorId),
    Task(TaskId),
    Driver,
}

impl Who {
    pub fn current() -> Who {
        let cx = crate::context();
        match (cx.actor_id(), cx.task_id()) {
            (Some(actor), _) => Who::Actor(actor),
            (None, Some(task)) => Who::Task(task),
            (None, None) => Who::Driver,
        }
    }
}

/// One member's view of its group.
pub(crate) struct Member {
    pub key: GroupKey,
    pub rank: usize,
    pub seats: Vec<MemberAt>,
    /// The ring's order: ranks by position, members of one node next to each other, so
    /// that the ring crosses between nodes as few times as it can.
    pub order: Vec<usize>,
    /// Each rank's position in the ring.
    pub position: Vec<usize>,
    /// Letters sent to each rank, and taken from each.
    pub sent: Vec<u64>,
    pub taken: Vec<u64>,
    pub mailbox: Arc<Mailbox>,
    /// The table's actor, held while the group lives here.
    _info: Option<CollectiveGroupInfoHandle>,
}

impl Member {
    pub fn world(&self) -> usize {
        self.seats.len()
    }

    pub fn name(&self) -> &str {
        &self.key.0
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.mailbox.close(&self.key);
    }
}

/// One member's entry, shared by its operations.
pub(crate) type SharedMember = Arc<Mutex<Member>>;

/// The groups the members in this process belong to (a runtime extension).
#[derive(Default)]
pub(crate) struct Groups {
    members: Mutex<HashMap<(Who, String), SharedMember>>,
    /// Table actors made by `create_collective_group` here, kept until the group is
    /// destroyed.
    made: Mutex<HashMap<String, CollectiveGroupInfoHandle>>,
}

fn groups() -> Result<Arc<Groups>, CollectiveError> {
    // Members entering their first group at once on one node share one table of groups.
    global::with_runtime(|rt| rt.extension_or_insert_with(|| Arc::new(Groups::default())))
        .ok_or(CollectiveError::NotInitialized)
}

fn mailbox() -> Result<Arc<Mailbox>, CollectiveError> {
    global::with_runtime(|rt| Arc::clone(&rt.mailbox)).ok_or(CollectiveError::NotInitialized)
}

fn rendezvous(group: &str, why: impl std::fmt::Display) -> CollectiveError {
    CollectiveError::Rendezvous {
        group: group.to_string(),
        reason: why.to_string(),
    }
}

/// Makes group `name` of the actors behind `seats`, rank by rank, from outside them.
pub(crate) fn create(name: &str, seats: Vec<Seat>) -> Result<(), CollectiveError> {
    if seats.is_empty() {
        return Err(CollectiveError::Invalid(
            "a group needs at least one member".into(),
        ));
    }
    let groups = groups()?;
    // On the caller's node: the table outlives a member's node.
    let mut options = CollectiveGroupInfo::options();
    if let Some(node) = crate::context().node_id() {
        options = options
            .scheduling_strategy(crate::SchedulingStrategy::NodeAffinity { node, soft: true });
    }
    let info = options
        .name(name)
        .namespace(NAMESPACE)
        .remote(
            seats.len() as u32,
            seats.into_iter().map(Some).collect::<Vec<_>>(),
        )
        .map_err(|e| rendezvous(name, e))?;
    // Made: its constructor ran (a name taken shows here as an error).
    info.table().get().map_err(|e| rendezvous(name, e))?;
    // And named where every member looks: the head, in a cluster.
    if let Err(e) = wait_until_named(name) {
        crate::kill(&info);
        return Err(e);
    }
    groups
        .made
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), info);
    Ok(())
}

/// Rank `rank` of `world` takes its seat in group `name` and waits for the others.
pub(crate) fn init(world: u32, rank: u32, name: &str) -> Result<(), CollectiveError> {
    if rank >= world {
        return Err(CollectiveError::Invalid(format!(
            "rank {rank} is out of range for {world} members"
        )));
    }
    // Rank 0 makes the table; the others wait for it to be named (as Ray does): no race
    // between two members making it at once.
    let info = if rank == 0 {
        CollectiveGroupInfo::options()
            .name(name)
            .namespace(NAMESPACE)
            .remote(world, Vec::<Option<Seat>>::new())
            .map_err(|e| rendezvous(name, e))?
    } else {
        find_table(name)?
    };
    let seat = here();
    info.join(world, rank, seat)
        .get()
        .map_err(|e| rendezvous(name, e))?;
    let (generation, seats) = wait_for_table(&info, name)?;
    enter(name, generation, rank as usize, seats, Some(info))
}

fn here() -> Seat {
    let cx = crate::context();
    Seat {
        node: cx.node_id().expect("a runtime runs"),
        actor: cx.actor_id(),
    }
}

/// Waits until the head knows the table's name (members on other nodes ask it there); at
/// once outside a cluster.
fn wait_until_named(name: &str) -> Result<(), CollectiveError> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        let known = global::with_runtime(|rt| {
            let Some(cluster) = crate::cluster::node_of(rt) else {
                return true;
            };
            let ask = crate::wire::Message::FindActor {
                namespace: NAMESPACE.to_string(),
                name: name.to_string(),
            };
            matches!(
                cluster.ask_head_blocking(&rt.node_arbiter, ask),
                Ok(crate::wire::Message::ActorFound { .. })
            )
        })
        .ok_or(CollectiveError::NotInitialized)?;
        if known {
            return Ok(());
        }
        if started.elapsed() > JOIN_TIMEOUT {
            return Err(rendezvous(name, "the head never listed the group's table"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The table of group `name`, waiting for rank 0 to make it.
fn find_table(name: &str) -> Result<CollectiveGroupInfoHandle, CollectiveError> {
    find_table_within(name, JOIN_TIMEOUT).map_err(|last| {
        rendezvous(
            name,
            format!("rank 0 did not make the group within {JOIN_TIMEOUT:?} ({last})"),
        )
    })
}

/// The table of group `name`, looked up until it is found or `patience` passes; the last
/// lookup's error otherwise.
fn find_table_within(
    name: &str,
    patience: Duration,
) -> Result<CollectiveGroupInfoHandle, crate::ActorError> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match crate::get_actor_in::<CollectiveGroupInfo>(NAMESPACE, name) {
            Ok(info) => return Ok(info),
            Err(e) if started.elapsed() > patience => return Err(e),
            Err(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Reads the group's table until every seat is taken, backing off up to 20 ms between reads.
fn wait_for_table(
    info: &CollectiveGroupInfoHandle,
    name: &str,
) -> Result<(u64, Vec<Seat>), CollectiveError> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(table) = info.table().get().map_err(|e| rendezvous(name, e))? {
            return Ok(table);
        }
        if started.elapsed() > JOIN_TIMEOUT {
            return Err(rendezvous(
                name,
                format!("not every member joined within {JOIN_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn enter(
    name: &str,
    generation: u64,
    rank: usize,
    seats: Vec<Seat>,
    info: Option<CollectiveGroupInfoHandle>,
) -> Result<(), CollectiveError> {
    let groups = groups()?;
    let mailbox = mailbox()?;
    let key = (name.to_string(), generation);
    let seats: Vec<MemberAt> = seats
        .into_iter()
        .map(|s| MemberAt {
            node: s.node,
            actor: s.actor,
        })
        .collect();
    mailbox.open(&key, seats.clone());
    let world = seats.len();
    let order = ring_order(&seats);
    let mut position = vec![0; world];
    for (p, &r) in order.iter().enumerate() {
        position[r] = p;
    }
    let member = Member {
        key,
        rank,
        seats,
        order,
        position,
        sent: vec![0; world],
        taken: vec![0; world],
        mailbox,
        _info: info,
    };
    let mut members = groups.members.lock().unwrap_or_else(|e| e.into_inner());
    // Entries of groups that failed are let go as new ones come (their members will not
    // call again, or will get the failure from a fresh lookup).
    members.retain(|_, m| m.try_lock().map_or(true, |m| !m.mailbox.has_failed(&m.key)));
    members.insert(
        (Who::current(), name.to_string()),
        Arc::new(Mutex::new(member)),
    );
    Ok(())
}

/// Ranks in ring order: grouped by node, the nodes in the order of their lowest rank, ranks
/// ascending within a node.
fn ring_order(seats: &[MemberAt]) -> Vec<usize> {
    let first_rank_on = |node| seats.iter().position(|s| s.node == node).unwrap_or(0);
    let mut order: Vec<usize> = (0..seats.len()).collect();
    order.sort_by_key(|&r| (first_rank_on(seats[r].node), r));
    order
}

/// The calling member's entry for group `name`; a member of a group made from outside
/// finds its rank in the table the first time.
pub(crate) fn member(name: &str) -> Result<Arc<Mutex<Member>>, CollectiveError> {
    let groups = groups()?;
    let who = Who::current();
    if let Some(m) = groups
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(who, name.to_string()))
    {
        return Ok(Arc::clone(m));
    }
    let Who::Actor(me) = who else {
        return Err(CollectiveError::NoGroup(name.to_string()));
    };
    // A group made for this actor from another process may still be on its way to the
    // head's names: looked up for a little while before it counts as missing.
    let info = match find_table_within(name, LOOKUP_PATIENCE) {
        Ok(info) => info,
        Err(crate::ActorError::NotFound { .. }) => {
            return Err(CollectiveError::NoGroup(name.to_string()));
        }
        Err(e) => return Err(rendezvous(name, e)),
    };
    let (generation, seats) = wait_for_table(&info, name)?;
    let rank = seats
        .iter()
        .position(|s| s.actor == Some(me))
        .ok_or_else(|| rendezvous(name, format!("actor {me} holds no seat in the group")))?;
    enter(name, generation, rank, seats, None)?;
    groups
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(who, name.to_string()))
        .cloned()
        .ok_or_else(|| CollectiveError::NoGroup(name.to_string()))
}

/// The calling member leaves group `name`; from the process that made it with
/// `create_collective_group`, its table goes too.
pub(crate) fn destroy(name: &str) -> Result<(), CollectiveError> {
    let groups = groups()?;
    let left = groups
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(Who::current(), name.to_string()));
    let made = groups
        .made
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
    if let Some(info) = &made {
        crate::kill(info);
    }
    match (left, made) {
        (None, None) => Err(CollectiveError::NoGroup(name.to_string())),
        _ => Ok(()),
    }
}

/// Whether the calling member is in group `name` here.
pub(crate) fn is_member(name: &str) -> bool {
    groups().is_ok_and(|g| {
        g.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(Who::current(), name.to_string()))
    })
}
