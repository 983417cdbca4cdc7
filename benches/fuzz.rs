//! The long fuzz run: the properties of tests/fuzz.rs (no panic, no allocation past what the
//! input justifies, messages round-trip) over many more random inputs, from a seed, printing
//! how many inputs each property tried.
//!
//! `cargo bench --bench fuzz` (1,000,000 inputs per property), `-- --inputs N`, `-- --seed S`,
//! `-- --quick` (20,000, for CI).

#[path = "../tests/common/fuzz.rs"]
mod fuzz;

use std::time::Instant;

use fuzz::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

struct Options {
    inputs: u64,
    seed: u64,
}

fn options() -> Options {
    let mut o = Options {
        inputs: 1_000_000,
        seed: 2026,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => o.inputs = 20_000,
            "--inputs" => {
                i += 1;
                o.inputs = args[i].parse().expect("--inputs N");
            }
            "--seed" => {
                i += 1;
                o.seed = args[i].parse().expect("--seed S");
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    o
}

/// Draws `n` inputs from `strategy` and checks each; on a failure, prints it and exits.
fn run<S: Strategy>(
    name: &str,
    strategy: S,
    n: u64,
    seed: u64,
    check: impl Fn(&S::Value) -> Result<(), String>,
) {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let start = Instant::now();
    let mut bytes = 0u64;
    for tried in 0..n {
        let value = strategy
            .new_tree(&mut runner)
            .expect("a strategy draws")
            .current();
        bytes += std::mem::size_of_val(&value) as u64;
        if let Err(why) = check(&value) {
            eprintln!("{name}: input {tried} (seed {seed}) failed: {why}");
            std::process::exit(1);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<48} {n:>10} inputs tried, none failed ({secs:.1} s, {:.0} inputs/s)",
        n as f64 / secs
    );
    let _ = bytes;
}

fn main() {
    let o = options();
    println!("fuzz: seed {}, {} inputs per property", o.seed, o.inputs);
    run(
        "arbitrary bytes as frames",
        arbitrary_bytes(),
        o.inputs,
        o.seed,
        |b| check_frame(b),
    );
    run(
        "arbitrary bytes as values",
        arbitrary_bytes(),
        o.inputs,
        o.seed + 1,
        |b| check_value(b),
    );
    run(
        "mutated frames",
        mutated_frame(),
        o.inputs,
        o.seed + 2,
        |b| check_frame(b),
    );
    run(
        "mutated values",
        mutated_value(),
        o.inputs,
        o.seed + 3,
        |b| check_value(b),
    );
    run(
        "messages round-trip",
        message(),
        o.inputs,
        o.seed + 4,
        check_round_trip,
    );
}
