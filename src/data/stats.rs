//! Per-operator statistics of a dataset's last execution (`Dataset::stats()`), and the
//! progress lines, one per operator, shown while it runs on a terminal.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one operator did.
#[derive(Clone, Debug, Default)]
pub struct OperatorStats {
    /// Its name (`read_parquet->filter((x > 0.5))`: fused operators are joined by `->`).
    pub name: String,
    /// Tasks (or actor calls) started.
    pub tasks: u64,
    /// Blocks it produced.
    pub blocks: u64,
    /// Rows it produced.
    pub rows: u64,
    /// Bytes of the blocks it produced.
    pub bytes: u64,
    /// From its first task's start to its last block.
    pub wall: Duration,
}

/// Every operator of an execution, in the order they were built.
#[derive(Clone, Debug, Default)]
pub struct DatasetStats {
    /// The operators.
    pub operators: Vec<OperatorStats>,
    /// The whole execution.
    pub total: Duration,
    /// Blocks that failed and were left out (see `Dataset::max_errored_blocks`).
    pub errored_blocks: Vec<super::DataError>,
}

impl std::fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, op) in self.operators.iter().enumerate() {
            let secs = op.wall.as_secs_f64();
            writeln!(
                f,
                "Operator {i} {}: {} tasks executed, {} blocks produced in {:.3}s",
                op.name, op.tasks, op.blocks, secs
            )?;
            writeln!(
                f,
                "* Output rows: {} total, {:.0} per block",
                op.rows,
                op.rows as f64 / op.blocks.max(1) as f64
            )?;
            writeln!(
                f,
                "* Output size: {:.1} MiB total, {:.1} MiB per block",
                op.bytes as f64 / (1 << 20) as f64,
                op.bytes as f64 / op.blocks.max(1) as f64 / (1 << 20) as f64
            )?;
            writeln!(
                f,
                "* Throughput: {:.0} rows/s",
                op.rows as f64 / secs.max(1e-9)
            )?;
        }
        write!(f, "Dataset total: {:.3}s", self.total.as_secs_f64())
    }
}

struct Record {
    stats: OperatorStats,
    first: Option<Instant>,
}

/// A progress line per operator: blocks done of tasks started, rows, rows per second.
pub(crate) fn progress_lines(ops: &[OperatorStats]) -> Vec<String> {
    ops.iter()
        .map(|s| {
            format!(
                "{}: {}/{} blocks, {} rows, {:.0} rows/s",
                s.name,
                s.blocks,
                s.tasks.max(s.blocks),
                s.rows,
                s.rows as f64 / s.wall.as_secs_f64().max(1e-9)
            )
        })
        .collect()
}

/// The progress display on a terminal: when it was last drawn, and how many lines.
struct Display {
    last: Instant,
    lines: usize,
}

/// The stats of one execution, filled in as it runs.
#[derive(Clone)]
pub(crate) struct Stats {
    ops: Arc<Mutex<Vec<Arc<Mutex<Record>>>>>,
    errors: Arc<Mutex<Vec<super::DataError>>>,
    start: Instant,
    /// Drawn on standard error when it is a terminal.
    progress: Option<Arc<Mutex<Display>>>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            ops: Arc::new(Mutex::new(Vec::new())),
            errors: Arc::new(Mutex::new(Vec::new())),
            start: Instant::now(),
            progress: std::io::stderr().is_terminal().then(|| {
                Arc::new(Mutex::new(Display {
                    last: Instant::now(),
                    lines: 0,
                }))
            }),
        }
    }

    /// Redraws the progress lines, at most every 100 ms unless `now` (and only on a
    /// terminal).
    fn draw(&self, now: bool) {
        let Some(display) = &self.progress else {
            return;
        };
        let mut d = display.lock().unwrap_or_else(|e| e.into_inner());
        if !now && d.last.elapsed() < Duration::from_millis(100) {
            return;
        }
        d.last = Instant::now();
        let lines = progress_lines(&self.snapshot().operators);
        let mut out = String::new();
        if d.lines > 0 {
            // Back to the first line drawn.
            out.push_str(&format!("\x1b[{}F", d.lines));
        }
        for line in &lines {
            out.push_str("\r\x1b[K");
            out.push_str(line);
            out.push('\n');
        }
        d.lines = lines.len();
        let _ = std::io::stderr().write_all(out.as_bytes());
    }

    /// A new operator's counters.
    pub fn operator(&self, name: &str) -> OpStats {
        let record = Arc::new(Mutex::new(Record {
            stats: OperatorStats {
                name: name.to_string(),
                ..Default::default()
            },
            first: None,
        }));
        self.ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record.clone());
        OpStats {
            record,
            all: self.clone(),
        }
    }

    /// Where the blocks left out are listed.
    pub fn errors(&self) -> Arc<Mutex<Vec<super::DataError>>> {
        self.errors.clone()
    }

    /// What has been counted so far.
    pub fn snapshot(&self) -> DatasetStats {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        DatasetStats {
            operators: ops
                .iter()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).stats.clone())
                .collect(),
            total: self.start.elapsed(),
            errored_blocks: self
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Draws the progress lines a last time, with the final counts.
    pub fn finish(&self) {
        self.draw(true);
    }
}

/// One operator's counters.
#[derive(Clone)]
pub(crate) struct OpStats {
    record: Arc<Mutex<Record>>,
    /// The execution's stats, for the progress lines.
    all: Stats,
}

impl OpStats {
    pub fn name(&self) -> String {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats
            .name
            .clone()
    }

    pub fn started(&self) {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        r.first.get_or_insert_with(Instant::now);
        r.stats.tasks += 1;
    }

    pub fn finished(&self, rows: u64, bytes: u64) {
        let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
        r.stats.blocks += 1;
        r.stats.rows += rows;
        r.stats.bytes += bytes;
        if let Some(first) = r.first {
            r.stats.wall = first.elapsed();
        }
        drop(r);
        self.all.draw(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_per_operator() {
        let ops = vec![
            OperatorStats {
                name: "read_parquet->filter(x > 0.5)".into(),
                tasks: 8,
                blocks: 6,
                rows: 3_000_000,
                bytes: 1,
                wall: Duration::from_secs(2),
            },
            OperatorStats {
                name: "write_parquet".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            progress_lines(&ops),
            vec![
                "read_parquet->filter(x > 0.5): 6/8 blocks, 3000000 rows, 1500000 rows/s",
                "write_parquet: 0/0 blocks, 0 rows, 0 rows/s",
            ]
        );
    }
}
