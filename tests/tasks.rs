//! Remote functions: calls, arguments, nesting, async bodies, options, wait and cancel.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Concurrency, Gate, eventually, start};
use mobula::prelude::*;
use serde::{Deserialize, Serialize};

#[mobula::remote]
fn square(i: u64) -> u64 {
    i * i
}

static PARALLEL: Concurrency = Concurrency::new();

#[mobula::remote]
fn slow_function(i: u64) -> u64 {
    PARALLEL.run(4);
    i * i
}

#[test]
fn four_slow_tasks_run_at_once_and_return_in_order() {
    let _node = start(Config::default().num_cpus(4));
    PARALLEL.reset();
    let refs: Vec<_> = (0..4).map(|i| slow_function.remote(i)).collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![0, 1, 4, 9]);
    assert_eq!(PARALLEL.max(), 4, "all four ran in parallel");
}

#[mobula::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[test]
fn arguments_may_be_values_refs_or_borrowed_refs() {
    let _node = start(Config::default().num_cpus(2));
    let three = mobula::put(3u64).unwrap();
    let four = square.remote(2);
    assert_eq!(add.remote(1, 2).get().unwrap(), 3);
    assert_eq!(add.remote(&three, 10).get().unwrap(), 13);
    assert_eq!(add.remote(&three, &four).get().unwrap(), 7);
    assert_eq!(
        add.remote(three, four).get().unwrap(),
        7,
        "refs moved in work too"
    );
    // A chain: each task waits for the one before.
    let mut acc = mobula::put(0u64).unwrap();
    for i in 1..=20 {
        acc = add.remote(acc, i);
    }
    assert_eq!(acc.get().unwrap(), 210);
}

#[mobula::remote]
fn fan_out(n: u64) -> u64 {
    let refs: Vec<_> = (0..n).map(|i| square.remote(i)).collect();
    mobula::get_all(&refs).unwrap().into_iter().sum()
}

#[mobula::remote]
fn fan_out_twice(n: u64) -> u64 {
    let a = fan_out.remote(n);
    let b = fan_out.remote(n);
    a.get().unwrap() + b.get().unwrap()
}

#[test]
fn tasks_submit_and_wait_for_tasks_even_on_one_cpu() {
    // With one CPU, a task that waits for its children must lend its CPU to them.
    let _node = start(Config::default().num_cpus(1));
    assert_eq!(fan_out.remote(10).get().unwrap(), 285);
    assert_eq!(fan_out_twice.remote(5).get().unwrap(), 60);
}

#[mobula::remote]
async fn async_square(i: u64) -> u64 {
    let inner = square.remote(i);
    inner.await.unwrap()
}

#[mobula::remote]
async fn async_fan_out(n: u64) -> u64 {
    let refs: Vec<_> = (0..n).map(|i| async_square.remote(i)).collect();
    let mut total = 0;
    for r in refs {
        total += r.await.unwrap();
    }
    total
}

#[test]
fn async_functions_run_and_await_nested_tasks() {
    let _node = start(Config::default().num_cpus(2));
    assert_eq!(async_square.remote(7).get().unwrap(), 49);
    assert_eq!(async_fan_out.remote(10).get().unwrap(), 285);
}

#[test]
fn refs_can_be_awaited_outside_the_runtime() {
    let _node = start(Config::default().num_cpus(2));
    let r = square.remote(9);
    assert_eq!(
        futures::executor::block_on(async { (&r).await }).unwrap(),
        81
    );
    assert_eq!(futures::executor::block_on(async { r.await }).unwrap(), 81);
}

#[mobula::remote(num_cpus = 0)]
fn no_op() -> u8 {
    1
}

#[test]
fn a_hundred_thousand_tasks_all_come_back_right() {
    let _node = start(Config::default().num_cpus(2));
    let refs: Vec<_> = (0..100_000u64).map(|i| square.remote(i)).collect();
    let values = mobula::get_all(&refs).unwrap();
    assert_eq!(values.len(), 100_000);
    assert!(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| *v == (i as u64) * (i as u64))
    );
    let ones: Vec<_> = (0..10_000).map(|_| no_op.remote()).collect();
    assert_eq!(
        mobula::get_all(&ones)
            .unwrap()
            .iter()
            .map(|v| *v as u64)
            .sum::<u64>(),
        10_000
    );
    drop((refs, ones));
    eventually("all results freed", || {
        mobula::state::object_store().unwrap().objects == 0
    });
}

