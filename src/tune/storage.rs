//! An experiment's files, and reading them back to resume it.
//!
//! ```text
//! <storage>/<experiment>/
//!     tuner.json              what the experiment is (metric, mode, samples), written first
//!     params.jsonl            a line per trial: its id, name and config
//!     result.jsonl            a line per report of every trial, with the trial's id and name
//!     progress.csv            the same, as CSV, one row per report, `trial_id` first
//!     ended.jsonl             a line per trial that ended for good: how it ended
//!     experiment_state.json   the summary: every trial's status, config, last result; the best
//!     <experiment>_00000/     a trial's checkpoints (raw bytes), the latest and the best kept;
//!         checkpoint_000012.bin   made only for a trial that saves checkpoints
//! ```
//!
//! Results go to files of the experiment, not of each trial: on a disk file system, creating
//! thousands of small files costs more than everything else a large experiment does.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    pub(crate) num_to_keep: Option<usize>,
    pub(crate) score_attribute: Option<(String, Mode)>,
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
    /// A result's score by the score attribute, oriented so that larger is better.
    pub(crate) fn score(&self, metrics: &super::Metrics) -> Option<f64> {
        let (metric, mode) = self.score_attribute.as_ref()?;
        metrics.get(metric).map(|x| mode.orient(*x))
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
    /// The columns of `progress.csv` (its header), once written.
    csv_columns: Vec<String>,
    /// `result.jsonl` and `progress.csv`, once opened.
    open: Option<(File, File)>,
    /// Per trial: the checkpoints on disk, by iteration, with their scores.
    kept: BTreeMap<usize, Vec<(u64, Option<f64>)>>,
}

const PARAMS: &str = "params.jsonl";
const RESULTS: &str = "result.jsonl";
const PROGRESS: &str = "progress.csv";
/// The columns every row of `progress.csv` starts with.
const FIXED_COLUMNS: [&str; 3] = ["trial_id", "training_iteration", "time_total_s"];

/// A trial's line of `params.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct Params {
    trial_id: usize,
    trial: String,
    config: Json,
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn checkpoint_file(iteration: u64) -> String {
    format!("checkpoint_{iteration:06}.bin")
}

impl ResultFiles {
    fn new(dir: PathBuf, meta: &Meta, checkpoints: CheckpointConfig) -> Self {
        ResultFiles {
            dir,
            experiment: meta.name.clone(),
            checkpoints,
            csv_columns: Vec::new(),
            open: None,
            kept: BTreeMap::new(),
        }
    }

