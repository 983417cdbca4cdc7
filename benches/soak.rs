//! The long churn and chaos soaks (tests/common/soak.rs says what each does; tests/soak.rs
//! runs them short). Prints what each did and saw: tables before and after, resident memory,
//! faults injected, results checked, errors by kind, peak resident memory.
//!
//! `cargo bench --bench soak` (churn 40 rounds, chaos 30), `-- --rounds N` (each),
//! `-- --quick` (4 and 3, for CI).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/soak.rs"]
mod soak;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes allocated and not yet freed: the live heap, which
/// resident memory follows only loosely (the allocator keeps freed memory for reuse).
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call goes to the system allocator unchanged; counting allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mb() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: Option<u64> = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let (churn_rounds, chaos_rounds) = match (rounds, quick) {
        (Some(n), _) => (n, n),
        (None, true) => (4, 3),
        (None, false) => (40, 30),
    };
    let _turn = common::turn();

    // With the same workers throughout, then with a worker replaced every other round (each
    // new worker is a new in-process node: its threads and store come on top).
    for replace in [false, true] {
        let started = Instant::now();
        let mut cluster = soak::start(2);
        let live_before = live_mb();
        let churn = soak::churn(&mut cluster, churn_rounds, replace);
        let live_after = live_mb();
        drop(cluster);
        println!(
            "churn: {} rounds, {} workers replaced, {:.1} s",
            churn.rounds,
            churn.nodes_replaced,
            started.elapsed().as_secs_f64()
        );
        println!("  tables at baseline: {:?}", churn.baseline);
        println!("  tables after:       {:?}", churn.after);
        println!(
            "  links or task channels on the widest node: {}",
            churn.widest_after
        );
        println!(
            "  resident memory: {:.1} MB at baseline, {:.1} MB after; threads: {} at baseline, {} after",
            churn.rss_baseline as f64 / 1e6,
            churn.rss_after as f64 / 1e6,
            churn.threads_baseline,
            churn.threads_after
        );
        println!("  live heap: {live_before:.1} MB before the rounds, {live_after:.1} MB after");
    }

    let started = Instant::now();
    let mut cluster = soak::start(3);
    let chaos = soak::chaos(&mut cluster, chaos_rounds);
    drop(cluster);
    println!(
        "chaos: {} rounds, {} workers killed, {} results checked, {:.1} s",
        chaos.rounds,
        chaos.faults,
        chaos.checked,
        started.elapsed().as_secs_f64()
    );
    println!("  errors by kind: {:?}", chaos.errors);
    for (kind, example) in &chaos.examples {
        println!("  e.g. {kind}: {example}");
    }
    println!(
        "  peak resident memory: {:.1} MB",
        chaos.peak_rss as f64 / 1e6
    );
}
