//! Streaming generators (Ray's `num_returns="streaming"`), as pure state: what the
//! consumer of a generator holds, and the rule that bounds how far its producer runs ahead.
//!
//! A generator task yields items one by one; each is sent to the node that called it
//! (the consumer) with its index, and answered there once it fits. The consumer takes them
//! in index order. The rule, for a window `w`, split into `k = in_flight(w)` pushes a
//! producer may have unanswered and `w - k` answered ahead of the consumer: the push of item
//! `i` is answered only when `i < taken + (w - k)`, and a producer makes item `p` only once
//! item `p - k` is answered, so `p - k < taken + w - k`: it never runs more than `w` items
//! ahead of what the consumer took. A push that repeats an index (a retried task yields its
//! items again) is answered at once and dropped; one beyond the window is refused.
//!
//! [`ItemStream`] is the consumer's side: items in, acknowledgements and items out, no I/O.
//! `R` is how an arrived item is held (a ref to its object), `A` an answer waiting to go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::id::{NodeId, ObjectId};

/// Items a generator may produce ahead of its consumer when nothing else is said (Ray's
/// `_generator_backpressure_num_objects`, off by default there; bounded here). Across nodes
/// the window also sets the pace: half of it travels at once, so a small window waits on
/// the round trip (BENCHMARKS.md: 16 items ~40k items/s, 64 ~80k, 256 ~170k on 2 cores).
pub const DEFAULT_WINDOW: u32 = 64;

/// How many pushes a producer may have unanswered, for a window of `window` items: half of
/// it (at least 1), the rest answered ahead of the consumer.
pub fn in_flight(window: u32) -> u64 {
    u64::from(window.max(1)).div_ceil(2)
}

/// Where a generator's items go, passed to its task as a hidden argument: the consumer's
/// node, the generator's id there, and the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sink {
    /// The node that consumes the items.
    pub node: NodeId,
    /// The generator's id on that node.
    pub generator: ObjectId,
    /// How many items may be produced and not taken.
    pub window: u32,
}

/// How a generator's task ended, as its consumer learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End<E> {
    /// It yielded this many items and returned.
    Finished(u64),
    /// It failed (after its retries): the consumer gets the error after the items it has.
    Failed(E),
}

/// What the consumer gets when it asks for the next item.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<R, E> {
    /// The next item, in order.
    Item(R),
    /// Not produced yet: wait.
    Pending,
    /// Every item was taken; the generator is done.
    Done,
    /// The task failed; every item before the failure was taken. Reported once.
    Failed(E),
}

/// Why a push is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The index is beyond what a producer that keeps the rule can send.
    #[error("item {index} is beyond the window (items taken: {taken}, window: {window})")]
    BeyondWindow {
        /// The index pushed.
        index: u64,
        /// Items the consumer has taken.
        taken: u64,
        /// The window.
        window: u32,
    },
    /// The generator already ended with fewer items.
    #[error("item {index} came after the generator ended with {count} items")]
    AfterEnd {
        /// The index pushed.
        index: u64,
        /// How many items it ended with.
        count: u64,
    },
}

/// The consumer's side of one generator.
#[derive(Debug)]
pub struct ItemStream<R, A, E> {
    window: u64,
    /// Items answered ahead of the consumer: `window - in_flight(window)`.
    ahead: u64,
    /// Items taken so far (the index of the next to take).
    taken: u64,
    arrived: BTreeMap<u64, R>,
    /// Answers held until their item fits in the window, by index.
    held: BTreeMap<u64, A>,
    end: Option<End<E>>,
    /// Whether the failure was handed out.
    reported: bool,
}

impl<R, A, E: Clone> ItemStream<R, A, E> {
    /// A stream whose producer may run `window` items ahead (at least 1).
    pub fn new(window: u32) -> Self {
        let window = window.max(1);
        ItemStream {
            window: u64::from(window),
            ahead: u64::from(window) - in_flight(window),
            taken: 0,
            arrived: BTreeMap::new(),
            held: BTreeMap::new(),
            end: None,
            reported: false,
        }
    }

