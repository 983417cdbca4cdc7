//! Resources are honoured: CPUs, fractions, GPUs and custom resources limit how many tasks
//! run at once; impossible requests fail at once; async bodies need no threads.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Concurrency, Gate, start};
use mobula::prelude::*;

static LIMIT: Concurrency = Concurrency::new();

#[mobula::remote]
fn occupy(expect: usize) -> Vec<u32> {
    LIMIT.run(expect);
    mobula::context().gpu_ids().to_vec()
}

fn max_parallel(refs: Vec<ObjectRef<Vec<u32>>>) -> usize {
    mobula::get_all(&refs).unwrap();
    LIMIT.max()
}

#[test]
fn cpu_requests_limit_how_many_run_at_once() {
    let _node = start(Config::default().num_cpus(4));
    LIMIT.reset();
    let refs = (0..8)
        .map(|_| occupy.options().num_cpus(2).remote(2))
        .collect();
    assert_eq!(max_parallel(refs), 2, "2-CPU tasks on 4 CPUs");
    LIMIT.reset();
    let refs = (0..12)
        .map(|_| occupy.options().num_cpus(0.5).remote(8))
        .collect();
    assert_eq!(max_parallel(refs), 8, "half-CPU tasks on 4 CPUs");
    LIMIT.reset();
    let refs = (0..8).map(|_| occupy.remote(4)).collect();
    assert_eq!(max_parallel(refs), 4, "the default is one CPU each");
}

#[test]
fn custom_resources_gate_tasks() {
    let _node = start(Config::default().num_cpus(8).resource("fpga", 2));
    LIMIT.reset();
    let refs = (0..6)
        .map(|_| occupy.options().resource("fpga", 1).remote(2))
        .collect();
    assert_eq!(max_parallel(refs), 2);
}

#[test]
fn gpus_are_assigned_by_id_and_shared_by_fractions() {
    let _node = start(Config::default().num_cpus(8).num_gpus(2));
    LIMIT.reset();
    let refs: Vec<_> = (0..6)
        .map(|_| occupy.options().num_gpus(1).remote(2))
        .collect();
    let ids: Vec<Vec<u32>> = mobula::get_all(&refs).unwrap();
    assert_eq!(LIMIT.max(), 2);
    assert!(ids.iter().all(|g| g.len() == 1 && g[0] < 2), "{ids:?}");
    assert_eq!(
        ids.iter().flatten().collect::<BTreeSet<_>>().len(),
        2,
        "both GPUs were used"
    );

    LIMIT.reset();
    let refs: Vec<_> = (0..4)
        .map(|_| occupy.options().num_gpus(0.5).remote(4))
        .collect();
    let ids: Vec<Vec<u32>> = mobula::get_all(&refs).unwrap();
    assert_eq!(LIMIT.max(), 4, "two halves per GPU");
    for gpu in 0..2u32 {
        assert_eq!(
            ids.iter().filter(|g| g == &&vec![gpu]).count(),
            2,
            "{ids:?}"
        );
    }
    assert_eq!(
        occupy.options().num_gpus(2).remote(1).get().unwrap(),
        vec![0, 1]
    );
}

#[test]
fn impossible_requests_fail_at_once_with_the_reason() {
    let _node = start(Config::default().num_cpus(4).resource("fpga", 1));
    let err = occupy.options().num_cpus(8).remote(1).get().unwrap_err();
    assert!(matches!(err, GetError::Infeasible { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("8 CPU") && shown.contains("4 CPU"),
        "{shown}"
    );
    let err = occupy
        .options()
        .resource("tpu", 1)
        .remote(1)
        .get()
        .unwrap_err();
    assert!(matches!(err, GetError::Infeasible { .. }), "{err:?}");
    let err = occupy.options().num_gpus(1).remote(1).get().unwrap_err();
    assert!(matches!(err, GetError::Infeasible { .. }), "{err:?}");
    let err = occupy.options().num_cpus(-1).remote(1).get().unwrap_err();
    assert!(
        matches!(&err, GetError::InvalidOptions { reason, .. } if reason.contains("num_cpus")),
        "{err:?}"
    );
    let err = occupy
        .options()
        .resource("CPU", 1)
        .remote(1)
        .get()
        .unwrap_err();
    assert!(matches!(err, GetError::InvalidOptions { .. }), "{err:?}");
    // The node is fine.
    assert!(occupy.remote(1).get().unwrap().is_empty());
}

static GATE: Gate = Gate::new();
static WAITING: AtomicUsize = AtomicUsize::new(0);

#[mobula::remote]
fn hold_cpu() -> u8 {
    GATE.pass();
    1
}

#[mobula::remote(num_cpus = 0)]
async fn waiter(release: ObjectRef<u8>) -> u8 {
    WAITING.fetch_add(1, Ordering::SeqCst);
    let v = release.await.unwrap();
    WAITING.fetch_sub(1, Ordering::SeqCst);
    v
}

#[mobula::remote(num_cpus = 0)]
fn quick() -> u8 {
    2
}

#[test]
fn blocking_bodies_do_not_stall_async_ones_and_async_ones_need_no_threads() {
    let _node = start(Config::default().num_cpus(2));
    GATE.close();
    WAITING.store(0, Ordering::SeqCst);
    // Both CPUs are held by blocking bodies...
    let held: Vec<_> = (0..2).map(|_| hold_cpu.remote()).collect();
    // ...while a thousand async tasks wait on one ref, at once, on the runtime thread.
    let (release_tx, release) = {
        let gate = hold_cpu.options().num_cpus(0).remote();
        (gate.clone(), gate)
    };
    let waiters: Vec<_> = (0..1000).map(|_| waiter.remote(release.clone())).collect();
    common::eventually("all async tasks are waiting", || {
        WAITING.load(Ordering::SeqCst) == 1000
    });
    let threads = mobula::state::worker_threads().unwrap();
    assert!(
        threads <= 4,
        "1000 waiting async tasks took {threads} worker threads"
    );
    // The runtime still answers: puts, gets and zero-CPU tasks go through.
    assert_eq!(mobula::put(5u8).unwrap().get().unwrap(), 5);
    assert_eq!(quick.remote().get().unwrap(), 2);
    GATE.open();
    drop(release_tx);
    assert_eq!(mobula::get_all(&waiters).unwrap().len(), 1000);
    assert_eq!(mobula::get_all(&held).unwrap(), vec![1, 1]);
}

static SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[mobula::remote]
fn record(i: u64) -> u64 {
    SEEN.lock().unwrap().push(i);
    i
}

#[test]
fn on_one_cpu_tasks_start_in_submission_order() {
    let _node = start(Config::default().num_cpus(1));
    SEEN.lock().unwrap().clear();
    let refs: Vec<_> = (0..200).map(|i| record.remote(i)).collect();
    mobula::get_all(&refs).unwrap();
    assert_eq!(*SEEN.lock().unwrap(), (0..200).collect::<Vec<_>>());
}
