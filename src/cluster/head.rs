//! The head's own state: the membership table, the cluster's CA and join token, and the
//! names of actors cluster-wide; its answers to requests on the tables it keeps durable;
//! and the loop that declares silent nodes dead.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use super::head_db::{Change, Durable, HeadDb, NameKey, Named};
use super::jobs::JobProcess;
use super::node::ClusterNode;
use crate::base::id::{ActorId, NodeId};
use crate::base::jobs::{JobId, Jobs};
use crate::base::kv::Kv;
use crate::base::membership::Membership;
use crate::base::rows::PlacementGroupInfo;
use crate::transport::credentials::ClusterCa;
use crate::wire::Message;

/// The head's own state.
pub(crate) struct HeadState {
    pub membership: Membership,
    pub ca: ClusterCa,
    pub token: String,
    pub started: Instant,
    /// Named actors, cluster-wide: (namespace, name) to (actor, class, node).
    pub names: HashMap<(String, String), (ActorId, String, NodeId)>,
    /// Where actors created on other nodes than their owner's run: actor to (class, node).
    pub locations: HashMap<ActorId, (String, NodeId)>,
    /// How long the certificates the head signs live.
    pub certificate_lifetime: Duration,
    /// Every driver that connected and every program submitted.
    pub jobs: Jobs,
    /// The programs it runs for submitted jobs.
    pub job_processes: HashMap<JobId, JobProcess>,
    /// The cluster directory.
    pub dir: PathBuf,
    /// The tables that outlive the head (`head.redb` in the cluster directory).
    pub db: HeadDb,
    /// When the head last recorded itself alive in its database.
    pub alive_recorded: Instant,
    /// The key-value store for libraries.
    pub kv: Kv,
    /// Placement groups, by id: their bundles' nodes and their creator.
    pub groups: std::collections::BTreeMap<String, PlacementGroupInfo>,
}

impl HeadState {
    /// Nodes died or left: actors on them no longer hold their names or locations, groups
    /// they made are gone, and they are no longer members, in the database too.
    pub fn forget_nodes(&mut self, gone: &[NodeId]) {
        if gone.is_empty() {
            return;
        }
        let names: Vec<NameKey> = self
            .names
            .iter()
            .filter(|(_, (_, _, node))| gone.contains(node))
            .map(|(k, _)| k.clone())
            .collect();
        let actors: Vec<ActorId> = self
            .locations
            .iter()
            .filter(|(_, (_, node))| gone.contains(node))
            .map(|(a, _)| *a)
            .collect();
        // A group goes with its creator (the nodes give back what they reserved for it).
        let groups: Vec<String> = self
            .groups
            .values()
            .filter(|g| gone.contains(&g.creator))
            .map(|g| g.id.clone())
            .collect();
        for g in &groups {
            self.groups.remove(g);
        }
        for k in &names {
            self.names.remove(k);
        }
        for a in &actors {
            self.locations.remove(a);
        }
        // One transaction for all of it.
        let version = self.membership.version();
        let mut changes = vec![Change::MembersGone {
            gone: gone.to_vec(),
            version,
        }];
        if !names.is_empty() {
            changes.push(Change::NamesFreed(names));
        }
        if !actors.is_empty() {
            changes.push(Change::LocationsGone(actors));
        }
        if !groups.is_empty() {
            changes.push(Change::GroupsGone(groups));
        }
        if let Err(e) = self.db.commit(changes) {
            tracing::error!("{e}");
        }
    }

    /// Changes the job table and records it (a failure to record is logged: the change
    /// stands in memory, and a restarted head would not know it).
    pub fn change_jobs<R>(&mut self, change: impl FnOnce(&mut Jobs) -> R) -> R {
        let out = change(&mut self.jobs);
        if let Err(e) = self.db.commit(vec![Change::jobs(&self.jobs)]) {
            tracing::error!("{e}");
        }
        out
    }

