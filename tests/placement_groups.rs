//! Placement groups on one node: reservation, tasks and actors in bundles, the strategies'
//! rules, waiting, and removal.

mod common;

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use common::{Concurrency, start};
use mobula::prelude::*;
use mobula::{Bundle, PlacementGroupError, PlacementStrategy};

#[mobula::remote]
fn add_one(x: u32) -> u32 {
    x + 1
}

static RUNNING: Concurrency = Concurrency::new();

/// Waits (boundedly) for `expect` bodies to be in at once, so that the most that can run
/// together does.
#[mobula::remote]
fn busy(expect: usize) -> u32 {
    RUNNING.run(expect);
    1
}

/// Released by the test: holds its CPUs until then.
static GATE: Mutex<Option<mpsc::Receiver<()>>> = Mutex::new(None);

#[mobula::remote]
fn hold_until_released() -> u32 {
    let rx = GATE.lock().unwrap().take().expect("one holder");
    rx.recv().unwrap();
    7
}

#[mobula::actor]
struct Tally {
    n: u32,
}

#[mobula::actor]
impl Tally {
    fn new() -> Self {
        Tally { n: 0 }
    }

    fn add(&mut self) -> u32 {
        self.n += 1;
        self.n
    }
}

fn cpus(n: f64) -> Bundle {
    Bundle::new().num_cpus(n)
}

#[test]
fn tasks_and_actors_run_in_their_bundles_and_the_reservation_is_exclusive() {
    let _node = start(Config::default().num_cpus(4));
    let pg = mobula::placement_group(vec![cpus(2.0), cpus(1.0)], PlacementStrategy::Pack).unwrap();
    pg.ready().unwrap();
    assert_eq!(pg.bundle_count(), 2);
    assert!(pg.bundle_node(0).is_some());

    // Tasks in each bundle, and in any bundle.
    let r0 = add_one.options().placement_group(&pg, Some(0)).remote(1);
    let r1 = add_one.options().placement_group(&pg, Some(1)).remote(2);
    let any = add_one.options().placement_group(&pg, None).remote(3);
    assert_eq!(mobula::get_all(&[r0, r1, any]).unwrap(), vec![2, 3, 4]);

    // Bundle 0 has 2 CPUs: three 1-CPU tasks in it run at most two at a time (on a node
    // with 4).
    let refs: Vec<_> = (0..3)
        .map(|_| busy.options().placement_group(&pg, Some(0)).remote(3))
        .collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![1; 3]);
    assert_eq!(RUNNING.max(), 2);

    // More than the bundle holds can never run in it.
    let too_big = add_one
        .options()
        .placement_group(&pg, Some(1))
        .num_cpus(2)
        .remote(0);
    assert!(matches!(too_big.get(), Err(GetError::Infeasible { .. })));
    // A bundle that does not exist.
    let missing = add_one.options().placement_group(&pg, Some(5)).remote(0);
    match missing.get() {
        Err(GetError::InvalidOptions { reason, .. }) => {
            assert!(reason.contains("out of range"), "{reason}")
        }
        other => panic!("expected InvalidOptions, got {other:?}"),
    }

    // An actor in bundle 1 holds its CPU there.
    let tally = Tally::options()
        .placement_group(&pg, Some(1))
        .num_cpus(1)
        .remote()
        .unwrap();
    assert_eq!(tally.add().get().unwrap(), 1);
    // ...so bundle 1 has nothing left for a task, which waits; outside the group, 1 CPU is
    // free (4 - 3 reserved) and a task runs.
    let waits = add_one.options().placement_group(&pg, Some(1)).remote(10);
    assert_eq!(add_one.remote(20).get().unwrap(), 21);
    let (ready, _) = mobula::wait(
        std::slice::from_ref(&waits),
        1,
        Some(Duration::from_millis(100)),
    )
    .unwrap();
    assert!(ready.is_empty(), "bundle 1 is held by the actor");
    drop(tally);
    assert_eq!(waits.get().unwrap(), 11);

    mobula::remove_placement_group(&pg);
    // The reservation is back: a 4-CPU task runs.
    assert_eq!(add_one.options().num_cpus(4).remote(0).get().unwrap(), 1);
}