#[mobula::remote]
async fn async_double(i: u64) -> u64 {
    i * 2
}

#[test]
fn the_body_stays_callable_as_plain_rust() {
    // No runtime is needed to call the body directly.
    assert_eq!(square.call(5), 25);
    assert_eq!(add.call(2, 3), 5);
    assert_eq!(futures::executor::block_on(async_double.call(3)), 6);
}

/// A value that counts how often it is cloned.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Counted(Vec<u8>);

static CLONES: AtomicUsize = AtomicUsize::new(0);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }
}

#[mobula::remote]
fn borrowed_len(c: &Counted) -> usize {
    c.0.len()
}

#[mobula::remote]
fn owned_len(c: Counted) -> usize {
    c.0.len()
}

#[test]
fn put_never_copies_and_borrowing_parameters_share_the_stored_value() {
    let _node = start(Config::default().num_cpus(1));
    CLONES.store(0, Ordering::SeqCst);
    let big = mobula::put(Counted(vec![7; 1 << 20])).unwrap();
    assert_eq!(CLONES.load(Ordering::SeqCst), 0, "put moves the value in");
    assert_eq!(borrowed_len.remote(&big).get().unwrap(), 1 << 20);
    assert_eq!(
        CLONES.load(Ordering::SeqCst),
        0,
        "a &T parameter borrows the stored value"
    );
    assert_eq!(owned_len.remote(&big).get().unwrap(), 1 << 20);
    assert_eq!(
        CLONES.load(Ordering::SeqCst),
        1,
        "a T parameter gets one copy"
    );
    assert_eq!(big.get().unwrap().0.len(), 1 << 20);
    assert_eq!(CLONES.load(Ordering::SeqCst), 2, "get hands out one copy");
}

#[mobula::remote(num_cpus = 0.5, max_retries = 0, name = "named")]
fn with_attribute_options() -> Option<String> {
    mobula::context().function().map(str::to_string)
}

#[test]
fn options_come_from_the_attribute_and_the_builder() {
    let _node = start(Config::default().num_cpus(1));
    assert_eq!(
        with_attribute_options.remote().get().unwrap().as_deref(),
        Some(concat!(module_path!(), "::with_attribute_options"))
    );
    let b = square.options().num_cpus(0.25).name("quarter");
    assert_eq!(
        b.task_options(),
        &TaskOptions::new().num_cpus(0.25).name("quarter")
    );
    assert_eq!(b.remote(6).get().unwrap(), 36);
    assert_eq!(
        add.options()
            .max_retries(0)
            .remote(1, mobula::put(1u64).unwrap())
            .get()
            .unwrap(),
        2
    );
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Report {
    task: Option<mobula::TaskId>,
    node: Option<mobula::NodeId>,
    attempt: u32,
}

#[mobula::remote]
fn whoami() -> Report {
    let c = mobula::context();
    Report {
        task: c.task_id(),
        node: c.node_id(),
        attempt: c.attempt(),
    }
}

#[test]
fn a_task_knows_its_context() {
    let node = start(Config::default().num_cpus(1));
    let outside = mobula::context();
    assert_eq!(outside.task_id(), None);
    assert_eq!(
        outside.node_id(),
        Some(node.guard.as_ref().unwrap().node_id())
    );
    let a = whoami.remote().get().unwrap();
    let b = whoami.remote().get().unwrap();
    assert!(a.task.is_some() && b.task.is_some() && a.task != b.task);
    assert_eq!(a.node, outside.node_id());
    assert_eq!(a.attempt, 1);
}

static GATE: Gate = Gate::new();

#[mobula::remote]
fn gated(i: u64) -> u64 {
    GATE.pass();
    i
}

#[test]
fn wait_splits_ready_from_pending_in_order() {
    let _node = start(Config::default().num_cpus(4));
    GATE.close();
    let fast: Vec<_> = (0..3).map(|i| square.remote(i)).collect();
    let slow = gated.remote(100);
    let all = vec![
        slow.clone(),
        fast[0].clone(),
        fast[1].clone(),
        fast[2].clone(),
    ];
    mobula::get_all(&fast).unwrap();
    let (ready, pending) = mobula::wait(&all, 2, None).unwrap();
    assert_eq!(
        ready,
        vec![fast[0].clone(), fast[1].clone()],
        "the first ready ones, in the order given"
    );
    assert_eq!(pending, vec![slow.clone(), fast[2].clone()]);
    let (owned_ready, owned_pending) = mobula::wait(all.clone(), 2, None).unwrap();
    assert_eq!(
        (owned_ready, owned_pending),
        (ready, pending),
        "an owned list splits the same way, by moving its refs"
    );

    let (ready, pending) = mobula::wait(&all, 4, Some(Duration::from_millis(50))).unwrap();
    assert_eq!(
        (ready.len(), pending.len()),
        (3, 1),
        "a timeout returns what is ready"
    );
    assert_eq!(pending, vec![slow.clone()]);
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(20)),
        Err(GetError::Timeout { .. })
    ));

    GATE.open();
    let (ready, pending) = mobula::wait(&all, 4, None).unwrap();
    assert_eq!((ready.len(), pending.len()), (4, 0));
    assert_eq!(slow.get().unwrap(), 100);
    assert!(matches!(
        mobula::wait(&all, 5, None),
        Err(mobula::WaitError::TooManyReturns { .. })
    ));
}

