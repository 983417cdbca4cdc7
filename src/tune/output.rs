//! What an experiment shows and leaves behind: the status table while it runs, per-trial
//! result files (JSON lines and CSV), the experiment's summary. Formatting is pure; the
//! writers take a directory or a `Write`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::experiment::{Experiment, ReportedResult, Trial, trial_name};
use super::result::TrialResult;
use super::space::TrialConfig;

/// Columns of the parameters: every leaf of the first trial's config, at most 6.
fn param_keys(trials: &[&Trial]) -> Vec<String> {
    let mut keys = trials.first().map(|t| t.config.keys()).unwrap_or_default();
    keys.truncate(6);
    keys
}

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.5}"),
            _ => n.to_string(),
        },
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header);
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

fn trial_rows(trials: &[&Trial], metric: Option<&str>) -> (Vec<String>, Vec<Vec<String>>) {
    let keys = param_keys(trials);
    let mut header = vec!["trial".to_string(), "status".to_string()];
    header.extend(keys.iter().cloned());
    header.push("iter".into());
    header.push(metric.unwrap_or("metric").to_string());
    let rows = trials
        .iter()
        .map(|t| {
            let mut row = vec![t.name.clone(), t.status.to_string()];
            row.extend(keys.iter().map(|k| cell(t.config.lookup(k))));
            let last = t.last_result();
            row.push(last.map_or(0, |r| r.training_iteration).to_string());
            row.push(
                metric
                    .and_then(|m| last?.get(m))
                    .map_or(String::new(), |x| format!("{x:.5}")),
            );
            row
        })
        .collect();
    (header, rows)
}

/// The status of a running experiment: counts by status, the best so far, and a row per
/// trial (the first `max_rows`).
pub(crate) fn status(e: &Experiment, elapsed: f64, max_rows: usize) -> String {
    let mut out = String::new();
    let counts: Vec<String> = e
        .counts()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "== {} | {:.1} s | {} trials: {} | scheduler {}",
        e.name,
        elapsed,
        e.trials.len(),
        counts.join(", "),
        e.scheduler.name()
    );
    if let (Some((best, value)), Some(metric)) = (e.best(), e.metric.as_deref()) {
        let _ = writeln!(
            out,
            "best so far: {} with {metric} = {value:.5}, config {}",
            best.name, best.config
        );
    }
    let trials: Vec<&Trial> = e.trials.iter().take(max_rows).collect();
    let (header, rows) = trial_rows(&trials, e.metric.as_deref());
    out.push_str(&render(&header, &rows));
    if e.trials.len() > max_rows {
        let _ = writeln!(out, "... and {} more", e.trials.len() - max_rows);
    }
    out
}

