//! An experiment's files, and reading them back to resume it.
//!
//! ```text
//! <storage>/<experiment>/
//!     tuner.json              what the experiment is (metric, mode, samples), written first
//!     experiment_state.json   the summary: every trial's status, config, last result; the best
//!     <experiment>_00000/
//!         params.json         the trial's config
//!         result.json         one JSON object per report
//!         progress.csv        the same, as CSV
//!         checkpoint_000012.bin   checkpoints (raw bytes), the latest and the best kept
//!     ended.jsonl             a line per trial that ended for good: how it ended
//! ```
//!
//! Every file but the summary is written once or appended to, so an experiment killed at any
//! moment leaves files it can be resumed from ([`load`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::experiment::{Experiment, Fresh, Mode, ReportedResult, Trial, TrialStatus, trial_name};
use super::session::{Checkpoint, Metrics};
use super::space::TrialConfig;

/// Which checkpoints a trial keeps on disk (Ray's `CheckpointConfig`). The latest is always
/// kept, so that a failed or resumed trial can go on from it.
#[derive(Debug, Clone, Default)]
pub struct CheckpointConfig {
    num_to_keep: Option<usize>,
    score_attribute: Option<(String, Mode)>,
}

impl CheckpointConfig {
    /// Keep every checkpoint.
    pub fn new() -> Self {
        CheckpointConfig::default()
    }

    /// Keep this many besides the latest: the best by the score attribute, or the most recent.
    pub fn num_to_keep(mut self, n: usize) -> Self {
        self.num_to_keep = Some(n);
        self
    }

    /// Rank checkpoints by this metric of the result they came with.
    pub fn score_attribute(mut self, metric: impl Into<String>, mode: Mode) -> Self {
        self.score_attribute = Some((metric.into(), mode));
        self
    }
}

/// What `tuner.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub name: String,
    pub trainable: String,
    pub metric: Option<String>,
    pub mode: Mode,
    pub num_samples: usize,
    pub seed: Option<u64>,
}

/// How a trial ended, as a line of `ended.jsonl` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Done {
    trial: usize,
    status: TrialStatus,
    error: Option<String>,
    stopped_early: bool,
    failures: u32,
    exploited: Vec<usize>,
}

/// Writes an experiment's files.
pub(crate) struct ResultFiles {
    dir: PathBuf,
    experiment: String,
    checkpoints: CheckpointConfig,
    /// Per trial: the CSV columns (its header), once written.
    csv_columns: BTreeMap<usize, Vec<String>>,
    /// Per trial: the checkpoints on disk, by iteration, with their scores.
    kept: BTreeMap<usize, Vec<(u64, Option<f64>)>>,
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn checkpoint_file(iteration: u64) -> String {
    format!("checkpoint_{iteration:06}.bin")
}

impl ResultFiles {
    /// Makes the experiment's directory and writes `tuner.json`.
    pub fn create(
        dir: PathBuf,
        meta: &Meta,
        checkpoints: CheckpointConfig,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let text = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("tuner.json"), text)?;
        Ok(ResultFiles {
            dir,
            experiment: meta.name.clone(),
            checkpoints,
            csv_columns: BTreeMap::new(),
            kept: BTreeMap::new(),
        })
    }

    /// Opens the files of an experiment being resumed (what is on disk is kept).
    pub fn reopen(
        dir: PathBuf,
        meta: &Meta,
        checkpoints: CheckpointConfig,
        trials: &[Trial],
    ) -> Self {
        let mut files = ResultFiles {
            dir,
            experiment: meta.name.clone(),
            checkpoints,
            csv_columns: BTreeMap::new(),
            kept: BTreeMap::new(),
        };
        for t in trials {
            let dir = files.trial_dir(t.id);
            if let Ok(text) = std::fs::read_to_string(dir.join("progress.csv"))
                && let Some(header) = text.lines().next()
            {
                files
                    .csv_columns
                    .insert(t.id, header.split(',').map(str::to_string).collect());
            }
            files.kept.insert(
                t.id,
                list_checkpoints(&dir)
                    .into_iter()
                    .map(|i| (i, None))
                    .collect(),
            );
        }
        files
    }

