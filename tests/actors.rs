//! Actors: typed handles, ordering, concurrency, options, named actors, supervision, cost.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Concurrency, Gate, eventually, start};
use mobula::prelude::*;
use mobula::{ActorError, TaskErrorKind};

#[mobula::actor]
struct Counter {
    value: i64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    fn add(&mut self, n: i64) -> i64 {
        self.value += n;
        self.value
    }

    fn get(&self) -> i64 {
        self.value
    }

    fn checked_sub(&mut self, n: i64) -> Result<i64, String> {
        if n > self.value {
            return Err(format!("cannot take {n} from {}", self.value));
        }
        self.value -= n;
        Ok(self.value)
    }

    fn explode(&mut self, why: String) -> i64 {
        panic!("exploded: {why}");
    }
}

#[test]
fn the_lecture_counter_counts_to_five() {
    let _node = start(Config::default().num_cpus(2));
    let counter = Counter::remote().unwrap();
    let refs: Vec<_> = (0..5).map(|_| counter.increment()).collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![1, 2, 3, 4, 5]);
    assert_eq!(counter.add(10).get().unwrap(), 15);
    assert_eq!(counter.get().get().unwrap(), 15);
}

/// Ray's fire-and-forget: a call whose ref is dropped at once still runs, in its turn.
#[test]
fn a_call_whose_ref_is_dropped_still_runs_in_order() {
    let _node = start(Config::default().num_cpus(2));
    let counter = Counter::remote().unwrap();
    for _ in 0..3 {
        drop(counter.add(5));
    }
    assert_eq!(counter.get().get().unwrap(), 15);
}

#[mobula::remote]
fn five() -> i64 {
    5
}