    /// A request to the key-value store, answered once what it changed is durable.
    pub fn kv_request(&mut self, request: Message) -> Message {
        let done = |changed: Result<bool, String>| match changed {
            Ok(existed) => Message::KvDone { existed },
            Err(reason) => Message::Refused { reason },
        };
        let db = &self.db;
        match request {
            Message::KvPut {
                namespace,
                key,
                value,
                overwrite,
            } => done(self.kv.put((namespace, key), value, overwrite, |k, v| {
                let change = Change::Kv(k.clone(), v.to_vec());
                db.commit(vec![change]).map_err(|e| e.to_string())
            })),
            Message::KvDelete {
                namespace,
                key,
                by_prefix,
            } => done(self.kv.delete(&namespace, &key, by_prefix, |keys| {
                let change = Change::KvGone(keys.to_vec());
                db.commit(vec![change]).map_err(|e| e.to_string())
            })),
            Message::KvGet { namespace, key } => Message::KvValue {
                value: self.kv.get(&(namespace, key)).cloned(),
            },
            Message::KvList { namespace, prefix } => {
                let (keys, more) = self.kv.list(&namespace, &prefix);
                Message::KvKeys { keys, more }
            }
            other => Message::Refused {
                reason: format!("{} is no key-value request", other.name()),
            },
        }
    }

    /// The membership's clock: milliseconds since the head started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

fn lock(state: &Mutex<HeadState>) -> MutexGuard<'_, HeadState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn refused(reason: String) -> Message {
    Message::Refused { reason }
}

/// `answer` once `durable` is: the change was made in memory under the lock (so the next
/// request sees it) and handed to the database's writer there; the wait happens outside the
/// lock, so that the changes of requests arriving meanwhile join the same commit. If the
/// change cannot be made durable, `undo` takes it back and the request is refused.
async fn once_durable(
    state: &Mutex<HeadState>,
    answer: Message,
    durable: Option<Durable>,
    undo: impl FnOnce(&mut HeadState),
) -> Message {
    let Some(durable) = durable else {
        return answer;
    };
    match durable.wait().await {
        Ok(()) => answer,
        Err(e) => {
            tracing::error!("{e}");
            undo(&mut lock(state));
            refused(e.to_string())
        }
    }
}

/// Puts `value` back at `key` of `table` (or takes the key out), if `key` still holds
/// what a change that was not made durable put there.
fn put_back<K: Eq + std::hash::Hash, V: PartialEq>(
    table: &mut HashMap<K, V>,
    key: K,
    ours: &V,
    before: Option<V>,
) {
    if table.get(&key) == Some(ours) {
        match before {
            Some(v) => table.insert(key, v),
            None => table.remove(&key),
        };
    }
}

/// An actor claims a name: taken once it is durable, and not before (after a crash it is
/// either taken or free). A name another actor holds is found instead.
pub(super) async fn name_actor(state: &Mutex<HeadState>, key: NameKey, named: Named) -> Message {
    let (answer, durable, before) = {
        let mut s = lock(state);
        match s.names.get(&key) {
            Some((held, class, at)) if *held != named.0 => {
                let found = Message::ActorFound {
                    actor: *held,
                    class: class.clone(),
                    node: *at,
                };
                (found, s.db.settled(), None)
            }
            _ => {
                crash_point("name-before-commit");
                let before = s.names.insert(key.clone(), named.clone());
                let durable = s.db.submit(vec![Change::Name(key.clone(), named.clone())]);
                (Message::Ack, Some(durable), before)
            }
        }
    };
    let claimed = matches!(answer, Message::Ack);
    let answer = once_durable(state, answer, durable, |s| {
        if claimed {
            put_back(&mut s.names, key, &named, before);
        }
    })
    .await;
    if matches!(answer, Message::Ack) {
        crash_point("name-after-commit");
    }
    answer
}

/// An actor gives its name up (it died).
pub(super) async fn unname_actor(
    state: &Mutex<HeadState>,
    key: NameKey,
    actor: ActorId,
) -> Message {
    let durable = {
        let mut s = lock(state);
        let held = s.names.get(&key).is_some_and(|(a, _, _)| *a == actor);
        held.then(|| {
            s.names.remove(&key);
            s.db.submit(vec![Change::NamesFreed(vec![key])])
        })
    };
    // Not durable: the name stays free here (its actor is gone), and a restarted head would
    // find it held by an actor that is not there.
    once_durable(state, Message::Ack, durable, |_| {}).await
}

/// Where an actor created on another node than its owner's runs.
pub(super) async fn actor_at(
    state: &Mutex<HeadState>,
    actor: ActorId,
    class: String,
    at: NodeId,
) -> Message {
    let ours = (class.clone(), at);
    let (durable, before) = {
        let mut s = lock(state);
        let before = s.locations.insert(actor, ours.clone());
        (
            s.db.submit(vec![Change::Location(actor, class, at)]),
            before,
        )
    };
    once_durable(state, Message::Ack, Some(durable), |s| {
        put_back(&mut s.locations, actor, &ours, before)
    })
    .await
}