    fn trial_dir(&self, trial: usize) -> PathBuf {
        self.dir.join(trial_name(&self.experiment, trial))
    }

    /// A trial was added: its directory and `params.json`.
    pub fn add_trial(&mut self, trial: usize, config: &TrialConfig) -> std::io::Result<()> {
        let dir = self.trial_dir(trial);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("params.json"), config.as_json().to_string())
    }

    /// Appends results to their trials' files (each file opened once per call) and writes
    /// the checkpoints that came with them, dropping those no longer to be kept.
    pub fn append(&mut self, fresh: &[Fresh]) -> std::io::Result<()> {
        let mut by_trial: BTreeMap<usize, Vec<&Fresh>> = BTreeMap::new();
        for f in fresh {
            by_trial.entry(f.trial).or_default().push(f);
        }
        for (id, results) in by_trial {
            let name = trial_name(&self.experiment, id);
            let dir = self.dir.join(&name);
            let columns = self.csv_columns.entry(id).or_insert_with(|| {
                let mut c = vec!["training_iteration".to_string(), "time_total_s".to_string()];
                c.extend(results[0].result.metrics.keys().cloned());
                c
            });
            let (mut lines, mut rows) = (String::new(), String::new());
            for f in &results {
                let r = &f.result;
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
            for f in &results {
                if let Some(c) = &f.checkpoint {
                    self.save_checkpoint(id, &dir, c, &f.result)?;
                }
            }
        }
        Ok(())
    }

    fn save_checkpoint(
        &mut self,
        trial: usize,
        dir: &Path,
        checkpoint: &Checkpoint,
        result: &ReportedResult,
    ) -> std::io::Result<()> {
        let tmp = dir.join(".checkpoint.tmp");
        std::fs::write(&tmp, checkpoint.bytes())?;
        std::fs::rename(&tmp, dir.join(checkpoint_file(checkpoint.iteration())))?;
        let score = self
            .checkpoints
            .score_attribute
            .as_ref()
            .and_then(|(m, mode)| Some(mode.orient(result.get(m)?)));
        let kept = self.kept.entry(trial).or_default();
        kept.retain(|(i, _)| *i != checkpoint.iteration());
        kept.push((checkpoint.iteration(), score));
        let Some(n) = self.checkpoints.num_to_keep else {
            return Ok(());
        };
        // The latest stays; of the rest, the n best (or most recent) stay.
        let latest = checkpoint.iteration();
        let mut rest: Vec<(u64, Option<f64>)> =
            kept.iter().copied().filter(|(i, _)| *i != latest).collect();
        rest.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            _ => b.0.cmp(&a.0),
        });
        for (i, _) in rest.iter().skip(n) {
            let _ = std::fs::remove_file(dir.join(checkpoint_file(*i)));
        }
        let drop: Vec<u64> = rest.iter().skip(n).map(|r| r.0).collect();
        kept.retain(|(i, _)| !drop.contains(i));
        Ok(())
    }

    /// Writes a resumed trial's result files again with the results it keeps.
    pub fn rewrite_results(&mut self, trial: &Trial) -> std::io::Result<()> {
        let dir = self.trial_dir(trial.id);
        for file in ["result.json", "progress.csv"] {
            match std::fs::remove_file(dir.join(file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.csv_columns.remove(&trial.id);
        let fresh: Vec<Fresh> = trial
            .results
            .iter()
            .map(|r| Fresh {
                trial: trial.id,
                result: r.clone(),
                checkpoint: None,
            })
            .collect();
        self.append(&fresh)
    }

    /// A trial ended for good: a line of `ended.jsonl` (one file for the experiment, not
    /// one per trial: file creation is what costs most here).
    fn trial_done(&self, done: &Done) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(done).map_err(std::io::Error::other)?;
        line.push(b'\n');
        append(&self.dir.join("ended.jsonl"))?.write_all(&line)
    }

    /// Writes the experiment's summary (see [`summary`]) to a temporary file and renames it,
    /// so that a reader never sees half of it.
    fn write_summary(&self, doc: &Json) -> std::io::Result<()> {
        let tmp = self.dir.join(".experiment_state.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, self.dir.join("experiment_state.json"))
    }

    /// Hands the files to a thread of their own: the tuner's loop goes on while they are
    /// written.
    pub fn into_writer(self) -> Writer {
        let (dir, experiment) = (self.dir.clone(), self.experiment.clone());
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let mut files = self;
        let thread = std::thread::Builder::new()
            .name("mobula-tune-files".into())
            .spawn(move || {
                // The first error is kept (and returned at the end); later jobs still run.
                let mut first: std::io::Result<()> = Ok(());
                for job in rx {
                    let done = match job {
                        Job::AddTrial(id, config) => files.add_trial(id, &config),
                        Job::Append(fresh) => files.append(&fresh),
                        Job::Done(done) => files.trial_done(&done),
                        Job::Summary(doc) => files.write_summary(&doc),
                    };
                    if first.is_ok() {
                        first = done;
                    }
                }
                first
            })
            .ok();
        Writer {
            tx: Some(tx),
            thread,
            dir,
            experiment,
        }
    }
}

/// What the files' thread is asked to write.
enum Job {
    AddTrial(usize, TrialConfig),
    Append(Vec<Fresh>),
    Done(Done),
    Summary(Json),
}

/// The experiment's files, written on their own thread, in the order asked.
pub(crate) struct Writer {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    dir: PathBuf,
    experiment: String,
}

impl Writer {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn trial_dir(&self, trial: usize) -> PathBuf {
        self.dir.join(trial_name(&self.experiment, trial))
    }

    fn send(&self, job: Job) -> std::io::Result<()> {
        match &self.tx {
            Some(tx) if tx.send(job).is_ok() => Ok(()),
            _ => Err(std::io::Error::other(
                "the thread writing the results stopped",
            )),
        }
    }

    /// A trial was added.
    pub fn add_trial(&self, id: usize, config: &TrialConfig) -> std::io::Result<()> {
        self.send(Job::AddTrial(id, config.clone()))
    }

    /// New results.
    pub fn append(&self, fresh: Vec<Fresh>) -> std::io::Result<()> {
        self.send(Job::Append(fresh))
    }

    /// A trial ended for good.
    pub fn trial_done(&self, trial: &Trial) -> std::io::Result<()> {
        let done = Done {
            trial: trial.id,
            status: trial.status,
            error: trial.error.clone(),
            stopped_early: trial.stopped_early,
            failures: trial.failures,
            exploited: trial.exploited.clone(),
        };
        self.send(Job::Done(done))
    }

    /// The summary, as it stands.
    pub fn summary(&self, e: &Experiment) -> std::io::Result<()> {
        self.send(Job::Summary(summary(e)))
    }

    /// Waits until everything asked is written; the first error, if any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "the thread writing the results panicked",
                ))
            }),
            None => Err(std::io::Error::other(
                "the thread writing the results did not start",
            )),
        }
    }
}

