//! An actor's call queue: a pure state machine, generic over the call type.
//!
//! Calls are queued in the order they were submitted and started in that order, by at most
//! `max_concurrency` slots at once (a slot is a worker draining the queue for a blocking
//! actor, or one running call for an async one). The queue also knows the actor's phase:
//! calls wait while it starts or restarts, and are refused once it is dead or past
//! `max_pending_calls`. A crash hands back the calls that were in flight, and a generation
//! number tells slots from before the crash that they are done.

use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for resources or for the constructor.
    Starting,
    Running,
    /// The constructor runs again after a failure.
    Restarting,
    /// For good, with the reason.
    Dead(Arc<str>),
}

#[derive(Debug)]
enum Item<C> {
    Call(C),
    /// `terminate()`: stop once the calls before it are done.
    Terminate,
}

/// What became of a submitted call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; when `slot` is set the caller must start a new slot of that generation.
    Queued { slot: Option<u64> },
    /// The actor is dead: the call fails at once.
    Dead(Arc<str>),
    /// Back-pressure: `limit` calls are already pending.
    Full { limit: usize },
}

/// What a slot does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take<C> {
    Run(C),
    /// A terminate marker was reached: the actor is now dead; these queued calls fail.
    Terminate(Vec<C>),
    /// Nothing to do (or the slot is from before a crash): the slot ends.
    Stop,
}

#[derive(Debug)]
pub(crate) struct CallQueue<C> {
    queue: VecDeque<Item<C>>,
    phase: Phase,
    slots: usize,
    max_slots: usize,
    running: usize,
    max_pending: Option<usize>,
    generation: u64,
    terminate_requested: bool,
    /// Calls run to their end, over every generation.
    finished: u64,
}

impl<C> CallQueue<C> {
    pub fn new(max_concurrency: usize, max_pending: Option<usize>) -> Self {
        CallQueue {
            queue: VecDeque::new(),
            phase: Phase::Starting,
            slots: 0,
            max_slots: max_concurrency.max(1),
            running: 0,
            max_pending,
            generation: 0,
            terminate_requested: false,
            finished: 0,
        }
    }

