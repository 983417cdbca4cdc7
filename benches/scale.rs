//! Scale tests: how far one node goes, with time and peak memory for each case.
//!
//!     cargo bench --bench scale                    # every case
//!     cargo bench --bench scale -- --filter actors # cases whose name contains "actors"
//!
//! Cases: one million no-op tasks submitted and gathered (Ray's single-node envelope is 1M
//! queued tasks); 10,000 actors created and called once, with memory per actor; one get_all
//! of 10,000 refs; one task with 10,000 ref arguments; a 4 GiB object put, read, spilled to
//! disk and restored. Peak RSS is reset before each case (Linux `clear_refs`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mobula::prelude::*;

#[mobula::remote]
fn noop() -> u8 {
    0
}

#[mobula::remote]
fn sum_all(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// Reads a large object in place: a checksum over a sample of its bytes plus its length.
#[mobula::remote]
fn checksum(data: &[u8]) -> u64 {
    data.iter().step_by(4096).map(|b| *b as u64).sum::<u64>() + data.len() as u64
}

#[mobula::actor]
struct Counter {
    value: u64,
}

#[mobula::actor]
impl Counter {
    fn new() -> Self {
        Counter { value: 0 }
    }

    fn increment(&mut self) -> u64 {
        self.value += 1;
        self.value
    }
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct Report {
    filter: Option<String>,
}

impl Report {
    fn run(&self, name: &str, f: impl FnOnce() -> String) {
        if self.filter.as_deref().is_some_and(|w| !name.contains(w)) {
            return;
        }
        reset_peak();
        let t = Instant::now();
        let extra = f();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name}: {secs:.3} s, peak RSS {:.0} MB{extra}",
            mb(status_kb("VmHWM:"))
        );
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--filter" => filter = args.next(),
            "--bench" => {}
            other if !other.starts_with("--") => filter = Some(other.to_string()),
            _ => {}
        }
    }
    let report = Report { filter };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    {
        let _mobula = mobula::init(Config::default().num_cpus(cpus as f64))?;
        report.run("1M no-op tasks submitted and gathered", || {
            let refs: Vec<_> = (0..1_000_000).map(|_| noop.remote()).collect();
            let values = mobula::get_all(&refs).unwrap();
            assert_eq!(values.len(), 1_000_000);
            String::new()
        });

        report.run("10,000 actors created and called once", || {
            let before = status_kb("VmRSS:");
            let actors: Vec<_> = (0..10_000).map(|_| Counter::remote().unwrap()).collect();
            let refs: Vec<_> = actors.iter().map(|a| a.increment()).collect();
            assert_eq!(mobula::get_all(&refs).unwrap(), vec![1; 10_000]);
            drop(refs);
            std::thread::sleep(Duration::from_millis(100));
            let per_actor = (status_kb("VmRSS:").saturating_sub(before)) as f64 / 10_000.0;
            drop(actors);
            format!(", {per_actor:.2} KB per idle actor")
        });

        report.run("get_all of 10,000 refs", || {
            let refs: Vec<_> = (0..10_000u64).map(|i| mobula::put(i).unwrap()).collect();
            let t = Instant::now();
            let values = mobula::get_all(&refs).unwrap();
            assert_eq!(values.len(), 10_000);
            format!(" (the get_all alone {:.4} s)", t.elapsed().as_secs_f64())
        });

        report.run("one task with 10,000 ref arguments", || {
            let refs: Vec<_> = (0..10_000u64).map(|i| mobula::put(i).unwrap()).collect();
            let t = Instant::now();
            assert_eq!(
                sum_all.remote(mobula::gather(refs)).get().unwrap(),
                (0..10_000u64).sum::<u64>()
            );
            format!(" (the task alone {:.4} s)", t.elapsed().as_secs_f64())
        });
    }

    report.run("4 GiB object put, read, spilled and restored", || {
        let gib = 1usize << 30;
        let dir = std::env::temp_dir().join("mobula-scale-spill");
        let _mobula = mobula::init(
            Config::default()
                .num_cpus(cpus as f64)
                .object_store_memory(5 << 30)
                .spill_dir(&dir),
        )
        .unwrap();
        let mut data = vec![0u8; 4 * gib];
        data.iter_mut()
            .step_by(4096)
            .enumerate()
            .for_each(|(i, b)| *b = i as u8);
        let data = black_box(data);
        let t = Instant::now();
        let big = mobula::put(data).unwrap();
        let put = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let sum = checksum.remote(&big).get().unwrap();
        let read = t.elapsed().as_secs_f64();
        // A newer 2 GiB object pushes the store past its limit: the 4 GiB one, least recently
        // used, spills.
        let t = Instant::now();
        let filler = mobula::put(black_box(vec![1u8; 2 * gib])).unwrap();
        while mobula::state::object_store().unwrap().spilled_objects == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let spill = t.elapsed().as_secs_f64();
        drop(filler);
        let t = Instant::now();
        assert_eq!(checksum.remote(&big).get().unwrap(), sum, "restored intact");
        let restore = t.elapsed().as_secs_f64();
        format!(
            "; put {put:.3} s, read {read:.3} s, spill {spill:.3} s, restore+read {restore:.3} s"
        )
    });
    Ok(())
}
