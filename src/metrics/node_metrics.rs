//! The metrics every node exports about itself: tasks by state, actors, the object store,
//! the scheduler's queue and the links to other nodes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::text::{Family, Kind, Sample};
use crate::base::rows::TaskState;
use crate::runtime::global::Runtime;

fn one(name: &str, help: &str, kind: Kind, value: f64) -> Family {
    Family {
        name: name.into(),
        help: help.into(),
        kind,
        samples: vec![(Vec::new(), Sample::Value(value))],
    }
}

fn by(name: &str, help: &str, kind: Kind, label: &str, values: Vec<(String, f64)>) -> Family {
    Family {
        name: name.into(),
        help: help.into(),
        kind,
        samples: values
            .into_iter()
            .map(|(l, v)| (vec![(label.to_string(), l)], Sample::Value(v)))
            .collect(),
    }
}

/// The node's own metrics, now.
pub(crate) fn families(rt: &Runtime) -> Vec<Family> {
    let (log_lines, evicted) = rt.logs.book.counts();
    let mut live: BTreeMap<TaskState, f64> = BTreeMap::new();
    let mut ended: BTreeMap<TaskState, f64> = BTreeMap::new();
    for state in TaskState::ALL {
        let into = if state.is_ended() {
            &mut ended
        } else {
            &mut live
        };
        into.insert(state, 0.0);
    }
    for (_, state, n) in rt.scheduler.task_counts() {
        let into = if state.is_ended() {
            &mut ended
        } else {
            &mut live
        };
        *into.entry(state).or_default() += n as f64;
    }
    let named =
        |m: BTreeMap<TaskState, f64>| m.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
    let mut actors: BTreeMap<String, f64> = BTreeMap::new();
    for (_, state, n) in rt.actors.counts() {
        *actors.entry(state.to_string()).or_default() += n as f64;
    }
    let (waiting, running) = rt.scheduler.counts();
    let store = &rt.store;
    let c = &store.counters;
    let counter = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut out = vec![
        by(
            "mobula_tasks",
            "Tasks on this node now, by state",
            Kind::Gauge,
            "state",
            named(live),
        ),
        by(
            "mobula_tasks_ended_total",
            "Tasks that ended on this node, by how",
            Kind::Counter,
            "state",
            named(ended),
        ),
        by(
            "mobula_actors",
            "Actors hosted on this node by state (dead ones since the start)",
            Kind::Gauge,
            "state",
            actors.into_iter().collect(),
        ),
        one(
            "mobula_scheduler_queue_length",
            "Tasks waiting for arguments or resources",
            Kind::Gauge,
            waiting as f64,
        ),
        one(
            "mobula_tasks_running",
            "Tasks running",
            Kind::Gauge,
            running as f64,
        ),
        one(
            "mobula_worker_threads",
            "Worker threads alive (tasks and actor calls)",
            Kind::Gauge,
            (rt.workers.threads() + rt.actor_pool.threads()) as f64,
        ),
        one(
            "mobula_objects",
            "Objects in the store",
            Kind::Gauge,
            store.len() as f64,
        ),
        one(
            "mobula_object_store_used_bytes",
            "Bytes of objects in memory",
            Kind::Gauge,
            store.memory_used() as f64,
        ),
        one(
            "mobula_object_store_limit_bytes",
            "The store's memory limit",
            Kind::Gauge,
            store.memory_limit as f64,
        ),
        one(
            "mobula_spilled_bytes_total",
            "Bytes spilled to disk",
            Kind::Counter,
            counter(&c.spilled_bytes),
        ),
        one(
            "mobula_spilled_objects_total",
            "Objects spilled to disk",
            Kind::Counter,
            counter(&c.spilled_objects),
        ),
        one(
            "mobula_restored_objects_total",
            "Objects read back from disk",
            Kind::Counter,
            counter(&c.restored_objects),
        ),
        one(
            "mobula_spill_failures_total",
            "Spills that failed",
            Kind::Counter,
            counter(&c.spill_failures),
        ),
        one(
            "mobula_log_lines",
            "Task and actor log lines kept on the node",
            Kind::Gauge,
            log_lines as f64,
        ),
        one(
            "mobula_log_lines_evicted_total",
            "Log lines let go to keep the node's log book within bounds",
            Kind::Counter,
            evicted as f64,
        ),
        one(
            "mobula_log_lines_undelivered_total",
            "Log lines that could not reach their driver's terminal",
            Kind::Counter,
            rt.logs
                .undelivered
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
    ];
    if let Some(cluster) = crate::cluster::node_of(rt) {
        let links = cluster.endpoint.link_stats();
        let per = |f: &dyn Fn(&crate::transport::endpoint::LinkStats) -> f64| {
            links
                .iter()
                .map(|l| (l.peer.to_string(), f(l)))
                .collect::<Vec<_>>()
        };
        out.push(by(
            "mobula_transport_sent_bytes_total",
            "UDP payload bytes sent to a peer",
            Kind::Counter,
            "peer",
            per(&|l| l.sent_bytes as f64),
        ));
        out.push(by(
            "mobula_transport_received_bytes_total",
            "UDP payload bytes received from a peer",
            Kind::Counter,
            "peer",
            per(&|l| l.received_bytes as f64),
        ));
        let tables = cluster
            .table_sizes()
            .into_iter()
            .map(|(name, n)| (name.to_string(), n as f64))
            .collect();
        out.push(by(
            "mobula_cluster_table_entries",
            "Entries in the node's cluster tables that grow with use (held values, lineage, hosted bundles, links, members...)",
            Kind::Gauge,
            "table",
            tables,
        ));
        out.push(by(
            "mobula_transport_rtt_seconds",
            "Round-trip time to a peer (QUIC's estimate)",
            Kind::Gauge,
            "peer",
            per(&|l| l.rtt.as_secs_f64()),
        ));
    }
    out
}