    /// Makes the experiment's directory and writes `tuner.json`.
    pub fn create(
        dir: PathBuf,
        meta: &Meta,
        checkpoints: CheckpointConfig,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let text = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("tuner.json"), text)?;
        Ok(ResultFiles::new(dir, meta, checkpoints))
    }

    /// Opens the files of an experiment being resumed: its checkpoints are kept, and its
    /// results are written again as `trials` keep them ([`rewrite_results`]).
    ///
    /// [`rewrite_results`]: ResultFiles::rewrite_results
    pub fn reopen(
        dir: PathBuf,
        meta: &Meta,
        checkpoints: CheckpointConfig,
        trials: &[Trial],
    ) -> std::io::Result<Self> {
        // A line the kill cut short would run into the next one appended.
        for file in [PARAMS, "ended.jsonl"] {
            drop_cut_line(&dir.join(file))?;
        }
        let mut files = ResultFiles::new(dir, meta, checkpoints);
        for t in trials {
            let kept = list_checkpoints(&files.trial_dir(t.id))
                .into_iter()
                .map(|i| (i, None))
                .collect();
            files.kept.insert(t.id, kept);
        }
        Ok(files)
    }

    fn trial_dir(&self, trial: usize) -> PathBuf {
        self.dir.join(trial_name(&self.experiment, trial))
    }

    /// A trial was added: its line of `params.jsonl`.
    pub fn add_trial(&mut self, trial: usize, config: &TrialConfig) -> std::io::Result<()> {
        let params = Params {
            trial_id: trial,
            trial: trial_name(&self.experiment, trial),
            config: config.as_json().clone(),
        };
        let mut line = serde_json::to_vec(&params).map_err(std::io::Error::other)?;
        line.push(b'\n');
        append(&self.dir.join(PARAMS))?.write_all(&line)
    }

    /// Appends results to `result.jsonl` and `progress.csv` (one write each per call) and
    /// writes the checkpoints that came with them, dropping those no longer to be kept.
    pub fn append(&mut self, fresh: &[Fresh]) -> std::io::Result<()> {
        if fresh.is_empty() {
            return Ok(());
        }
        self.widen_columns(fresh)?;
        let (mut lines, mut rows) = (String::new(), String::new());
        for f in fresh {
            let r = &f.result;
            let mut line = json!({
                "trial_id": f.trial,
                "trial": trial_name(&self.experiment, f.trial),
                "training_iteration": r.training_iteration,
                "time_total_s": r.time_total_s,
            });
            for (k, v) in &r.metrics {
                line[k] = json!(v);
            }
            let _ = writeln!(lines, "{line}");
            let mut values = vec![f.trial.to_string()];
            values.extend(
                self.csv_columns[1..]
                    .iter()
                    .map(|c| r.get(c).map_or(String::new(), |x| x.to_string())),
            );
            let _ = writeln!(rows, "{}", values.join(","));
        }
        let (results, progress) = self.files()?;
        results.write_all(lines.as_bytes())?;
        progress.write_all(rows.as_bytes())?;
        for f in fresh {
            if let Some(c) = &f.checkpoint {
                self.save_checkpoint(f.trial, c, &f.result)?;
            }
        }
        Ok(())
    }

    /// `result.jsonl` and `progress.csv`, opened for appending (and the CSV's header written)
    /// the first time.
    fn files(&mut self) -> std::io::Result<&mut (File, File)> {
        if self.open.is_none() {
            let results = append(&self.dir.join(RESULTS))?;
            let mut progress = append(&self.dir.join(PROGRESS))?;
            if progress.metadata()?.len() == 0 {
                writeln!(progress, "{}", self.csv_columns.join(","))?;
            }
            self.open = Some((results, progress));
        }
        Ok(self.open.as_mut().expect("just opened"))
    }

    /// Adds the metrics of `fresh` that `progress.csv` has no column for yet. Once the file
    /// has rows, that rewrites it with the wider header (the old rows get empty cells): rare,
    /// as trials of one trainable report the same metrics.
    fn widen_columns(&mut self, fresh: &[Fresh]) -> std::io::Result<()> {
        let before = self.csv_columns.len();
        if before == 0 {
            self.csv_columns = FIXED_COLUMNS.iter().map(|c| c.to_string()).collect();
        }
        for f in fresh {
            for k in f.result.metrics.keys() {
                if !self.csv_columns.contains(k) {
                    self.csv_columns.push(k.clone());
                }
            }
        }
        if before == 0 || self.csv_columns.len() == before {
            return Ok(());
        }
        self.open = None;
        let path = self.dir.join(PROGRESS);
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let pad = ",".repeat(self.csv_columns.len() - before);
        let mut text = self.csv_columns.join(",");
        text.push('\n');
        for row in old.lines().skip(1) {
            text.push_str(row);
            text.push_str(&pad);
            text.push('\n');
        }
        let tmp = self.dir.join(".progress.csv.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }

    fn save_checkpoint(
        &mut self,
        trial: usize,
        checkpoint: &Checkpoint,
        result: &ReportedResult,
    ) -> std::io::Result<()> {
        let dir = self.trial_dir(trial);
        std::fs::create_dir_all(&dir)?;
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
        let keep = super::retention::to_keep(kept, self.checkpoints.num_to_keep);
        kept.retain(|(i, _)| {
            let stays = keep.contains(i);
            if !stays {
                let _ = std::fs::remove_file(dir.join(checkpoint_file(*i)));
            }
            stays
        });
        Ok(())
    }

    /// Writes `result.jsonl` and `progress.csv` again with the results `trials` keep (a
    /// resumed trial goes on from its checkpoint, and drops what it reported after it).
    pub fn rewrite_results(&mut self, trials: &[Trial]) -> std::io::Result<()> {
        self.open = None;
        self.csv_columns.clear();
        for file in [RESULTS, PROGRESS] {
            match std::fs::remove_file(self.dir.join(file)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        let fresh: Vec<Fresh> = trials
            .iter()
            .flat_map(|t| {
                t.results.iter().map(|r| Fresh {
                    trial: t.id,
                    result: r.clone(),
                    checkpoint: None,
                })
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

/// Cuts an appended-to file back to its last complete line.
fn drop_cut_line(path: &Path) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(());
    }
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
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
    // A line cut short by the kill is the last one of its file, and dropped.
    let lines = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .collect::<Vec<Json>>()
    };
    let mut configs: BTreeMap<usize, Json> = BTreeMap::new();
    for line in lines(PARAMS) {
        if let Ok(p) = serde_json::from_value::<Params>(line) {
            configs.insert(p.trial_id, p.config);
        }
    }
    let mut results: BTreeMap<usize, Vec<ReportedResult>> = BTreeMap::new();
    for line in lines(RESULTS) {
        let Json::Object(map) = line else { continue };
        let number = |k: &str| map.get(k).and_then(Json::as_f64);
        let Some(id) = map.get("trial_id").and_then(Json::as_u64) else {
            continue;
        };
        let metrics: Metrics = map
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "trial" | "trial_id" | "training_iteration" | "time_total_s"
                )
            })
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        results
            .entry(id as usize)
            .or_default()
            .push(ReportedResult {
                training_iteration: number("training_iteration").unwrap_or(0.0) as u64,
                time_total_s: number("time_total_s").unwrap_or(0.0),
                metrics,
            });
    }
    // How trials ended.
    let ended: BTreeMap<usize, Done> = std::fs::read_to_string(dir.join("ended.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Done>(l).ok())
        .map(|d| (d.trial, d))
        .collect();
    let mut trials = Vec::new();
    for (expected, (id, config)) in configs.into_iter().enumerate() {
        if id != expected {
            return Err(fail(format!(
                "trial {expected} is missing from {PARAMS} (found {id})"
            )));
        }
        let tdir = dir.join(trial_name(&meta.name, id));
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
            results: results.remove(&id).unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            name: "exp".into(),
            trainable: "t".into(),
            metric: Some("loss".into()),
            mode: Mode::Min,
            num_samples: 2,
            seed: None,
        }
    }

    fn report(trial: usize, iteration: u64, metrics: &[(&str, f64)]) -> Fresh {
        Fresh {
            trial,
            result: ReportedResult {
                training_iteration: iteration,
                time_total_s: 0.5,
                metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
            checkpoint: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mobula-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn results_of_all_trials_share_files_and_load_back_per_trial() {
        let dir = scratch("share");
        let mut files = ResultFiles::create(dir.clone(), &meta(), CheckpointConfig::new()).unwrap();
        for t in 0..2 {
            let config = TrialConfig::from_json(json!({"lr": t as f64 / 10.0}));
            files.add_trial(t, &config).unwrap();
        }
        files
            .append(&[
                report(0, 1, &[("loss", 3.0)]),
                report(1, 1, &[("loss", 2.0)]),
            ])
            .unwrap();
        // A metric not seen before widens the CSV; older rows get an empty cell.
        files
            .append(&[report(0, 2, &[("loss", 1.0), ("acc", 0.9)])])
            .unwrap();
        drop(files);
        let csv = std::fs::read_to_string(dir.join(PROGRESS)).unwrap();
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                "trial_id,training_iteration,time_total_s,loss,acc",
                "0,1,0.5,3,",
                "1,1,0.5,2,",
                "0,2,0.5,1,0.9",
            ]
        );
        let saved = load(&dir).unwrap();
        assert_eq!(saved.trials.len(), 2);
        let losses: Vec<f64> = saved.trials[0]
            .results
            .iter()
            .map(|r| r.metrics["loss"])
            .collect();
        assert_eq!(losses, [3.0, 1.0]);
        assert_eq!(saved.trials[0].results[1].metrics["acc"], 0.9);
        assert_eq!(saved.trials[1].results.len(), 1);
        assert_eq!(saved.trials[1].config.as_json()["lr"], json!(0.1));
        assert!(
            !dir.join(trial_name("exp", 0)).exists(),
            "no directory without a checkpoint"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_line_cut_by_a_kill_is_dropped_before_more_is_appended() {
        let dir = scratch("cut");
        let mut files = ResultFiles::create(dir.clone(), &meta(), CheckpointConfig::new()).unwrap();
        files.add_trial(0, &TrialConfig::default()).unwrap();
        drop(files);
        let mut params = append(&dir.join(PARAMS)).unwrap();
        params.write_all(b"{\"trial_id\":1,\"tri").unwrap();
        drop(params);
        let saved = load(&dir).unwrap();
        assert_eq!(saved.trials.len(), 1, "the cut line is not a trial");
        let mut files =
            ResultFiles::reopen(dir.clone(), &meta(), CheckpointConfig::new(), &saved.trials)
                .unwrap();
        files.add_trial(1, &TrialConfig::default()).unwrap();
        assert_eq!(load(&dir).unwrap().trials.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