/// An actor is gone: its location is no longer kept.
pub(super) async fn actor_gone(state: &Mutex<HeadState>, actor: ActorId) -> Message {
    let durable = {
        let mut s = lock(state);
        s.locations
            .remove(&actor)
            .map(|_| s.db.submit(vec![Change::LocationsGone(vec![actor])]))
    };
    once_durable(state, Message::Ack, durable, |_| {}).await
}

/// Where an actor runs, as far as the head knows (once what it knows is durable).
pub(super) async fn locate_actor(state: &Mutex<HeadState>, actor: ActorId) -> Message {
    let (answer, settled) = {
        let s = lock(state);
        let answer = match s.locations.get(&actor) {
            Some((class, at)) => Message::ActorFound {
                actor,
                class: class.clone(),
                node: *at,
            },
            None => refused(format!("the head does not know where actor {actor} runs")),
        };
        (answer, s.db.settled())
    };
    once_durable(state, answer, settled, |_| {}).await
}

/// The actor holding a name (once what the head knows is durable).
pub(super) async fn find_actor(state: &Mutex<HeadState>, key: NameKey) -> Message {
    let (answer, settled) = {
        let s = lock(state);
        let answer = match s.names.get(&key) {
            Some((actor, class, at)) => Message::ActorFound {
                actor: *actor,
                class: class.clone(),
                node: *at,
            },
            None => refused(format!(
                "no actor is named \"{}\" in namespace \"{}\"",
                key.1, key.0
            )),
        };
        (answer, s.db.settled())
    };
    once_durable(state, answer, settled, |_| {}).await
}

/// A node made a placement group: it is ready once the head recorded it durably. A group
/// seen again is recorded again.
pub(super) async fn record_group(state: &Mutex<HeadState>, group: PlacementGroupInfo) -> Message {
    let (id, ours) = (group.id.clone(), group.clone());
    let (durable, before) = {
        let mut s = lock(state);
        let before = s.groups.insert(id.clone(), group.clone());
        (s.db.submit(vec![Change::Group(group)]), before)
    };
    once_durable(state, Message::Ack, Some(durable), |s| {
        if s.groups.get(&id) == Some(&ours) {
            match before {
                Some(g) => s.groups.insert(id, g),
                None => s.groups.remove(&id),
            };
        }
    })
    .await
}

/// A group was removed by the node that made it: the head forgets it.
pub(super) async fn forget_group(state: &Mutex<HeadState>, id: String, from: NodeId) -> Message {
    let (durable, removed) = {
        let mut s = lock(state);
        if s.groups.get(&id).is_some_and(|g| g.creator == from) {
            let removed = s.groups.remove(&id);
            let durable = s.db.submit(vec![Change::GroupsGone(vec![id.clone()])]);
            (Some(durable), removed)
        } else {
            (None, None)
        }
    };
    // Not durable: the group is kept, as the database still has it.
    once_durable(state, Message::Ack, durable, |s| {
        if let Some(g) = removed {
            s.groups.entry(id).or_insert(g);
        }
    })
    .await
}

/// A kill point for tests: when `MOBULA_TEST_CRASH_AT` names `point`, the process aborts
/// there, as a `kill -9` landing mid-change would stop it. Unset (always, outside tests),
/// it does nothing.
pub(crate) fn crash_point(point: &str) {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("MOBULA_TEST_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        tracing::error!("MOBULA_TEST_CRASH_AT={point}: the process aborts here");
        std::process::abort();
    }
}