/// The experiment's summary, `experiment_state.json`: every trial's config, status,
/// iterations, last result, failures; the best trial.
fn summary(e: &Experiment) -> Json {
    let trials: Vec<Json> = e
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
    json!({
        "name": e.name,
        "metric": e.metric,
        "mode": format!("{:?}", e.mode).to_lowercase(),
        "scheduler": e.scheduler.name(),
        "trials": trials,
        "best": best,
    })
}

/// The iterations of the checkpoints in a trial's directory, in order.
fn list_checkpoints(dir: &Path) -> Vec<u64> {
    let mut its: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("checkpoint_")?
                .strip_suffix(".bin")?
                .parse()
                .ok()
        })
        .collect();
    its.sort_unstable();
    its
}

/// Why an experiment's files could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot resume the experiment in {path}: {reason}")]
pub struct RestoreError {
    /// The directory.
    pub path: PathBuf,
    /// What is wrong there.
    pub reason: String,
}

/// An experiment read back from its files.
pub(crate) struct Saved {
    pub meta: Meta,
    pub trials: Vec<Trial>,
}

/// Reads an experiment's files: every trial with its config, results and latest checkpoint;
/// a trial not in `ended.jsonl` was cut short and is pending again.
pub(crate) fn load(dir: &Path) -> Result<Saved, RestoreError> {
    let fail = |reason: String| RestoreError {
        path: dir.to_path_buf(),
        reason,
    };
    let meta_text = std::fs::read_to_string(dir.join("tuner.json")).map_err(|e| {
        fail(format!(
            "no tuner.json ({e}): not an experiment's directory"
        ))
    })?;
    let meta: Meta =
        serde_json::from_str(&meta_text).map_err(|e| fail(format!("tuner.json: {e}")))?;
    let prefix = format!("{}_", meta.name);
    let mut ids: Vec<usize> = std::fs::read_dir(dir)
        .map_err(|e| fail(e.to_string()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix(&prefix)?;
            (id.len() == 5).then(|| id.parse().ok()).flatten()
        })
        .collect();
    ids.sort_unstable();
    // How trials ended; a line cut short by the kill is the last one, and dropped.
    let ended: BTreeMap<usize, Done> = std::fs::read_to_string(dir.join("ended.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Done>(l).ok())
        .map(|d| (d.trial, d))
        .collect();
    let mut trials = Vec::new();
    for (expected, id) in ids.into_iter().enumerate() {
        if id != expected {
            return Err(fail(format!("trial {expected} is missing (found {id})")));
        }
        let tdir = dir.join(trial_name(&meta.name, id));
        let read = |file: &str| std::fs::read_to_string(tdir.join(file));
        let config: Json = read("params.json")
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| fail(format!("trial {id} has no readable params.json")))?;
        let mut results = Vec::new();
        for line in read("result.json").unwrap_or_default().lines() {
            // A line cut short by the kill is the last one; it is dropped.
            let Ok(Json::Object(map)) = serde_json::from_str::<Json>(line) else {
                continue;
            };
            let number = |k: &str| map.get(k).and_then(Json::as_f64);
            let metrics: Metrics = map
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "trial" | "training_iteration" | "time_total_s")
                })
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect();
            results.push(ReportedResult {
                training_iteration: number("training_iteration").unwrap_or(0.0) as u64,
                time_total_s: number("time_total_s").unwrap_or(0.0),
                metrics,
            });
        }
        let checkpoint = list_checkpoints(&tdir).last().and_then(|&i| {
            let bytes = std::fs::read(tdir.join(checkpoint_file(i))).ok()?;
            Some(Checkpoint::from_bytes(bytes).at(i))
        });
        let done: Option<Done> = ended.get(&id).cloned();
        let iteration = checkpoint.as_ref().map_or(0, Checkpoint::iteration);
        trials.push(Trial {
            id,
            name: trial_name(&meta.name, id),
            config: TrialConfig::from_json(config),
            status: done.as_ref().map_or(TrialStatus::Pending, |d| d.status),
            results,
            stopped_early: done.as_ref().is_some_and(|d| d.stopped_early),
            failures: done.as_ref().map_or(0, |d| d.failures),
            error: done.as_ref().and_then(|d| d.error.clone()),
            checkpoint,
            attempt: 0,
            iteration,
            exploited: done.map(|d| d.exploited).unwrap_or_default(),
            exploit: None,
            pausing: None,
        });
    }
    Ok(Saved { meta, trials })
}