    /// Calls run to their end so far.
    pub fn finished(&self) -> u64 {
        self.finished
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Calls queued or running.
    pub fn pending(&self) -> usize {
        self.queue
            .iter()
            .filter(|i| matches!(i, Item::Call(_)))
            .count()
            + self.running
    }

    fn claim_slot(&mut self) -> Option<u64> {
        if self.phase == Phase::Running && self.slots < self.max_slots {
            self.slots += 1;
            Some(self.generation)
        } else {
            None
        }
    }

    pub fn push(&mut self, call: C) -> Push {
        if let Phase::Dead(cause) = &self.phase {
            return Push::Dead(Arc::clone(cause));
        }
        if let Some(limit) = self.max_pending
            && self.pending() >= limit
        {
            return Push::Full { limit };
        }
        self.queue.push_back(Item::Call(call));
        Push::Queued {
            slot: self.claim_slot(),
        }
    }

    /// Asks the actor to stop after the calls queued so far.
    pub fn push_terminate(&mut self) -> Push {
        if let Phase::Dead(cause) = &self.phase {
            return Push::Dead(Arc::clone(cause));
        }
        self.terminate_requested = true;
        self.queue.push_back(Item::Terminate);
        Push::Queued {
            slot: self.claim_slot(),
        }
    }

    /// The next thing for a slot of generation `generation` to do.
    pub fn take(&mut self, generation: u64) -> Take<C> {
        if generation != self.generation {
            return Take::Stop; // a slot from before a crash; it no longer counts
        }
        if self.phase != Phase::Running {
            self.slots = self.slots.saturating_sub(1);
            return Take::Stop;
        }
        match self.queue.pop_front() {
            Some(Item::Call(c)) => {
                self.running += 1;
                Take::Run(c)
            }
            Some(Item::Terminate) => Take::Terminate(self.die("it was terminated".into())),
            None => {
                self.slots = self.slots.saturating_sub(1);
                Take::Stop
            }
        }
    }

    /// A call taken by a slot of `generation` ended.
    pub fn done(&mut self, generation: u64) {
        self.finished += 1;
        if generation == self.generation {
            self.running = self.running.saturating_sub(1);
        }
    }

    /// Gives a slot back (an async actor's slot ends with its call).
    pub fn release_slot(&mut self, generation: u64) {
        if generation == self.generation {
            self.slots = self.slots.saturating_sub(1);
        }
    }

    /// The actor failed and will restart: the calls that were queued are handed back (in
    /// order) for the host to retry or fail; calls submitted from now on wait for the restart.
    pub fn crash(&mut self) -> Vec<C> {
        self.phase = Phase::Restarting;
        self.generation += 1;
        self.slots = 0;
        self.running = 0;
        self.take_calls()
    }

    fn take_calls(&mut self) -> Vec<C> {
        let mut calls = Vec::new();
        for item in self.queue.drain(..) {
            match item {
                Item::Call(c) => calls.push(c),
                Item::Terminate => self.terminate_requested = true,
            }
        }
        calls
    }

    /// The actor is (again) running; `retried` calls go first, in their order. Returns how
    /// many slots to start, and their generation.
    pub fn running(&mut self, retried: Vec<C>) -> (usize, u64) {
        self.phase = Phase::Running;
        let earlier: Vec<_> = retried.into_iter().map(Item::Call).collect();
        for (i, item) in earlier.into_iter().enumerate() {
            self.queue.insert(i, item);
        }
        if self.terminate_requested && !self.queue.iter().any(|i| matches!(i, Item::Terminate)) {
            self.queue.push_back(Item::Terminate);
        }
        let mut started = 0;
        while started < self.queue.len() && self.claim_slot().is_some() {
            started += 1;
        }
        (started, self.generation)
    }

    /// The actor is dead for good; the queued calls are handed back to fail.
    pub fn die(&mut self, cause: Arc<str>) -> Vec<C> {
        self.phase = Phase::Dead(cause);
        self.generation += 1;
        self.slots = 0;
        self.running = 0;
        self.take_calls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_queue(slots: usize) -> CallQueue<u32> {
        let mut q = CallQueue::new(slots, None);
        assert_eq!(q.running(Vec::new()).0, 0);
        q
    }

    #[test]
    fn calls_wait_until_the_actor_runs() {
        let mut q = CallQueue::new(1, None);
        assert_eq!(q.push(1), Push::Queued { slot: None });
        assert_eq!(q.push(2), Push::Queued { slot: None });
        let (slots, g) = q.running(Vec::new());
        assert_eq!(slots, 1, "one slot starts for the waiting calls");
        assert_eq!(q.take(g), Take::Run(1));
        assert_eq!(q.take(g), Take::Run(2));
        assert_eq!(q.take(g), Take::Stop);
        assert_eq!(
            q.push(3),
            Push::Queued { slot: Some(g) },
            "the slot ended, so a new one starts"
        );
    }

    #[test]
    fn one_slot_at_a_time_by_default() {
        let mut q = running_queue(1);
        let g = q.generation();
        assert_eq!(q.push(1), Push::Queued { slot: Some(g) });
        assert_eq!(q.push(2), Push::Queued { slot: None });
        assert_eq!(q.take(g), Take::Run(1));
        q.done(g);
        assert_eq!(q.take(g), Take::Run(2));
    }

    #[test]
    fn concurrency_opens_more_slots() {
        let mut q = running_queue(3);
        let starts: Vec<_> = (0..5).map(|i| q.push(i)).collect();
        let started = starts
            .iter()
            .filter(|p| matches!(p, Push::Queued { slot: Some(_) }))
            .count();
        assert_eq!(started, 3);
    }

    #[test]
    fn back_pressure_counts_queued_and_running_calls() {
        let mut q = CallQueue::new(1, Some(2));
        q.running(Vec::new());
        assert!(matches!(q.push(1), Push::Queued { .. }));
        let g = q.generation();
        assert_eq!(q.take(g), Take::Run(1));
        assert!(matches!(q.push(2), Push::Queued { .. }));
        assert_eq!(q.push(3), Push::Full { limit: 2 });
        q.done(g);
        assert!(
            matches!(q.push(3), Push::Queued { .. }),
            "room again once a call ended"
        );
    }

    #[test]
    fn a_crash_hands_back_queued_calls_and_retires_old_slots() {
        let mut q = running_queue(1);
        for i in 1..=3 {
            q.push(i);
        }
        let old = q.generation();
        assert_eq!(q.take(old), Take::Run(1));
        let in_flight = q.crash();
        assert_eq!(in_flight, vec![2, 3]);
        assert_eq!(
            q.push(4),
            Push::Queued { slot: None },
            "new calls wait for the restart"
        );
        assert_eq!(q.take(old), Take::Stop, "the old slot stops");
        q.done(old); // ignored
        let (slots, g) = q.running(vec![2]);
        assert_eq!(slots, 1);
        assert_ne!(g, old);
        assert_eq!(q.take(g), Take::Run(2), "retried calls go first");
        assert_eq!(q.take(g), Take::Run(4));
        assert_eq!(q.pending(), 2);
    }

    #[test]
    fn dead_actors_refuse_calls() {
        let mut q = running_queue(1);
        q.push(1);
        q.push(2);
        assert_eq!(q.die("boom".into()), vec![1, 2]);
        assert_eq!(q.push(3), Push::Dead("boom".into()));
        assert_eq!(q.take(q.generation()), Take::Stop);
    }

    #[test]
    fn terminate_runs_the_calls_before_it_and_fails_those_after() {
        let mut q = running_queue(1);
        q.push(1);
        q.push_terminate();
        q.push(2);
        let g = q.generation();
        assert_eq!(q.take(g), Take::Run(1));
        assert_eq!(q.take(g), Take::Terminate(vec![2]));
        assert!(matches!(q.phase(), Phase::Dead(_)));
        assert!(matches!(q.push(3), Push::Dead(_)));
    }

    #[test]
    fn a_terminate_survives_a_restart() {
        let mut q = running_queue(1);
        q.push(1);
        q.push_terminate();
        let in_flight = q.crash();
        assert_eq!(in_flight, vec![1]);
        q.running(in_flight);
        let g = q.generation();
        assert_eq!(q.take(g), Take::Run(1));
        assert_eq!(q.take(g), Take::Terminate(vec![]));
    }
}