#[test]
fn arguments_take_values_and_refs_and_errors_come_back_typed() {
    let _node = start(Config::default().num_cpus(2));
    let counter = Counter::remote().unwrap();
    let put = mobula::put(3i64).unwrap();
    assert_eq!(counter.add(&put).get().unwrap(), 3);
    assert_eq!(
        counter.add(five.remote()).get().unwrap(),
        8,
        "a task's result as an argument"
    );
    assert_eq!(counter.checked_sub(2).get().unwrap(), 6);
    match counter.checked_sub(100).get() {
        Err(GetError::Task(e)) => {
            assert_eq!(e.kind, TaskErrorKind::Failed);
            assert_eq!(e.function, "Counter.checked_sub");
            assert_eq!(e.message, "cannot take 100 from 6");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        counter.get().get().unwrap(),
        6,
        "an Err does not restart the actor"
    );
}

#[mobula::remote]
fn bump_from_a_task(counter: CounterHandle, times: u32) -> i64 {
    let mut last = 0;
    for _ in 0..times {
        last = counter.increment().get().unwrap();
    }
    last
}

#[mobula::actor]
struct Relay {
    target: CounterHandle,
}

#[mobula::actor]
impl Relay {
    fn new(target: CounterHandle) -> Self {
        Relay { target }
    }

    fn forward(&self, n: i64) -> i64 {
        self.target.add(n).get().unwrap()
    }
}

#[test]
fn handles_travel_into_tasks_and_actors_and_reach_the_same_actor() {
    let _node = start(Config::default().num_cpus(2));
    let counter = Counter::remote().unwrap();
    let copy = counter.clone();
    assert_eq!(
        bump_from_a_task.remote(counter.clone(), 10).get().unwrap(),
        10
    );
    let relay = Relay::remote(counter.clone()).unwrap();
    assert_eq!(relay.forward(5).get().unwrap(), 15);
    assert_eq!(copy.get().get().unwrap(), 15);
    // A handle stored in the object store comes back usable.
    let stored = mobula::put(counter.clone()).unwrap();
    assert_eq!(stored.get().unwrap().increment().get().unwrap(), 16);
}

#[test]
fn calls_from_each_caller_run_in_the_order_they_were_made() {
    let _node = start(Config::default().num_cpus(2));
    #[mobula::actor]
    struct Log {
        seen: Vec<(u32, u32)>,
    }
    #[mobula::actor]
    impl Log {
        fn new() -> Self {
            Log { seen: Vec::new() }
        }
        fn record(&mut self, caller: u32, seq: u32) -> u32 {
            self.seen.push((caller, seq));
            seq
        }
        fn seen(&self) -> Vec<(u32, u32)> {
            self.seen.clone()
        }
    }
    let log = Log::remote().unwrap();
    let callers: Vec<_> = (0..8u32)
        .map(|caller| {
            let log = log.clone();
            std::thread::spawn(move || {
                let refs: Vec<_> = (0..500u32).map(|seq| log.record(caller, seq)).collect();
                mobula::get_all(&refs).unwrap()
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.join().unwrap(), (0..500).collect::<Vec<_>>());
    }
    let seen = log.seen().get().unwrap();
    assert_eq!(seen.len(), 8 * 500);
    for caller in 0..8 {
        let mine: Vec<u32> = seen
            .iter()
            .filter(|(c, _)| *c == caller)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            mine,
            (0..500).collect::<Vec<_>>(),
            "caller {caller}'s calls ran in its order"
        );
    }
}

static INSIDE: Concurrency = Concurrency::new();

#[mobula::actor]
struct Sleeper;

#[mobula::actor]
impl Sleeper {
    fn new() -> Self {
        Sleeper
    }

    async fn nap(&self, expect: usize) -> u8 {
        let n = INSIDE_ASYNC.fetch_add(1, Ordering::SeqCst) + 1;
        INSIDE_ASYNC_MAX.fetch_max(n, Ordering::SeqCst);
        if n >= expect {
            REACHED.fetch_add(1, Ordering::SeqCst);
        }
        // Wait, without blocking the thread, until `expect` calls have been inside at once
        // since this one came in (or give up after a few seconds).
        let seen = REACHED.load(Ordering::SeqCst);
        for _ in 0..500 {
            if REACHED.load(Ordering::SeqCst) > seen || n >= expect {
                break;
            }
            futures_timer(Duration::from_millis(10)).await;
        }
        INSIDE_ASYNC.fetch_sub(1, Ordering::SeqCst);
        1
    }
}

static INSIDE_ASYNC: AtomicUsize = AtomicUsize::new(0);
static REACHED: AtomicUsize = AtomicUsize::new(0);
static INSIDE_ASYNC_MAX: AtomicUsize = AtomicUsize::new(0);

/// A timer that needs no async runtime of its own: a thread fires it.
async fn futures_timer(d: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

#[test]
fn async_actors_run_calls_concurrently_up_to_max_concurrency() {
    let _node = start(Config::default().num_cpus(1));
    INSIDE_ASYNC_MAX.store(0, Ordering::SeqCst);
    let sleeper = Sleeper::remote().unwrap();
    let refs: Vec<_> = (0..50).map(|_| sleeper.nap(50)).collect();
    assert_eq!(mobula::get_all(&refs).unwrap().len(), 50);
    assert_eq!(
        INSIDE_ASYNC_MAX.load(Ordering::SeqCst),
        50,
        "all 50 ran at once (default 1000)"
    );

    INSIDE_ASYNC_MAX.store(0, Ordering::SeqCst);
    let limited = Sleeper::options().max_concurrency(4).remote().unwrap();
    let refs: Vec<_> = (0..20).map(|_| limited.nap(4)).collect();
    mobula::get_all(&refs).unwrap();
    assert_eq!(INSIDE_ASYNC_MAX.load(Ordering::SeqCst), 4);
}

#[mobula::actor]
struct Threaded {
    calls: AtomicUsize,
}

#[mobula::actor]
impl Threaded {
    fn new() -> Self {
        Threaded {
            calls: AtomicUsize::new(0),
        }
    }

    fn work(&self, expect: usize) -> usize {
        INSIDE.run(expect);
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn reset(&mut self) -> usize {
        *self.calls.get_mut() = 0;
        0
    }
}

#[test]
fn a_blocking_actor_with_max_concurrency_runs_shared_calls_on_several_threads() {
    let _node = start(Config::default().num_cpus(4));
    INSIDE.reset();
    let one = Threaded::remote().unwrap();
    let refs: Vec<_> = (0..4).map(|_| one.work(1)).collect();
    mobula::get_all(&refs).unwrap();
    assert_eq!(INSIDE.max(), 1, "one call at a time by default");

    INSIDE.reset();
    let three = Threaded::options().max_concurrency(3).remote().unwrap();
    let refs: Vec<_> = (0..9).map(|_| three.work(3)).collect();
    let mut counts = mobula::get_all(&refs).unwrap();
    counts.sort();
    assert_eq!(
        counts,
        (1..=9).collect::<Vec<_>>(),
        "&self calls shared the state safely"
    );
    assert_eq!(INSIDE.max(), 3, "&self calls ran three at once");
    assert_eq!(three.reset().get().unwrap(), 0, "&mut self calls run alone");
}

#[test]
fn named_actors_are_found_by_name_and_class() {
    let _node = start(Config::default().num_cpus(1));
    let counter = Counter::options().name("global").remote().unwrap();
    counter.add(7).get().unwrap();
    let found = mobula::get_actor::<Counter>("global").unwrap();
    assert_eq!(found.get().get().unwrap(), 7);
    assert_eq!(found.name(), Some("global"));
    assert!(matches!(
        mobula::get_actor::<Counter>("nobody"),
        Err(ActorError::NotFound { .. })
    ));
    let err = mobula::get_actor::<Relay>("global").unwrap_err();
    assert!(matches!(err, ActorError::WrongClass { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is a `actors::Counter`, not a `actors::Relay`"),
        "{err}"
    );

    let err = Counter::options().name("global").remote().unwrap_err();
    assert!(matches!(err, ActorError::NameTaken { .. }), "{err:?}");
    let same = Counter::options()
        .name("global")
        .get_if_exists(true)
        .remote()
        .unwrap();
    assert_eq!(
        same.get().get().unwrap(),
        7,
        "get_if_exists returns the existing actor"
    );

    let other = Counter::options()
        .name("global")
        .namespace("team-b")
        .remote()
        .unwrap();
    assert_eq!(
        other.get().get().unwrap(),
        0,
        "another namespace, another actor"
    );
    assert_eq!(
        mobula::get_actor_in::<Counter>("team-b", "global")
            .unwrap()
            .get()
            .get()
            .unwrap(),
        0
    );
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

#[mobula::actor]
struct Mortal {
    id: u32,
}

impl Drop for Mortal {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[mobula::actor]
impl Mortal {
    fn new(id: u32) -> Self {
        Mortal { id }
    }

    fn id(&self) -> u32 {
        self.id
    }
}

#[test]
fn an_actor_stops_with_its_last_handle_unless_detached() {
    let _node = start(Config::default().num_cpus(1));
    DROPPED.store(0, Ordering::SeqCst);
    let a = Mortal::remote(1).unwrap();
    let b = a.clone();
    assert_eq!(a.id().get().unwrap(), 1);
    drop(a);
    assert_eq!(b.id().get().unwrap(), 1, "a clone keeps it alive");
    drop(b);
    eventually("the actor stopped and its state was dropped", || {
        DROPPED.load(Ordering::SeqCst) == 1
    });

    let detached = Mortal::options()
        .name("keeper")
        .detached(true)
        .remote(2)
        .unwrap();
    assert_eq!(detached.id().get().unwrap(), 2);
    // Dropped together with an ordinary actor's last handle: once that one has stopped,
    // the detached one would have too, were it not detached.
    let control = Mortal::remote(3).unwrap();
    assert_eq!(control.id().get().unwrap(), 3);
    drop(detached);
    drop(control);
    eventually("the ordinary actor dropped with it stopped", || {
        DROPPED.load(Ordering::SeqCst) == 2
    });
    let again = mobula::get_actor::<Mortal>("keeper").unwrap();
    assert_eq!(
        again.id().get().unwrap(),
        2,
        "a detached actor outlives its handles"
    );
    mobula::kill(&again);
    // Its state is dropped, then its name freed: both, soon.
    eventually("a killed actor is dropped and its name freed", || {
        DROPPED.load(Ordering::SeqCst) == 3
            && matches!(
                mobula::get_actor::<Mortal>("keeper"),
                Err(ActorError::NotFound { .. })
            )
    });
    match again.id().get() {
        Err(GetError::ActorDied { cause, .. }) => assert!(cause.contains("killed"), "{cause}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_panic_fails_the_call_and_restarts_the_actor_with_fresh_state() {
    let _node = start(Config::default().num_cpus(1));
    let counter = Counter::options().max_restarts(1).remote().unwrap();
    assert_eq!(counter.add(10).get().unwrap(), 10);
    match counter.explode("first".to_string()).get() {
        Err(GetError::Task(e)) => {
            assert_eq!(e.kind, TaskErrorKind::Panicked);
            assert!(e.message.contains("exploded: first"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        counter.increment().get().unwrap(),
        1,
        "the constructor ran again: state reset"
    );
    // Past the budget, every call fails at once, naming the actor and the cause.
    assert!(counter.explode("second".to_string()).get().is_err());
    for _ in 0..3 {
        match counter.get().get() {
            Err(GetError::ActorDied { actor, cause }) => {
                assert!(actor.starts_with("Counter ("), "{actor}");
                assert!(
                    cause.contains("`Counter.explode` panicked: exploded: second"),
                    "{cause}"
                );
                assert!(cause.contains("already restarted once"), "{cause}");
            }
            other => panic!("{other:?}"),
        }
    }
}

static GATE: Gate = Gate::new();

#[mobula::actor]
struct Slow {
    runs: u32,
}

#[mobula::actor]
impl Slow {
    fn new() -> Self {
        Slow { runs: 0 }
    }

    fn wait_then_panic(&mut self) -> u32 {
        GATE.pass();
        panic!("bad input");
    }

    fn step(&mut self) -> u32 {
        self.runs += 1;
        self.runs
    }
}

#[test]
fn calls_in_flight_at_a_failure_are_retried_only_within_max_task_retries() {
    let _node = start(Config::default().num_cpus(1));
    // Without retries the queued calls fail with a restarting error.
    GATE.close();
    let actor = Slow::options().max_restarts(1).remote().unwrap();
    let boom = actor.wait_then_panic();
    let queued: Vec<_> = (0..3).map(|_| actor.step()).collect();
    GATE.open();
    assert!(matches!(boom.get(), Err(GetError::Task(_))));
    for r in &queued {
        match r.get() {
            Err(GetError::ActorRestarting { cause, .. }) => {
                assert!(cause.contains("bad input"), "{cause}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        actor.step().get().unwrap(),
        1,
        "the restarted actor serves new calls"
    );

    // With max_task_retries they run again, in order, on the restarted actor.
    GATE.close();
    let actor = Slow::options()
        .max_restarts(1)
        .max_task_retries(1)
        .remote()
        .unwrap();
    let boom = actor.wait_then_panic();
    let queued: Vec<_> = (0..3).map(|_| actor.step()).collect();
    GATE.open();
    assert!(boom.get().is_err());
    assert_eq!(mobula::get_all(&queued).unwrap(), vec![1, 2, 3]);
}

#[test]
fn kill_with_restart_and_terminate() {
    let _node = start(Config::default().num_cpus(1));
    let counter = Counter::options().max_restarts(2).remote().unwrap();
    counter.add(5).get().unwrap();
    counter.kill(true);
    eventually("the actor restarted after the kill", || {
        counter.get().get().ok() == Some(0)
    });

    let counter = Counter::remote().unwrap();
    let before: Vec<_> = (0..3).map(|_| counter.increment()).collect();
    counter.terminate();
    let after = counter.increment();
    assert_eq!(
        mobula::get_all(&before).unwrap(),
        vec![1, 2, 3],
        "calls before terminate run"
    );
    match after.get() {
        Err(GetError::ActorDied { cause, .. }) => assert!(cause.contains("terminated"), "{cause}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_pending_calls_refuses_calls_beyond_it() {
    let _node = start(Config::default().num_cpus(1));
    GATE.close();
    let actor = Slow::options().max_pending_calls(3).remote().unwrap();
    // Occupies the actor; running or waiting, it counts as pending either way.
    let blocked = actor.wait_then_panic();
    let ok: Vec<_> = (0..2).map(|_| actor.step()).collect();
    let refused = actor.step();
    match refused.get() {
        Err(GetError::Backpressure { limit, .. }) => assert_eq!(limit, 3),
        other => panic!("{other:?}"),
    }
    assert!(
        refused
            .get()
            .unwrap_err()
            .to_string()
            .contains("max_pending_calls")
    );
    GATE.open();
    assert!(blocked.get().is_err());
    // The actor failed (no restarts): the queued calls fail too, but none was lost silently.
    for r in ok {
        assert!(r.get().is_err());
    }
}

#[mobula::actor]
struct Holder;

#[mobula::actor]
impl Holder {
    fn new() -> Self {
        Holder
    }

    fn ping(&self) -> u8 {
        1
    }
}

#[test]
fn actors_hold_their_resources_for_life() {
    let _node = start(Config::default().num_cpus(2).resource("fpga", 1));
    let first = Holder::options().resource("fpga", 1).remote().unwrap();
    assert_eq!(first.ping().get().unwrap(), 1);
    let second = Holder::options().resource("fpga", 1).remote().unwrap();
    let waiting = second.ping();
    assert!(
        matches!(
            waiting.get_timeout(Duration::from_millis(50)),
            Err(GetError::Timeout { .. })
        ),
        "no fpga free"
    );
    mobula::kill(&first);
    assert_eq!(
        waiting.get().unwrap(),
        1,
        "placed once the first released its fpga"
    );
    let impossible = Holder::options().num_gpus(1).remote().unwrap();
    match impossible.ping().get() {
        Err(GetError::ActorDied { cause, .. }) => {
            assert!(cause.contains("can never be placed"), "{cause}")
        }
        other => panic!("{other:?}"),
    }
    // By default an actor holds no CPU: many fit on two CPUs.
    let many: Vec<_> = (0..20).map(|_| Holder::remote().unwrap()).collect();
    let pings: Vec<_> = many.iter().map(|h| h.ping()).collect();
    assert_eq!(mobula::get_all(&pings).unwrap(), vec![1; 20]);
}

#[test]
fn ten_thousand_actors_start_and_answer() {
    let _node = start(Config::default().num_cpus(2));
    let actors: Vec<_> = (0..10_000).map(|_| Counter::remote().unwrap()).collect();
    let refs: Vec<_> = actors.iter().map(|a| a.increment()).collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![1; 10_000]);
    assert_eq!(mobula::state::actor_count().unwrap(), 10_000);
    drop((actors, refs));
    eventually("all actors stopped with their handles", || {
        mobula::state::actor_count().unwrap() == 0
    });
}

#[mobula::actor]
struct Faulty;

#[mobula::actor]
impl Faulty {
    fn new(ok: bool) -> Result<Self, String> {
        if ok {
            Ok(Faulty)
        } else {
            Err("no config file".into())
        }
    }

    fn hello(&self) -> String {
        "hello".into()
    }
}

#[test]
fn a_failing_constructor_kills_the_actor_with_its_reason() {
    let _node = start(Config::default().num_cpus(1));
    assert_eq!(
        Faulty::remote(true).unwrap().hello().get().unwrap(),
        "hello"
    );
    let bad = Faulty::remote(false).unwrap();
    match bad.hello().get() {
        Err(GetError::ActorDied { cause, .. }) => assert!(
            cause.contains("constructor failed: no config file"),
            "{cause}"
        ),
        other => panic!("{other:?}"),
    }
}

#[mobula::actor]
struct Stuck;

static STUCK_GATE: common::Gate = common::Gate::new();
static STUCK_IN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[mobula::actor]
impl Stuck {
    fn new() -> Self {
        Stuck
    }

    fn wait(&self) -> u8 {
        STUCK_IN.store(true, std::sync::atomic::Ordering::SeqCst);
        STUCK_GATE.pass();
        1
    }
}

/// Killing an actor fails the call it is running at once (as Ray does by killing the actor's
/// process), rather than when the body, which cannot be stopped, returns.
#[test]
fn a_kill_fails_the_running_call_at_once() {
    let _node = common::start(Config::default().num_cpus(2));
    STUCK_GATE.close();
    let stuck = Stuck::remote().unwrap();
    let running = stuck.wait();
    common::eventually("the call runs", || {
        STUCK_IN.load(std::sync::atomic::Ordering::SeqCst)
    });
    mobula::kill(&stuck);
    // Bounded, so that without the fix this fails instead of waiting for the gate forever.
    let err = running
        .get_timeout(std::time::Duration::from_secs(20))
        .unwrap_err()
        .to_string();
    STUCK_GATE.open();
    assert!(err.contains("killed"), "{err}");
}
