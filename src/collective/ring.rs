//! The ring schedule (pure): how a buffer is cut into one chunk per member, and which chunk
//! each member sends and receives at each step. Reduce-scatter and allgather are the same
//! walk around the ring, `n - 1` steps each: at step `s`, rank `r` sends chunk
//! `r + k - s` to rank `r + 1` and receives chunk `r + k - s - 1` from rank `r - 1` (mod
//! `n`). After a reduce-scatter with offset `k`, rank `r` holds chunk `r + k + 1` fully
//! reduced; an allgather with offset `k` starts from each rank holding chunk `r + k`. So
//! allreduce is reduce-scatter with `k = 0` then allgather with `k = 1`; each member sends
//! and receives `2 (n - 1) / n` of the buffer, the least any algorithm can.

use std::ops::Range;

/// The elements of chunk `i` when `len` elements are cut into `n` chunks as even as can
/// be (the first `len % n` chunks one longer).
pub fn chunk(len: usize, n: usize, i: usize) -> Range<usize> {
    let (base, extra) = (len / n, len % n);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// At step `step` of a walk with offset `k`: the chunk rank `rank` of `n` sends to the next
/// rank, and the chunk it receives from the previous one.
pub fn step(n: usize, rank: usize, k: usize, step: usize) -> (usize, usize) {
    let send = (rank + k + 2 * n - step) % n;
    let recv = (rank + k + 2 * n - step - 1) % n;
    (send, recv)
}

/// The next rank around the ring.
pub fn next(n: usize, rank: usize) -> usize {
    (rank + 1) % n
}

/// The previous rank around the ring.
pub fn prev(n: usize, rank: usize) -> usize {
    (rank + n - 1) % n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_buffer_once() {
        for len in [0, 1, 2, 7, 100, 101] {
            for n in 1..6 {
                let mut next = 0;
                for i in 0..n {
                    let c = chunk(len, n, i);
                    assert_eq!(c.start, next);
                    next = c.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    /// Runs allreduce (sum) by the schedule on integer vectors, every member in lock step,
    /// and checks every member ends with the sum.
    #[test]
    fn the_schedule_sums_for_every_size() {
        for n in 1..7 {
            for len in [0, 1, 5, 13, 64] {
                let inputs: Vec<Vec<i64>> = (0..n)
                    .map(|r| (0..len).map(|i| (r * 1000 + i) as i64).collect())
                    .collect();
                let want: Vec<i64> = (0..len)
                    .map(|i| inputs.iter().map(|v| v[i]).sum())
                    .collect();
                let mut bufs = inputs.clone();
                for (k, reduce) in [(0, true), (1, false)] {
                    for s in 0..n - 1 {
                        let sent: Vec<Vec<i64>> = (0..n)
                            .map(|r| bufs[r][chunk(len, n, step(n, r, k, s).0)].to_vec())
                            .collect();
                        for (r, buf) in bufs.iter_mut().enumerate() {
                            let (_, recv) = step(n, r, k, s);
                            let from = prev(n, r);
                            assert_eq!(step(n, from, k, s).0, recv, "sender and receiver agree");
                            let range = chunk(len, n, recv);
                            for (x, y) in buf[range].iter_mut().zip(&sent[from]) {
                                *x = if reduce { *x + y } else { *y };
                            }
                        }
                    }
                }
                for b in &bufs {
                    assert_eq!(b, &want, "n = {n}, len = {len}");
                }
            }
        }
    }
}
