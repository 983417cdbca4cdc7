//! Streaming generators on one node: a remote function or actor method that yields gives a
//! ref per item as each is made, in order, at most a window ahead of its consumer, with the
//! failure semantics of tasks.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{Gate, eventually, start};
use futures::StreamExt;
use mobula::prelude::*;

#[mobula::remote]
fn squares(n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(|i| i * i)
}

#[test]
fn items_come_in_order_as_refs() {
    let _node = start(Config::default().num_cpus(2));
    let refs: Vec<ObjectRef<u64>> = squares.remote(5).collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), vec![0, 1, 4, 9, 16]);
    let (ready, pending) = mobula::wait(&refs, 5, None).unwrap();
    assert_eq!((ready.len(), pending.len()), (5, 0));
    assert_eq!(squares.remote(0).count(), 0);
    // Once it has ended, it stays ended.
    let mut one = squares.remote(1);
    assert_eq!(one.next().unwrap().get().unwrap(), 0);
    assert!(one.next().is_none());
    assert!(one.next().is_none());
}

static SECOND: Gate = Gate::new();

#[mobula::remote]
fn first_then_wait() -> impl Iterator<Item = String> {
    ["first", "second"].into_iter().map(|s| {
        if s == "second" {
            SECOND.pass();
        }
        s.to_string()
    })
}

#[test]
fn an_item_is_ready_while_its_task_still_runs() {
    let _node = start(Config::default().num_cpus(2));
    SECOND.close();
    let mut items = first_then_wait.remote();
    let first = items.next().expect("a first item");
    assert_eq!(first.get().unwrap(), "first");
    let done = items.completed();
    assert!(
        mobula::wait(
            std::slice::from_ref(&done),
            1,
            Some(std::time::Duration::ZERO)
        )
        .unwrap()
        .0
        .is_empty(),
        "the task is still running: it waits for the gate"
    );
    SECOND.open();
    assert_eq!(items.next().unwrap().get().unwrap(), "second");
    assert!(items.next().is_none());
    assert_eq!(done.get().unwrap(), 2);
}

/// Items the consumer is about to take (it counts before it asks), and the most items the
/// producer made beyond that.
static ASKED: AtomicU64 = AtomicU64::new(0);
static MADE: AtomicU64 = AtomicU64::new(0);
static MOST_AHEAD: AtomicU64 = AtomicU64::new(0);

#[mobula::remote]
fn counted(n: u64) -> impl Iterator<Item = u64> {
    (0..n).inspect(|_| {
        let made = MADE.fetch_add(1, Ordering::SeqCst) + 1;
        let ahead = made.saturating_sub(ASKED.load(Ordering::SeqCst));
        MOST_AHEAD.fetch_max(ahead, Ordering::SeqCst);
    })
}

/// Consumes `n` items of `counted` with the window `window`, checking that the producer
/// fills its window and never goes beyond it.
fn bounded_by(window: u32, n: u64) {
    ASKED.store(0, Ordering::SeqCst);
    MADE.store(0, Ordering::SeqCst);
    MOST_AHEAD.store(0, Ordering::SeqCst);
    let mut items = counted.options().generator_backpressure(window).remote(n);
    for i in 0..n {
        if i == 3 {
            // The producer runs until its window is full, and stops there.
            eventually("the window fills", || {
                MADE.load(Ordering::SeqCst) == (3 + u64::from(window)).min(n)
            });
        }
        ASKED.fetch_add(1, Ordering::SeqCst);
        assert_eq!(items.next().unwrap().get().unwrap(), i);
    }
    assert!(items.next().is_none());
    let most = MOST_AHEAD.load(Ordering::SeqCst);
    assert!(
        most <= u64::from(window),
        "window {window}: the producer made {most} items beyond those asked for"
    );
}

#[test]
fn the_producer_runs_at_most_a_window_ahead_of_its_consumer() {
    let _node = start(Config::default().num_cpus(2));
    for window in [1, 2, 5] {
        bounded_by(window, 40);
    }
}

#[mobula::remote]
fn two_then_fail() -> impl Iterator<Item = Result<u32, String>> {
    vec![
        Ok(1),
        Ok(2),
        Err("the third item is bad".to_string()),
        Ok(4),
    ]
    .into_iter()
}

#[mobula::remote(max_retries = 0)]
fn one_then_panic() -> impl Iterator<Item = u32> {
    (1..3).map(|i| if i == 2 { panic!("item two panics") } else { i })
}

#[test]
fn a_failure_comes_after_the_items_before_it_then_the_generator_ends() {
    let _node = start(Config::default().num_cpus(2));
    let mut items = two_then_fail.remote();
    assert_eq!(items.next().unwrap().get().unwrap(), 1);
    assert_eq!(items.next().unwrap().get().unwrap(), 2);
    let err = items.next().unwrap().get().unwrap_err();
    assert!(err.to_string().contains("the third item is bad"), "{err}");
    assert!(items.next().is_none());
    assert!(items.completed().get().is_err());

    let mut items = one_then_panic.remote();
    assert_eq!(items.next().unwrap().get().unwrap(), 1);
    match items.next().unwrap().get() {
        Err(GetError::Task(e)) => {
            assert_eq!(e.kind, mobula::TaskErrorKind::Panicked);
            assert!(e.message.contains("item two panics"), "{e}");
        }
        other => panic!("expected the panic, got {other:?}"),
    }
    assert!(items.next().is_none());
}

