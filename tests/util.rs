//! `mobula::util`: the actor pool and the actor-backed queue.

mod common;

use std::time::Duration;

use common::start;
use mobula::prelude::*;
use mobula::util::{ActorPool, Queue, QueueError};

#[mobula::actor]
struct Worker {
    id: u32,
}

#[mobula::actor]
impl Worker {
    fn new(id: u32) -> Self {
        Worker { id }
    }

    fn square(&self, x: u64) -> (u32, u64) {
        std::thread::sleep(Duration::from_millis((x % 3) * 5));
        (self.id, x * x)
    }
}

#[test]
fn an_actor_pool_maps_in_order_or_as_results_come() {
    let _node = start(Config::default().num_cpus(2));
    let workers: Vec<_> = (0..3).map(|i| Worker::remote(i).unwrap()).collect();
    let mut pool = ActorPool::new(workers);
    let results: Vec<(u32, u64)> = pool
        .map(|w, x| w.square(x), 0..20u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        results.iter().map(|r| r.1).collect::<Vec<_>>(),
        (0..20u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let used: std::collections::BTreeSet<u32> = results.iter().map(|r| r.0).collect();
    assert_eq!(used.len(), 3, "the work was spread over every actor");

    let mut unordered: Vec<u64> = pool
        .map_unordered(|w, x| w.square(x), 0..20u64)
        .map(|r| r.unwrap().1)
        .collect();
    unordered.sort();
    assert_eq!(unordered, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    assert!(!pool.has_next());
}

#[test]
fn an_actor_pool_queues_work_beyond_its_actors() {
    let _node = start(Config::default().num_cpus(2));
    let mut pool = ActorPool::new(vec![Worker::remote(7).unwrap()]);
    assert!(pool.has_free());
    for x in 1..=5u64 {
        pool.submit(|w, x| w.square(x), x);
    }
    assert!(!pool.has_free());
    let mut got = Vec::new();
    while pool.has_next() {
        got.push(pool.get_next().unwrap().unwrap().1);
    }
    assert_eq!(got, vec![1, 4, 9, 16, 25]);
    assert!(pool.get_next().is_none());
    assert!(pool.pop_idle().is_some());
    assert!(pool.pop_idle().is_none());
}

#[mobula::remote]
fn produce(queue: Queue<u32>, from: u32, n: u32) -> u32 {
    for i in from..from + n {
        queue.put(i).unwrap();
    }
    n
}

#[mobula::remote]
async fn consume_async(queue: Queue<u32>, n: u32) -> u64 {
    let mut total = 0u64;
    for _ in 0..n {
        total += queue.get_async().await.unwrap() as u64;
    }
    total
}

#[test]
fn a_queue_is_shared_by_tasks_in_order() {
    let _node = start(Config::default().num_cpus(2));
    let queue = Queue::<u32>::new(0).unwrap();
    assert_eq!(produce.remote(queue.clone(), 0, 100).get().unwrap(), 100);
    assert_eq!(queue.size().unwrap(), 100);
    let first: Vec<u32> = (0..10).map(|_| queue.get().unwrap()).collect();
    assert_eq!(first, (0..10).collect::<Vec<_>>(), "first in, first out");
    assert_eq!(queue.get_nowait_batch(5).unwrap(), vec![10, 11, 12, 13, 14]);
    let total = consume_async.remote(queue.clone(), 85).get().unwrap();
    assert_eq!(total, (15..100u64).sum::<u64>());
    assert!(queue.is_empty().unwrap());
}

#[test]
fn a_bounded_queue_blocks_and_times_out() {
    let _node = start(Config::default().num_cpus(2));
    let queue = Queue::<String>::new(2).unwrap();
    queue.put("a".to_string()).unwrap();
    queue.put_nowait("b".to_string()).unwrap();
    assert!(queue.is_full().unwrap());
    assert!(matches!(
        queue.put_nowait("c".to_string()),
        Err(QueueError::Full)
    ));
    assert!(matches!(
        queue.put_timeout("c".to_string(), Duration::from_millis(30)),
        Err(QueueError::Full)
    ));
    assert!(matches!(
        queue.put_nowait_batch(vec!["x".into(), "y".into()]),
        Err(QueueError::Full)
    ));

    // A blocked put goes through once a get makes room.
    let q = queue.clone();
    let putter = std::thread::spawn(move || q.put("c".to_string()));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(queue.get().unwrap(), "a");
    putter.join().unwrap().unwrap();
    assert_eq!(
        queue.get_nowait_batch(2).unwrap(),
        vec!["b".to_string(), "c".to_string()]
    );
    assert!(matches!(queue.get_nowait(), Err(QueueError::Empty)));
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(30)),
        Err(QueueError::Empty)
    ));
    assert!(matches!(queue.get_nowait_batch(1), Err(QueueError::Empty)));

    queue.shutdown();
    assert!(matches!(queue.size(), Err(QueueError::Actor(_))));
}