/// The final results as a table (for [`ResultGrid::table`](super::ResultGrid::table)).
pub(crate) fn results_table(trials: &[TrialResult]) -> String {
    let keys: Vec<String> = trials
        .first()
        .map(|t| {
            let mut k = t.config.keys();
            k.truncate(6);
            k
        })
        .unwrap_or_default();
    let metric_names: Vec<String> = trials
        .first()
        .map(|t| t.metrics().keys().take(4).cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["trial".to_string(), "status".to_string()];
    header.extend(keys.iter().cloned());
    header.push("iter".into());
    header.extend(metric_names.iter().cloned());
    let rows: Vec<Vec<String>> = trials
        .iter()
        .map(|t| {
            let mut row = vec![t.name.clone(), t.status.to_string()];
            row.extend(keys.iter().map(|k| cell(t.config.lookup(k))));
            row.push(t.iterations().to_string());
            let m = t.metrics();
            row.extend(
                metric_names
                    .iter()
                    .map(|k| m.get(k).map_or(String::new(), |x| format!("{x:.5}"))),
            );
            row
        })
        .collect();
    render(&header, &rows)
}

/// Writes an experiment's files under its directory: for each trial `params.json`,
/// `result.json` (one JSON object per line) and `progress.csv`.
pub(crate) struct ResultFiles {
    dir: PathBuf,
    experiment: String,
    /// Per trial: the CSV columns written so far (its header).
    csv_columns: Vec<Option<Vec<String>>>,
}

impl ResultFiles {
    pub fn create(dir: PathBuf, experiment: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(ResultFiles {
            dir,
            experiment: experiment.to_string(),
            csv_columns: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn trial_dir(&self, trial: usize) -> PathBuf {
        self.dir.join(trial_name(&self.experiment, trial))
    }

    /// A trial was added: its directory and `params.json`.
    pub fn add_trial(&mut self, trial: usize, config: &TrialConfig) -> std::io::Result<()> {
        let dir = self.trial_dir(trial);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("params.json"), config.as_json().to_string())?;
        if self.csv_columns.len() <= trial {
            self.csv_columns.resize(trial + 1, None);
        }
        Ok(())
    }

    /// Appends results to their trials' files (each file opened once per call).
    pub fn append(&mut self, fresh: &[(usize, ReportedResult)]) -> std::io::Result<()> {
        let mut by_trial: std::collections::BTreeMap<usize, Vec<&ReportedResult>> =
            Default::default();
        for (id, r) in fresh {
            by_trial.entry(*id).or_default().push(r);
        }
        for (id, results) in by_trial {
            let name = trial_name(&self.experiment, id);
            let dir = self.dir.join(&name);
            if self.csv_columns.len() <= id {
                self.csv_columns.resize(id + 1, None);
            }
            let columns = self.csv_columns[id].get_or_insert_with(|| {
                let mut c = vec!["training_iteration".to_string(), "time_total_s".to_string()];
                c.extend(results[0].metrics.keys().cloned());
                c
            });
            let mut lines = String::new();
            let mut rows = String::new();
            for r in results {
                let mut line = json!({
                    "trial": name,
                    "training_iteration": r.training_iteration,
                    "time_total_s": r.time_total_s,
                });
                for (k, v) in &r.metrics {
                    line[k] = json!(v);
                }
                let _ = writeln!(lines, "{line}");
                let values: Vec<String> = columns
                    .iter()
                    .map(|c| r.get(c).map_or(String::new(), |x| x.to_string()))
                    .collect();
                let _ = writeln!(rows, "{}", values.join(","));
            }
            append(&dir.join("result.json"))?.write_all(lines.as_bytes())?;
            let mut csv = append(&dir.join("progress.csv"))?;
            if csv.metadata()?.len() == 0 {
                writeln!(csv, "{}", columns.join(","))?;
            }
            csv.write_all(rows.as_bytes())?;
        }
        Ok(())
    }

    /// The experiment's summary, `experiment_state.json`: every trial's config, status,
    /// iterations, last result, failures; the best trial. Written to a temporary file and
    /// renamed, so a reader never sees half of it.
    pub fn summary(&self, e: &Experiment) -> std::io::Result<()> {
        let trials: Vec<serde_json::Value> = e
            .trials
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "status": t.status.to_string(),
                    "config": t.config.as_json(),
                    "iterations": t.last_result().map_or(0, |r| r.training_iteration),
                    "last_result": t.last_result().map(|r| &r.metrics),
                    "stopped_early": t.stopped_early,
                    "failures": t.failures,
                    "error": t.error,
                })
            })
            .collect();
        let best = e.best().map(|(t, v)| json!({"trial": t.name, "value": v}));
        let doc = json!({
            "name": e.name,
            "metric": e.metric,
            "mode": format!("{:?}", e.mode).to_lowercase(),
            "scheduler": e.scheduler.name(),
            "trials": trials,
            "best": best,
        });
        let tmp = self.dir.join(".experiment_state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc).unwrap_or_default())?;
        std::fs::rename(tmp, self.dir.join("experiment_state.json"))
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