static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

#[mobula::remote(max_retries = 2)]
fn dies_once_after_three() -> impl Iterator<Item = u64> {
    let attempt = ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    (0..6).inspect(move |&i| {
        if attempt == 0 && i == 3 {
            mobula::testing::kill_current_worker();
        }
    })
}

#[test]
fn a_retried_generator_gives_each_item_once() {
    let _node = start(Config::default().num_cpus(2));
    ATTEMPTS.store(0, Ordering::SeqCst);
    let values: Vec<u64> = dies_once_after_three
        .remote()
        .map(|r| r.get().unwrap())
        .collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 2);
}

static ENDLESS_MADE: AtomicU64 = AtomicU64::new(0);

#[mobula::remote(generator_backpressure = 1)]
fn endless() -> impl Iterator<Item = u64> {
    (0..).inspect(|_| {
        ENDLESS_MADE.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn dropping_the_generator_stops_its_producer() {
    let _node = start(Config::default().num_cpus(2));
    ENDLESS_MADE.store(0, Ordering::SeqCst);
    let mut items = endless.remote();
    assert_eq!(items.next().unwrap().get().unwrap(), 0);
    assert_eq!(items.next().unwrap().get().unwrap(), 1);
    let done = items.completed();
    drop(items);
    let err = done.get().unwrap_err();
    assert!(err.to_string().contains("dropped"), "{err}");
    assert!(ENDLESS_MADE.load(Ordering::SeqCst) <= 4);
}

#[mobula::remote]
async fn letters(word: String) -> impl futures::Stream<Item = char> {
    futures::stream::iter(word.chars().collect::<Vec<_>>())
}

#[mobula::remote]
async fn doubled(n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(|i| i * 2)
}

#[test]
fn async_functions_yield_and_async_code_consumes() {
    let _node = start(Config::default().num_cpus(2));
    let word: String = futures::executor::block_on(async {
        let mut out = String::new();
        let mut items = letters.remote("stream".to_string()).into_stream();
        while let Some(item) = items.next().await {
            out.push(item.await.unwrap());
        }
        out
    });
    assert_eq!(word, "stream");
    let values: Vec<u64> = doubled.remote(4).map(|r| r.get().unwrap()).collect();
    assert_eq!(values, vec![0, 2, 4, 6]);
}

#[mobula::remote]
fn consume_inside(n: u64) -> u64 {
    squares.remote(n).map(|r| r.get().unwrap()).sum()
}

#[test]
fn a_task_consumes_a_generator_on_a_busy_node() {
    // One CPU: the consumer lends it while it waits, so the producer can run.
    let _node = start(Config::default().num_cpus(1));
    assert_eq!(consume_inside.remote(4).get().unwrap(), 14);
}

#[mobula::actor]
struct Ticker {
    ticks: u64,
}

#[mobula::actor]
impl Ticker {
    fn new() -> Self {
        Ticker { ticks: 0 }
    }

    fn ticks(&mut self, n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(move |_| {
            self.ticks += 1;
            self.ticks
        })
    }

    fn total(&self) -> u64 {
        self.ticks
    }
}

#[mobula::actor]
struct Echo;

#[mobula::actor]
impl Echo {
    fn new() -> Self {
        Echo
    }

    async fn repeat(&self, word: String, times: usize) -> impl futures::Stream<Item = String> {
        futures::stream::iter(std::iter::repeat_n(word, times))
    }
}

#[test]
fn actor_methods_yield() {
    let _node = start(Config::default().num_cpus(2));
    let t = Ticker::remote().unwrap();
    let first: Vec<u64> = t.ticks(3).map(|r| r.get().unwrap()).collect();
    let second: Vec<u64> = t.ticks(2).map(|r| r.get().unwrap()).collect();
    assert_eq!(first, vec![1, 2, 3]);
    assert_eq!(second, vec![4, 5]);
    assert_eq!(t.total().get().unwrap(), 5);

    let e = Echo::remote().unwrap();
    let words: Vec<String> = e
        .repeat("hi".to_string(), 3)
        .map(|r| r.get().unwrap())
        .collect();
    assert_eq!(words, vec!["hi", "hi", "hi"]);
}

#[test]
fn a_thousand_items_pass_through_a_window_of_one() {
    // Each item waits for the consumer: the producer blocks once per item, a thousand times.
    let _node = start(Config::default().num_cpus(2));
    let sum: u64 = squares
        .options()
        .generator_backpressure(1)
        .remote(1000)
        .map(|r| r.get().unwrap())
        .sum();
    assert_eq!(sum, (0..1000u64).map(|i| i * i).sum::<u64>());
}
