//! A run's files: each kept checkpoint as a directory of its ranks' parts, and the metrics
//! history, under `<storage_path>/<name>/`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::checkpoint::TrainCheckpoint;
use crate::tune::Metrics;

/// A run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Makes (or reuses) the directory `path`.
    pub fn create(path: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&path)?;
        Ok(RunDir { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of the checkpoint of round `round`.
    pub fn checkpoint_dir(&self, round: u64) -> PathBuf {
        self.path.join(format!("checkpoint_{round:06}"))
    }

    /// Writes a checkpoint: one file per rank's part, and rank 0's metrics. Written to a
    /// temporary directory first, then renamed: a crash leaves no half checkpoint.
    pub fn write_checkpoint(
        &self,
        checkpoint: &TrainCheckpoint,
        metrics: &Metrics,
    ) -> std::io::Result<PathBuf> {
        let dir = self.checkpoint_dir(checkpoint.round());
        let tmp = self
            .path
            .join(format!(".tmp_checkpoint_{:06}", checkpoint.round()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for rank in 0..checkpoint.world_size() {
            if let Some(part) = checkpoint.part(rank) {
                fs::write(tmp.join(format!("rank_{rank}.bin")), part.bytes())?;
            }
        }
        let json = serde_json::to_vec_pretty(metrics).map_err(std::io::Error::other)?;
        fs::write(tmp.join("metrics.json"), json)?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir)?;
        Ok(dir)
    }

    /// Deletes the checkpoint of round `round`.
    pub fn delete_checkpoint(&self, round: u64) {
        let _ = fs::remove_dir_all(self.checkpoint_dir(round));
    }

    /// Appends one round's metrics to `result.json` (one JSON object per line).
    pub fn append_result(&self, round: u64, metrics: &Metrics) -> std::io::Result<()> {
        let mut line = serde_json::to_value(metrics).map_err(std::io::Error::other)?;
        line["round"] = serde_json::json!(round);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join("result.json"))?;
        writeln!(file, "{line}")
    }
}
