//! The head survives its own crash: it is killed (silent, as `kill -9`) and started again on
//! the same cluster directory and address; it reads its tables back, the workers and the
//! driver reconnect, and what was named or stored before is found again: a named actor, a
//! key, a placement group's bundles (and the head's record of it), a large value held on a
//! worker; `mobula status` and the
//! dashboard show the outage.

#[path = "common/browser.rs"]
#[allow(dead_code)]
mod browser;
mod common;

use common::{eventually, turn};
use mobula::prelude::*;
use mobula::{Bundle, NodeId, PlacementStrategy, SchedulingStrategy};

#[mobula::actor]
struct Counter {
    n: u64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { n: 0 }
    }

    fn add(&mut self, k: u64) -> u64 {
        self.n += k;
        self.n
    }
}

/// A value too large to travel with the task's answer: it stays on its node until wanted.
#[mobula::remote]
fn big(n: usize) -> Vec<u8> {
    vec![7u8; n]
}

#[mobula::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[mobula::remote]
fn where_am_i() -> String {
    mobula::context().node_id().expect("a runtime").to_string()
}

/// On the node it runs on: finds the counter by name and adds `k`.
#[mobula::remote]
fn add_by_name(k: u64) -> Result<u64, String> {
    let counter = mobula::get_actor::<Counter>("counter").map_err(|e| e.to_string())?;
    counter.add(k).get().map_err(|e| e.to_string())
}

fn on(node: NodeId) -> SchedulingStrategy {
    SchedulingStrategy::NodeAffinity { node, soft: false }
}

#[test]
fn a_head_killed_and_restarted_comes_back_with_its_tables() {
    let _turn = turn();
    let worker = || {
        Config::default()
            .num_cpus(2)
            .dashboard_address("127.0.0.1:0")
    };
    let (mut cluster, workers, _driver) =
        common::local_cluster(Config::default().num_cpus(0), worker, 2, |c| c);
    let (w0, w1) = (workers[0], workers[1]);

    // A detached named actor on the first worker, called once.
    let counter = Counter::options()
        .name("counter")
        .detached(true)
        .scheduling_strategy(on(w0))
        .remote()
        .unwrap();
    assert_eq!(counter.add(1).get().unwrap(), 1);
    // A placement group with a bundle on each worker, and a large value held on the first.
    let pg = mobula::placement_group(
        vec![Bundle::new().num_cpus(1); 2],
        PlacementStrategy::StrictSpread,
    )
    .unwrap();
    pg.ready().unwrap();
    let held = big.options().scheduling_strategy(on(w0)).remote(16 << 20);
    let (ready, _) = mobula::wait_anywhere(vec![held.clone()], 1, None).unwrap();
    assert_eq!(ready.len(), 1);
    // A key of the key-value store, durable once put returns.
    assert!(!mobula::kv::put("train", "checkpoint", b"step-7", true).unwrap());

    // The head dies.
    let old_head = cluster.head();
    assert!(cluster.kill_node(old_head));

    // While it is away, work that does not need it goes on: tasks on the workers, calls
    // to the actor.
    let squares: Vec<_> = (0..20u64)
        .map(|i| {
            square
                .options()
                .scheduling_strategy(on(workers[(i % 2) as usize]))
                .remote(i)
        })
        .collect();
    assert_eq!(
        mobula::get_all(&squares).unwrap(),
        (0..20u64).map(|i| i * i).collect::<Vec<_>>()
    );
    assert_eq!(counter.add(1).get().unwrap(), 2);
    // What needs the head waits for it: a read of the key-value store, asked now.
    eventually("the driver finds the head away", || {
        mobula::node::head_away().is_some()
    });
    let read = std::thread::spawn(|| mobula::kv::get("train", "checkpoint"));

    // It comes back on the same directory and address.
    let new_head = cluster.restart_head().unwrap();
    assert_eq!(read.join().unwrap().unwrap().unwrap(), b"step-7");
    assert_ne!(new_head, old_head);
    eventually(
        "the driver hears from the new head, both workers alive",
        || {
            let nodes = mobula::node::nodes();
            mobula::node::head_away().is_none()
                && nodes.iter().any(|n| n.info.node_id == new_head && n.alive)
                && [w0, w1]
                    .iter()
                    .all(|w| nodes.iter().any(|n| n.info.node_id == *w && n.alive))
        },
    );

    // The restart and how long the head was away, as `mobula status` shows them.
    let status =
        mobula::node::cluster_status(cluster.dir(), std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(status.head_outages.len(), 1, "{:?}", status.head_outages);
    let outage = status.head_outages[0];
    assert!(outage.up_ms > outage.down_ms, "{outage:?}");
    // The dashboard shows it too (a worker's, which lived through the outage).
    let (address, token) = cluster.dashboard(w0).unwrap();
    let bearer = format!("Bearer {token}");
    let (code, body) = browser::http(
        &address.to_string(),
        "GET",
        "/api/state",
        &[("Authorization", &bearer)],
        None,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let shown = state["head_outages"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{body}");
    assert_eq!(shown[0]["down_ms"], outage.down_ms);

    // The placement group stands: a task in each bundle runs on that bundle's node.
    common::groups::each_bundle_runs_on_its_node(&pg, 2);
    // The head read the group back from its tables, and forgets it once it is removed.
    let groups_on = |cluster: &mobula::testing::LocalCluster| {
        cluster
            .table_sizes(new_head)
            .into_iter()
            .find(|(t, _)| *t == "placement_groups")
            .map(|(_, n)| n)
    };
    assert_eq!(groups_on(&cluster), Some(1));
    mobula::remove_placement_group(&pg);
    eventually("the head forgets the removed group", || {
        groups_on(&cluster) == Some(0)
    });
    // Groups made together are recorded together (their records share commits): each is
    // ready once recorded, and each is forgotten once removed.
    let many: Vec<_> = (0..40)
        .map(|_| {
            mobula::placement_group(vec![Bundle::new().num_cpus(0.01)], PlacementStrategy::Pack)
                .unwrap()
        })
        .collect();
    for g in &many {
        g.ready().unwrap();
    }
    assert_eq!(groups_on(&cluster), Some(40));
    for g in &many {
        mobula::remove_placement_group(g);
    }
    eventually("the head forgets all 40", || groups_on(&cluster) == Some(0));
    eventually("the head's writer has made every change durable", || {
        cluster
            .table_sizes(new_head)
            .contains(&("head_db_waiting", 0))
    });
    // The value held on the first worker is fetched from there.
    let value = held.get().unwrap();
    assert_eq!((value.len(), value[0]), (16 << 20, 7));

    // The name was kept: a node that does not host the actor finds it through the head.
    let added = add_by_name
        .options()
        .scheduling_strategy(on(w1))
        .remote(10)
        .get()
        .unwrap();
    assert_eq!(added, 12);

    // A new worker joins the restarted head, and takes work.
    let w2 = cluster.add_node(worker()).unwrap();
    eventually("the driver sees the new worker", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == w2 && n.alive)
    });
    assert_eq!(
        where_am_i
            .options()
            .scheduling_strategy(on(w2))
            .remote()
            .get()
            .unwrap(),
        w2.to_string()
    );
    assert_eq!(counter.add(1).get().unwrap(), 13);
}