#[test]
fn strategies_that_cannot_be_met_fail_at_once() {
    let _node = start(Config::default().num_cpus(4));
    let err = mobula::placement_group(vec![cpus(1.0), cpus(1.0)], PlacementStrategy::StrictSpread)
        .unwrap_err();
    assert!(
        matches!(&err, PlacementGroupError::Failed(why) if why.contains("STRICT_SPREAD")),
        "{err}"
    );
    let err = mobula::placement_group(vec![cpus(3.0), cpus(3.0)], PlacementStrategy::StrictPack)
        .unwrap_err();
    assert!(
        matches!(&err, PlacementGroupError::Failed(why) if why.contains("STRICT_PACK")),
        "{err}"
    );
    let err = mobula::placement_group(vec![cpus(5.0)], PlacementStrategy::Pack).unwrap_err();
    assert!(matches!(err, PlacementGroupError::Failed(_)), "{err}");
    let err = mobula::placement_group(vec![Bundle::new()], PlacementStrategy::Pack).unwrap_err();
    assert!(matches!(err, PlacementGroupError::Invalid(_)), "{err}");
    let err = mobula::placement_group(vec![], PlacementStrategy::Pack).unwrap_err();
    assert!(matches!(err, PlacementGroupError::Failed(_)), "{err}");
    // One node: a single-bundle STRICT_SPREAD and a fitting STRICT_PACK are fine.
    let a = mobula::placement_group(vec![cpus(1.0)], PlacementStrategy::StrictSpread).unwrap();
    let b =
        mobula::placement_group(vec![cpus(1.0), cpus(2.0)], PlacementStrategy::StrictPack).unwrap();
    a.ready().unwrap();
    b.ready().unwrap();
}

#[test]
fn a_group_waits_for_busy_resources_and_tasks_wait_for_the_group() {
    let _node = start(Config::default().num_cpus(2));
    let (release, gate) = mpsc::channel();
    *GATE.lock().unwrap() = Some(gate);
    let holder = hold_until_released.options().num_cpus(2).remote();
    // Wait until the holder runs (it takes both CPUs).
    common::eventually("the holder started", || GATE.lock().unwrap().is_none());

    let pg = mobula::placement_group(vec![cpus(2.0)], PlacementStrategy::Pack).unwrap();
    assert!(
        !pg.wait(Duration::from_millis(50)).unwrap(),
        "both CPUs are busy"
    );
    // A task for the group waits for it rather than failing.
    let inside = add_one.options().placement_group(&pg, Some(0)).remote(41);
    release.send(()).unwrap();
    assert_eq!(holder.get().unwrap(), 7);
    pg.ready().unwrap();
    assert!(pg.wait(Duration::ZERO).unwrap());
    assert_eq!(inside.get().unwrap(), 42);
    mobula::remove_placement_group(&pg);
}

#[test]
fn removing_a_group_fails_what_waits_for_it_and_frees_its_resources() {
    let _node = start(Config::default().num_cpus(2));
    let pg = mobula::placement_group(vec![cpus(1.0)], PlacementStrategy::Pack).unwrap();
    pg.ready().unwrap();
    let (release, gate) = mpsc::channel();
    *GATE.lock().unwrap() = Some(gate);
    let running = hold_until_released
        .options()
        .placement_group(&pg, Some(0))
        .remote();
    common::eventually("the task in the bundle started", || {
        GATE.lock().unwrap().is_none()
    });
    let queued = add_one.options().placement_group(&pg, Some(0)).remote(1);

    mobula::remove_placement_group(&pg);
    mobula::remove_placement_group(&pg); // twice: nothing more happens
    assert!(matches!(queued.get(), Err(GetError::Infeasible { .. })));
    assert_eq!(
        pg.ready(),
        Err(PlacementGroupError::Removed(pg.id().to_string()))
    );
    // The running task finishes normally.
    release.send(()).unwrap();
    assert_eq!(running.get().unwrap(), 7);
    // Both CPUs are free again.
    assert_eq!(add_one.options().num_cpus(2).remote(0).get().unwrap(), 1);
    // Later tasks for the removed group fail at once.
    let late = add_one.options().placement_group(&pg, Some(0)).remote(1);
    assert!(matches!(late.get(), Err(GetError::Infeasible { .. })));
}
