//! Batching (Ray Serve's `@serve.batch`), pure: requests and the time in, batches out.
//!
//! Callers send one request at a time; the batcher hands the method a batch when it holds
//! `max_batch_size` requests, or when its oldest request has waited `batch_wait_timeout`,
//! whichever comes first. Requests keep their order, and a batch's answers go back to its
//! requests by position.

use std::collections::VecDeque;

/// Gathers requests into batches.
#[derive(Debug)]
pub struct Batcher<T> {
    max_batch_size: usize,
    wait_ms: u64,
    /// Requests waiting, with the time each arrived (ms).
    waiting: VecDeque<(u64, T)>,
}

impl<T> Batcher<T> {
    /// A batcher of at most `max_batch_size` requests (at least 1), waiting at most
    /// `wait_ms` for a batch to fill.
    pub fn new(max_batch_size: usize, wait_ms: u64) -> Self {
        Batcher {
            max_batch_size: max_batch_size.max(1),
            wait_ms,
            waiting: VecDeque::new(),
        }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A request arrives at `now_ms`; returns a batch if it filled one.
    pub fn push(&mut self, now_ms: u64, request: T) -> Option<Vec<T>> {
        self.waiting.push_back((now_ms, request));
        (self.waiting.len() >= self.max_batch_size).then(|| self.take())
    }

    /// When the oldest request's wait ends (ms), if one waits: call [`due`](Self::due) then.
    pub fn deadline(&self) -> Option<u64> {
        self.waiting
            .front()
            .map(|(at, _)| at.saturating_add(self.wait_ms))
    }

    /// The batch whose wait ended by `now_ms`, if any.
    pub fn due(&mut self, now_ms: u64) -> Option<Vec<T>> {
        match self.deadline() {
            Some(deadline) if now_ms >= deadline => Some(self.take()),
            _ => None,
        }
    }

    /// The oldest requests, up to a batch.
    fn take(&mut self) -> Vec<T> {
        let n = self.waiting.len().min(self.max_batch_size);
        self.waiting.drain(..n).map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_goes_at_once_in_order() {
        let mut b = Batcher::new(3, 100);
        assert_eq!(b.push(0, 'a'), None);
        assert_eq!(b.push(1, 'b'), None);
        assert_eq!(b.push(2, 'c'), Some(vec!['a', 'b', 'c']));
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_lone_request_goes_when_its_wait_ends() {
        let mut b = Batcher::new(8, 50);
        assert_eq!(b.push(10, 1), None);
        assert_eq!(b.deadline(), Some(60));
        assert_eq!(b.due(59), None);
        assert_eq!(b.push(30, 2), None);
        assert_eq!(b.due(60), Some(vec![1, 2]));
        assert_eq!(b.due(1_000), None);
    }

    #[test]
    fn the_wait_is_the_oldest_requests() {
        let mut b = Batcher::new(2, 50);
        b.push(0, 1);
        assert_eq!(b.push(10, 2), Some(vec![1, 2]));
        b.push(20, 3);
        assert_eq!(b.deadline(), Some(70));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_batch_size_of_one_sends_each_request_alone() {
        let mut b = Batcher::new(0, 50);
        assert_eq!(b.push(0, 'x'), Some(vec!['x']));
    }
}
