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

use std::time::Instant;

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
        let churn = soak::churn(&mut cluster, churn_rounds, replace);
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
            "  resident memory: {:.1} MB at baseline, {:.1} MB after",
            churn.rss_baseline as f64 / 1e6,
            churn.rss_after as f64 / 1e6
        );
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
