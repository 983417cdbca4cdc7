//! Actors: typed handles, ordering, concurrency, options, named actors, supervision, cost.

mod common;

use common::start;
use mobula::prelude::*;

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