static RAN: AtomicUsize = AtomicUsize::new(0);

#[mobula::remote]
fn counted_run() -> u8 {
    RAN.fetch_add(1, Ordering::SeqCst);
    0
}

#[test]
fn a_cancelled_queued_task_never_runs() {
    let _node = start(Config::default().num_cpus(1));
    GATE.close();
    RAN.store(0, Ordering::SeqCst);
    let blocker = gated.remote(1);
    let queued = counted_run.remote();
    mobula::cancel(&queued).unwrap();
    assert!(
        matches!(queued.get(), Err(GetError::Cancelled { .. })),
        "{:?}",
        queued.get()
    );
    GATE.open();
    assert_eq!(blocker.get().unwrap(), 1);
    // Let the queue drain: a later task on the one CPU runs after the cancelled one would have.
    assert_eq!(counted_run.remote().get().unwrap(), 0);
    assert_eq!(
        RAN.load(Ordering::SeqCst),
        1,
        "only the second counted_run ran"
    );
    mobula::cancel(&blocker).unwrap(); // finished: nothing to do
    assert_eq!(blocker.get().unwrap(), 1);
    let put = mobula::put(1u8).unwrap();
    assert!(matches!(
        mobula::cancel(&put),
        Err(mobula::CancelError::NotATask { .. })
    ));
}

static ABORTED: AtomicBool = AtomicBool::new(false);
static STARTED: AtomicBool = AtomicBool::new(false);

struct SetOnDrop(&'static AtomicBool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[mobula::remote]
async fn forever() -> u8 {
    let _guard = SetOnDrop(&ABORTED);
    STARTED.store(true, Ordering::SeqCst);
    futures::future::pending::<()>().await;
    0
}

#[test]
fn a_running_async_task_is_aborted_by_cancel() {
    let _node = start(Config::default().num_cpus(1));
    ABORTED.store(false, Ordering::SeqCst);
    STARTED.store(false, Ordering::SeqCst);
    let r = forever.remote();
    eventually("the async task started", || STARTED.load(Ordering::SeqCst));
    mobula::cancel(&r).unwrap();
    assert!(matches!(r.get(), Err(GetError::Cancelled { .. })));
    eventually("the future was dropped", || ABORTED.load(Ordering::SeqCst));
    // Its CPU came back: another task runs.
    assert_eq!(square.remote(3).get().unwrap(), 9);
}

static SPINNING: AtomicUsize = AtomicUsize::new(0);

#[mobula::remote]
fn until_cancelled() -> u32 {
    SPINNING.fetch_add(1, Ordering::SeqCst);
    let mut spins = 0;
    while !mobula::context().is_cancelled() {
        std::thread::sleep(Duration::from_millis(1));
        spins += 1;
    }
    RAN.fetch_add(1, Ordering::SeqCst);
    spins
}

#[test]
fn a_running_blocking_task_sees_its_cancellation() {
    let _node = start(Config::default().num_cpus(1));
    RAN.store(0, Ordering::SeqCst);
    SPINNING.store(0, Ordering::SeqCst);
    let r = until_cancelled.remote();
    eventually("the task is running", || {
        SPINNING.load(Ordering::SeqCst) == 1
    });
    mobula::cancel(&r).unwrap();
    assert!(matches!(r.get(), Err(GetError::Cancelled { .. })));
    eventually("the body noticed and returned", || {
        RAN.load(Ordering::SeqCst) == 1
    });
    assert_eq!(square.remote(4).get().unwrap(), 16, "its CPU came back");
}

#[mobula::remote]
async fn blocking_get_inside_async() -> String {
    let r = square.remote(2);
    match r.get() {
        Err(e) => e.to_string(),
        Ok(v) => format!("got {v}"),
    }
}

#[test]
fn a_blocking_get_in_an_async_task_is_refused_with_advice() {
    let _node = start(Config::default().num_cpus(1));
    let msg = blocking_get_inside_async.remote().get().unwrap();
    // Either the value was already there (no blocking needed) or the get was refused.
    assert!(msg == "got 4" || msg.contains("use `.await`"), "{msg}");
}

#[mobula::remote]
fn make_refs(n: u64) -> Vec<ObjectRef<u64>> {
    (0..n).map(|i| square.remote(i)).collect()
}

#[test]
fn results_may_hold_refs() {
    let _node = start(Config::default().num_cpus(2));
    let refs = make_refs.remote(5).get().unwrap();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![0, 1, 4, 9, 16]);
    let boxed = mobula::put(refs.clone()).unwrap();
    drop(refs);
    let back = boxed.get().unwrap();
    assert_eq!(mobula::get_all(&back).unwrap(), vec![0, 1, 4, 9, 16]);
}

