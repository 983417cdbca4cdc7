//! The head's own state: the membership table, the cluster's CA and join token, and the
//! names of actors cluster-wide; and the loop that declares silent nodes dead.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use super::head_db::{HeadDb, NameKey};
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
        let version = self.membership.version();
        let recorded = self
            .db
            .remove_members(gone, version)
            .and_then(|()| self.db.remove_names(&names))
            .and_then(|()| self.db.remove_locations(&actors))
            .and_then(|()| self.db.remove_groups(&groups));
        if let Err(e) = recorded {
            tracing::error!("{e}");
        }
    }

    /// Changes the job table and records it (a failure to record is logged: the change
    /// stands in memory, and a restarted head would not know it).
    pub fn change_jobs<R>(&mut self, change: impl FnOnce(&mut Jobs) -> R) -> R {
        let out = change(&mut self.jobs);
        if let Err(e) = self.db.put_jobs(&self.jobs) {
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
                db.put_kv(k, v).map_err(|e| e.to_string())
            })),
            Message::KvDelete {
                namespace,
                key,
                by_prefix,
            } => done(self.kv.delete(&namespace, &key, by_prefix, |keys| {
                db.remove_kv(keys).map_err(|e| e.to_string())
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
                if let Err(e) = state.db.alive(super::jobs::unix_ms()) {
                    tracing::error!("{e}");
                }
            }
            state.membership.view()
        };
        node.set_view(view);
    }
}