    /// The index of the next item to take.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Items arrived and not taken.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.arrived.len()
    }

    /// Whether the push of this index may be answered now.
    fn fits(&self, index: u64) -> bool {
        index < self.taken + self.ahead
    }

    /// Item `index` arrived with `answer` waiting to go back to its producer. Returns the
    /// answer if it may go now (the item is kept, or it was a repeat and is dropped), `None`
    /// if it is held until the consumer takes more; or why the push is refused, with the
    /// answer to send the refusal on (the item is dropped).
    pub fn arrive(&mut self, index: u64, item: R, answer: A) -> Result<Option<A>, (Refusal, A)> {
        if let Some(End::Finished(count)) = self.end
            && index >= count
        {
            return Err((Refusal::AfterEnd { index, count }, answer));
        }
        // A producer that keeps the rule stays below taken + window.
        if index >= self.taken + self.window {
            let refusal = Refusal::BeyondWindow {
                index,
                taken: self.taken,
                window: self.window as u32,
            };
            return Err((refusal, answer));
        }
        let repeat = index < self.taken || self.arrived.contains_key(&index);
        if !repeat {
            self.arrived.insert(index, item);
        }
        if repeat || self.fits(index) {
            Ok(Some(answer))
        } else {
            self.held.insert(index, answer);
            Ok(None)
        }
    }

    /// The task ended. A second end (a late duplicate) is ignored.
    pub fn end(&mut self, end: End<E>) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }

    /// The next item for the consumer, with the answers that may now go back.
    pub fn take(&mut self) -> (Next<R, E>, Vec<A>) {
        if let Some(item) = self.arrived.remove(&self.taken) {
            self.taken += 1;
            let limit = self.taken + self.ahead;
            let mut released = Vec::new();
            while let Some(entry) = self.held.first_entry() {
                if *entry.key() >= limit {
                    break;
                }
                released.push(entry.remove());
            }
            return (Next::Item(item), released);
        }
        let next = match &self.end {
            None => Next::Pending,
            Some(End::Finished(count)) if self.taken >= *count => Next::Done,
            // It said it yielded more than arrived: one of them was lost on the way.
            Some(End::Finished(_)) => Next::Pending,
            Some(End::Failed(_)) if self.reported => Next::Done,
            Some(End::Failed(e)) => {
                self.reported = true;
                Next::Failed(e.clone())
            }
        };
        (next, Vec::new())
    }

    /// Whether the stream ended with items missing: the task finished saying it yielded
    /// `count` items, the next of which never arrived.
    pub fn missing(&self) -> Option<u64> {
        match self.end {
            Some(End::Finished(count))
                if self.taken < count && !self.arrived.contains_key(&self.taken) =>
            {
                Some(self.taken)
            }
            _ => None,
        }
    }

    /// Everything held, for a consumer that went away: the answers still waiting.
    pub fn close(&mut self) -> Vec<A> {
        self.arrived.clear();
        std::mem::take(&mut self.held).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Stream = ItemStream<&'static str, u64, String>;

    #[test]
    fn items_come_out_in_index_order_whatever_order_they_arrive_in() {
        let mut s = Stream::new(4);
        assert_eq!(s.arrive(1, "b", 1), Ok(Some(1)));
        assert_eq!(s.take(), (Next::Pending, vec![]));
        assert_eq!(s.arrive(0, "a", 0), Ok(Some(0)));
        assert_eq!(s.take(), (Next::Item("a"), vec![]));
        assert_eq!(s.take(), (Next::Item("b"), vec![]));
        assert_eq!(s.take(), (Next::Pending, vec![]));
        s.end(End::Finished(2));
        assert_eq!(s.take(), (Next::Done, vec![]));
        assert_eq!(s.take(), (Next::Done, vec![]));
    }

    #[test]
    fn a_push_ahead_of_the_consumer_waits_until_it_takes() {
        // Window 2: one push in flight, one answered ahead.
        let mut s = Stream::new(2);
        assert_eq!(s.arrive(0, "a", 0), Ok(Some(0)));
        assert_eq!(s.arrive(1, "b", 1), Ok(None));
        assert_eq!(s.buffered(), 2);
        assert_eq!(s.take(), (Next::Item("a"), vec![1]));
        assert_eq!(s.arrive(2, "c", 2), Ok(None));
        assert_eq!(s.take(), (Next::Item("b"), vec![2]));
        assert_eq!(s.take(), (Next::Item("c"), vec![]));
    }

    #[test]
    fn a_window_of_one_answers_each_item_once_it_is_taken() {
        let mut s = Stream::new(1);
        assert_eq!(s.arrive(0, "a", 0), Ok(None));
        assert_eq!(s.take(), (Next::Item("a"), vec![0]));
        assert_eq!(s.arrive(1, "b", 1), Ok(None));
        assert_eq!(s.take(), (Next::Item("b"), vec![1]));
    }

    #[test]
    fn a_producer_that_ignores_the_rule_is_refused() {
        let mut s = Stream::new(2);
        assert_eq!(
            s.arrive(2, "c", 2),
            Err((
                Refusal::BeyondWindow {
                    index: 2,
                    taken: 0,
                    window: 2
                },
                2
            ))
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn repeats_from_a_retried_task_are_answered_and_dropped() {
        let mut s = Stream::new(2);
        assert_eq!(s.arrive(0, "a", 0), Ok(Some(0)));
        assert_eq!(s.take(), (Next::Item("a"), vec![]));
        // The retry yields item 0 again, then 1.
        assert_eq!(s.arrive(0, "a2", 10), Ok(Some(10)));
        assert_eq!(s.arrive(1, "b", 11), Ok(Some(11)));
        assert_eq!(s.arrive(1, "b2", 12), Ok(Some(12)));
        assert_eq!(s.take(), (Next::Item("b"), vec![]));
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn a_failure_comes_after_the_items_before_it_and_once() {
        let mut s = Stream::new(4);
        assert_eq!(s.arrive(0, "a", 0), Ok(Some(0)));
        s.end(End::Failed("boom".to_string()));
        s.end(End::Finished(9));
        assert_eq!(s.take(), (Next::Item("a"), vec![]));
        assert_eq!(s.take(), (Next::Failed("boom".to_string()), vec![]));
        assert_eq!(s.take(), (Next::Done, vec![]));
    }

    #[test]
    fn an_item_after_the_end_is_refused_and_a_missing_one_is_named() {
        let mut s = Stream::new(4);
        s.end(End::Finished(2));
        assert_eq!(
            s.arrive(2, "c", 2),
            Err((Refusal::AfterEnd { index: 2, count: 2 }, 2))
        );
        assert_eq!(s.arrive(1, "b", 1), Ok(Some(1)));
        assert_eq!(s.missing(), Some(0));
        assert_eq!(s.take(), (Next::Pending, vec![]));
    }

    #[test]
    fn closing_hands_back_every_held_answer() {
        let mut s = Stream::new(1);
        assert_eq!(s.arrive(0, "a", 0), Ok(None));
        assert_eq!(s.close(), vec![0]);
        assert_eq!(s.buffered(), 0);
    }

    /// A producer that keeps the rule, against a consumer that takes one item every
    /// `every` rounds: it is never more than `window` items ahead, and never refused.
    fn keep_the_rule(window: u32, every: u64) {
        let k = in_flight(window);
        let mut s = ItemStream::<u64, u64, String>::new(window);
        let mut answered = std::collections::BTreeSet::new();
        let mut made = 0u64;
        for round in 0..200u64 {
            // Make item `made` once item made - k is answered.
            while made < k || answered.contains(&(made - k)) {
                assert!(
                    made < s.taken() + u64::from(window),
                    "window {window}, round {round}: item {made} made with {} taken",
                    s.taken()
                );
                if let Some(a) = s.arrive(made, made, made).expect("never refused") {
                    answered.insert(a);
                }
                made += 1;
            }
            if round % every == 0 {
                let (next, released) = s.take();
                assert_eq!(next, Next::Item(s.taken() - 1));
                answered.extend(released);
            }
        }
        assert!(made >= 200 / every, "the producer kept going");
    }

    #[test]
    fn the_window_bounds_what_is_made_and_not_taken() {
        for window in [1, 2, 3, 4, 16] {
            for every in [1, 3] {
                keep_the_rule(window, every);
            }
        }
    }
}