/// The head: declares silent nodes dead.
pub(super) async fn watch_members(node: Arc<ClusterNode>) {
    let period = (node.timeout / 8).max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval(period);
    while !node.stopping.load(Ordering::Acquire) {
        ticks.tick().await;
        let Some(state) = &node.head_state else {
            return;
        };
        let view = {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = state.now_ms();
            // The head hears itself.
            let (queued, running) = node.scheduler.counts();
            let _ = state.membership.heartbeat(
                node.node_id,
                Vec::new(),
                (queued + running) as u32,
                u64::MAX,
                now,
            );
            let dead = state.membership.tick(now);
            for id in &dead {
                tracing::warn!(node = %id, "node declared dead: no heartbeat within {:?}", node.timeout);
            }
            state.forget_nodes(&dead);
            if !dead.is_empty() {
                let now = super::jobs::unix_ms();
                state.change_jobs(|jobs| {
                    for id in &dead {
                        jobs.driver_gone(*id, true, now);
                    }
                });
            }
            // Where the next outage will be counted from, if the head dies.
            if state.alive_recorded.elapsed() >= Duration::from_secs(1) {
                state.alive_recorded = Instant::now();
                state.db.record(vec![Change::Alive(super::jobs::unix_ms())]);
            }
            state.membership.view()
        };
        node.set_view(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::head_db::FillingDisk;
    use futures::executor::block_on;

    fn head_on(disk: FillingDisk) -> Mutex<HeadState> {
        let (db, _) = HeadDb::open_on(disk, 0).unwrap();
        Mutex::new(HeadState {
            membership: Membership::new(1_000),
            ca: ClusterCa::generate().unwrap(),
            token: "token".into(),
            started: Instant::now(),
            names: HashMap::new(),
            locations: HashMap::new(),
            certificate_lifetime: Duration::from_secs(3600),
            jobs: Jobs::default(),
            job_processes: HashMap::new(),
            dir: PathBuf::new(),
            db,
            alive_recorded: Instant::now(),
            kv: Kv::default(),
            groups: Default::default(),
        })
    }

    fn refused_for_the_disk(answer: &Message) -> bool {
        matches!(answer, Message::Refused { reason } if reason.contains("could not record"))
    }

    #[test]
    fn a_change_the_disk_refuses_is_taken_back_and_refused_and_the_head_keeps_serving() {
        let disk = FillingDisk::default();
        let full = disk.full.clone();
        let head = head_on(disk);
        let (a, b) = (ActorId::from_parts(1, 1), ActorId::from_parts(1, 2));
        let node = NodeId::random();
        let key = |name: &str| ("ns".to_string(), name.to_string());
        let named = |actor| (actor, "Counter".to_string(), node);
        let group = |id: &str| PlacementGroupInfo {
            id: id.into(),
            strategy: "PACK".into(),
            state: crate::base::rows::PlacementGroupState::Created,
            bundles: vec!["{CPU: 1}".into()],
            nodes: vec![node],
            creator: node,
        };
        let put = |k: &str| Message::KvPut {
            namespace: "ns".into(),
            key: k.into(),
            value: b"v".to_vec(),
            overwrite: true,
        };
        let get = |k: &str| Message::KvGet {
            namespace: "ns".into(),
            key: k.into(),
        };

        // While the disk takes writes, changes are made and acknowledged.
        assert!(matches!(
            block_on(name_actor(&head, key("kept"), named(a))),
            Message::Ack
        ));
        assert!(matches!(
            block_on(record_group(&head, group("kept"))),
            Message::Ack
        ));
        assert!(matches!(
            lock(&head).kv_request(put("kept")),
            Message::KvDone { existed: false }
        ));

        // The disk fills up: each change is refused, and none stays behind in memory.
        full.store(true, Ordering::SeqCst);
        let claim = block_on(name_actor(&head, key("new"), named(b)));
        assert!(refused_for_the_disk(&claim), "{claim:?}");
        let at = block_on(actor_at(&head, b, "Counter".into(), node));
        assert!(refused_for_the_disk(&at), "{at:?}");
        let recorded = block_on(record_group(&head, group("new")));
        assert!(refused_for_the_disk(&recorded), "{recorded:?}");
        let stored = lock(&head).kv_request(put("new"));
        assert!(matches!(stored, Message::Refused { .. }), "{stored:?}");
        // A removal that is not durable keeps the group, as the database still has it.
        let forgot = block_on(forget_group(&head, "kept".into(), node));
        assert!(refused_for_the_disk(&forgot), "{forgot:?}");
        {
            let s = lock(&head);
            assert!(!s.names.contains_key(&key("new")));
            assert!(!s.locations.contains_key(&b));
            assert_eq!(s.groups.keys().collect::<Vec<_>>(), ["kept"]);
            assert_eq!(s.kv.len(), 1);
            assert_eq!(s.db.waiting(), 0);
        }

        // It keeps serving what it has.
        assert!(matches!(
            block_on(find_actor(&head, key("kept"))),
            Message::ActorFound { actor, .. } if actor == a
        ));
        assert!(matches!(
            block_on(find_actor(&head, key("new"))),
            Message::Refused { .. }
        ));
        assert!(matches!(
            block_on(locate_actor(&head, b)),
            Message::Refused { .. }
        ));
        assert!(matches!(
            lock(&head).kv_request(get("kept")),
            Message::KvValue { value: Some(v) } if v == b"v"
        ));
        assert!(matches!(
            lock(&head).kv_request(get("new")),
            Message::KvValue { value: None }
        ));
    }
}