#[mobula::remote]
fn sum_all(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[mobula::remote]
async fn sum_all_async(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[mobula::remote]
fn refuse() -> Result<u64, String> {
    Err("no".into())
}

#[test]
fn gathered_refs_are_resolved_into_one_vec_argument() {
    let _node = start(Config::default().num_cpus(2));
    let refs: Vec<ObjectRef<u64>> = (0..1000u64).map(|i| square.remote(i)).collect();
    let expected: u64 = (0..1000u64).map(|i| i * i).sum();
    assert_eq!(
        sum_all.remote(mobula::gather(&refs)).get().unwrap(),
        expected
    );
    assert_eq!(
        sum_all_async
            .remote(mobula::gather(refs.clone()))
            .get()
            .unwrap(),
        expected
    );
    assert_eq!(
        sum_all.remote(vec![1u64, 2, 3]).get().unwrap(),
        6,
        "a plain Vec still works"
    );
    let bad = vec![square.remote(1), mobula::put(2u64).unwrap()];
    let failing = refuse.remote();
    let mut with_failure = bad.clone();
    with_failure.push(failing);
    assert!(
        sum_all.remote(mobula::gather(with_failure)).get().is_err(),
        "a failed ref fails the task"
    );
}

#[mobula::remote(num_returns = 3)]
fn three_ways(x: u64) -> (u64, String, Vec<u64>) {
    (x * x, x.to_string(), vec![x; 2])
}

#[mobula::remote(num_returns = 2, max_retries = 0)]
fn pair_or_fail(fail: bool) -> Result<(u64, u64), String> {
    if fail {
        Err("no pair".into())
    } else {
        Ok((1, 2))
    }
}

#[test]
fn num_returns_gives_a_ref_per_element_each_usable_alone() {
    let _node = start(Config::default().num_cpus(2));
    let (sq, text, list) = three_ways.remote(7);
    // Each ref is its own object: got, waited on and dropped apart from the others.
    assert_eq!(text.get().unwrap(), "7");
    drop(list);
    let (ready, _) = mobula::wait(std::slice::from_ref(&sq), 1, None).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(sq.get().unwrap(), 49);
    // A ref per element passes on to another task like any ref.
    assert_eq!(add.remote(&sq, 1).get().unwrap(), 50);
    // The options builder gives the tuple's ref; `split` makes the refs.
    let (a, b) = mobula::Split::split(pair_or_fail.options().remote(false));
    assert_eq!((a.get().unwrap(), b.get().unwrap()), (1, 2));
    // A failed task fails every one of them with its error.
    let (a, b) = pair_or_fail.remote(true);
    for r in [a, b] {
        match r.get() {
            Err(GetError::Task(e)) => assert!(e.message.contains("no pair"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
