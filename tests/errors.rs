//! Failures inside tasks: panics and errors come back as typed errors; retries follow
//! max_retries and retry_exceptions; the node keeps serving.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use common::start;
use mobula::prelude::*;
use mobula::{TaskError, TaskErrorKind};

fn task_error(r: Result<impl std::fmt::Debug, GetError>) -> TaskError {
    match r {
        Err(GetError::Task(e)) => e,
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[mobula::remote]
fn panicky(x: u64) -> u64 {
    if x == 13 {
        panic!("unlucky number {x}");
    }
    x
}

#[test]
fn a_panic_comes_back_as_a_task_error_naming_function_task_and_message() {
    let node = start(Config::default().num_cpus(2));
    let r = panicky.remote(13);
    let e = task_error(r.get());
    assert_eq!(e.kind, TaskErrorKind::Panicked);
    assert_eq!(e.function, concat!(module_path!(), "::panicky"));
    assert!(e.message.contains("unlucky number 13"), "{}", e.message);
    assert!(
        e.message.contains("tests/errors.rs"),
        "the location is given: {}",
        e.message
    );
    assert_eq!(e.attempts, 1, "panics are not retried by default");
    assert_eq!(e.node_id, node.guard.as_ref().unwrap().node_id());
    let shown = e.to_string();
    assert!(
        shown.contains(&e.task_id.to_string()) && shown.contains("panicked after 1 attempt"),
        "{shown}"
    );
    // The node keeps serving.
    assert_eq!(panicky.remote(12).get().unwrap(), 12);
}

#[mobula::remote]
fn parse_config(text: String) -> anyhow::Result<u32> {
    let n: u32 = text.trim().parse().context("reading the worker count")?;
    Ok(n)
}

#[mobula::remote]
fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        Err(format!("cannot divide {a} by zero"))
    } else {
        Ok(a / b)
    }
}

#[test]
fn an_err_comes_back_with_its_causes() {
    let _node = start(Config::default().num_cpus(2));
    assert_eq!(parse_config.remote("42".to_string()).get().unwrap(), 42);
    let e = task_error(parse_config.remote("many".to_string()).get());
    assert_eq!(e.kind, TaskErrorKind::Failed);
    assert_eq!(
        e.message,
        "reading the worker count: invalid digit found in string"
    );
    assert_eq!(checked_div.remote(7, 2).get().unwrap(), 3);
    let e = task_error(checked_div.remote(7, 0).get());
    assert_eq!(e.message, "cannot divide 7 by zero");
}

#[test]
fn a_task_fed_a_failed_ref_fails_with_the_same_error() {
    let _node = start(Config::default().num_cpus(2));
    let bad = checked_div.remote(1, 0);
    let downstream = checked_div.remote(&bad, 1);
    let e = task_error(downstream.get());
    assert_eq!(e.message, "cannot divide 1 by zero");
    assert_eq!(
        e,
        task_error(bad.get()),
        "the upstream task's own error, naming the upstream task"
    );
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[mobula::remote(max_retries = 2, retry_exceptions = true)]
fn always_fails() -> Result<u8, String> {
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    Err("still broken".into())
}

#[mobula::remote(retry_exceptions = true)]
fn fails_twice() -> u32 {
    let run = FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run < 3 {
        panic!("run {run} fails");
    }
    mobula::context().attempt()
}

#[test]
fn retry_exceptions_reruns_failed_tasks_within_max_retries() {
    let _node = start(Config::default().num_cpus(1));
    FLAKY_RUNS.store(0, Ordering::SeqCst);
    let e = task_error(always_fails.remote().get());
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 3, "1 run + 2 retries");
    assert_eq!(e.attempts, 3);
    assert!(e.to_string().contains("after 3 attempts"), "{e}");

    FLAKY_RUNS.store(0, Ordering::SeqCst);
    assert_eq!(
        fails_twice.remote().get().unwrap(),
        3,
        "succeeded on the third attempt"
    );

    FLAKY_RUNS.store(0, Ordering::SeqCst);
    let e = task_error(fails_twice.options().max_retries(1).remote().get());
    assert_eq!((e.attempts, FLAKY_RUNS.load(Ordering::SeqCst)), (2, 2));
    assert_eq!(e.kind, TaskErrorKind::Panicked);

    FLAKY_RUNS.store(0, Ordering::SeqCst);
    let e = task_error(fails_twice.options().retry_exceptions(false).remote().get());
    assert_eq!(
        (e.attempts, FLAKY_RUNS.load(Ordering::SeqCst)),
        (1, 1),
        "without retry_exceptions: one run"
    );
}

static CRASHES: AtomicUsize = AtomicUsize::new(0);

/// Kills its worker on its first `n` attempts.
#[mobula::remote]
fn crashes_first(n: u32) -> u32 {
    let attempt = mobula::context().attempt();
    if attempt <= n {
        CRASHES.fetch_add(1, Ordering::SeqCst);
        mobula::testing::kill_current_worker();
    }
    attempt
}

#[mobula::remote]
async fn async_crashes_first(n: u32) -> u32 {
    let attempt = mobula::context().attempt();
    if attempt <= n {
        mobula::testing::kill_current_worker();
    }
    attempt
}

#[test]
fn tasks_lost_to_dead_workers_are_retried_up_to_max_retries() {
    let _node = start(Config::default().num_cpus(2));
    CRASHES.store(0, Ordering::SeqCst);
    // Default max_retries is 3: two lost attempts, then success.
    assert_eq!(crashes_first.remote(2).get().unwrap(), 3);
    assert_eq!(CRASHES.load(Ordering::SeqCst), 2);
    assert_eq!(async_crashes_first.remote(1).get().unwrap(), 2);

    let e = task_error(crashes_first.options().max_retries(0).remote(5).get());
    assert_eq!((e.kind, e.attempts), (TaskErrorKind::WorkerDied, 1));
    assert!(e.message.contains("worker"), "{}", e.message);

    let e = task_error(crashes_first.remote(10).get());
    assert_eq!(e.attempts, 4, "1 run + the default 3 retries");

    // The pool replaced the dead workers: the node still runs tasks in parallel.
    let refs: Vec<_> = (0..50).map(|i| panicky.remote(i + 100)).collect();
    assert_eq!(
        mobula::get_all(&refs).unwrap(),
        (100..150).collect::<Vec<_>>()
    );
}
