//! `Config`: what [`init`](crate::init) starts.

use std::path::PathBuf;

use crate::error::InitError;
use crate::scheduler::resources::{NodeResources, UNIT, check_custom_name, to_units};

/// Settings of the node [`init`](crate::init) starts, built with chained setters:
///
/// ```
/// use mobula::Config;
/// let config = Config::default().num_cpus(4).resource("fpga", 2).object_store_memory(1 << 30);
/// ```
///
/// Anything not set takes the machine's value: CPUs from the available parallelism, GPUs from
/// `CUDA_VISIBLE_DEVICES` (none when unset), 30 % of the machine's memory for the object
/// store (as Ray), spilling under the system's temporary directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    resources: Vec<(String, f64)>,
    object_store_memory: Option<u64>,
    spill_dir: Option<PathBuf>,
}

impl Config {
    /// A configuration with every value taken from the machine.
    pub fn new() -> Self {
        Self::default()
    }

    /// CPUs the node offers to tasks. Tasks ask for 1 by default, so this many run at once.
    pub fn num_cpus(mut self, n: impl Into<f64>) -> Self {
        self.num_cpus = Some(n.into());
        self
    }

    /// GPUs the node offers (a whole number). Their ids are taken from
    /// `CUDA_VISIBLE_DEVICES` when it lists enough of them, else 0, 1, ...
    pub fn num_gpus(mut self, n: impl Into<f64>) -> Self {
        self.num_gpus = Some(n.into());
        self
    }

    /// An amount of a custom resource the node offers (`"fpga"`, `"ssd"`, ...). Tasks that ask
    /// for it run only while enough is free.
    pub fn resource(mut self, name: impl Into<String>, amount: impl Into<f64>) -> Self {
        let name = name.into();
        self.resources.retain(|(n, _)| *n != name);
        self.resources.push((name, amount.into()));
        self
    }

    /// Bytes of objects kept in memory; beyond this the least recently used objects that no
    /// task is reading spill to disk.
    pub fn object_store_memory(mut self, bytes: u64) -> Self {
        self.object_store_memory = Some(bytes);
        self
    }

    /// Where spilled objects go (a per-node directory is made inside it and removed at
    /// shutdown).
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = Some(dir.into());
        self
    }

    /// Checks the settings and fills in the machine's values.
    pub(crate) fn resolve(&self) -> Result<NodeConfig, InitError> {
        let invalid = InitError::InvalidConfig;
        let cpus = match self.num_cpus {
            Some(n) => to_units("num_cpus", n).map_err(invalid)?,
            None => {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1) as i64
                    * UNIT
            }
        };
        let visible = visible_gpus(std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref());
        let gpu_ids = match self.num_gpus {
            None => visible,
            Some(n) => {
                let units = to_units("num_gpus", n).map_err(invalid)?;
                if units % UNIT != 0 {
                    return Err(InitError::InvalidConfig(format!(
                        "num_gpus must be a whole number, got {n}"
                    )));
                }
                let n = (units / UNIT) as usize;
                if visible.len() >= n {
                    visible[..n].to_vec()
                } else {
                    (0..n as u32).collect()
                }
            }
        };
        for (name, _) in &self.resources {
            check_custom_name(name).map_err(invalid)?;
        }
        let resources = NodeResources::new(cpus, &gpu_ids, &self.resources).map_err(invalid)?;
        Ok(NodeConfig {
            resources,
            cpu_units: cpus,
            object_store_memory: self
                .object_store_memory
                .unwrap_or_else(default_store_memory),
            spill_root: self
                .spill_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("mobula-spill")),
        })
    }
}

/// A configuration checked and completed with the machine's values.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    pub resources: NodeResources,
    pub cpu_units: i64,
    pub object_store_memory: u64,
    pub spill_root: PathBuf,
}

/// The GPU ids `CUDA_VISIBLE_DEVICES` lists: numbers as given, anything else (UUIDs) by
/// position. Unset or empty means none.
pub(crate) fn visible_gpus(var: Option<&str>) -> Vec<u32> {
    let Some(var) = var.map(str::trim).filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    let entries: Vec<&str> = var
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    // CUDA stops at the first invalid index; "-1" is the usual way to hide every GPU.
    let entries: Vec<&str> = entries
        .into_iter()
        .take_while(|e| !e.starts_with('-'))
        .collect();
    if entries.iter().all(|e| e.parse::<u32>().is_ok()) {
        entries
            .iter()
            .map(|e| e.parse().expect("checked above"))
            .collect()
    } else {
        (0..entries.len() as u32).collect()
    }
}

/// 30 % of the machine's memory, as Ray's default object store size.
fn default_store_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    total.map(|t| t / 10 * 3).unwrap_or(4 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_ids_come_from_cuda_visible_devices() {
        assert_eq!(visible_gpus(None), Vec::<u32>::new());
        assert_eq!(visible_gpus(Some("")), Vec::<u32>::new());
        assert_eq!(visible_gpus(Some("2,3")), vec![2, 3]);
        assert_eq!(visible_gpus(Some("0,-1,2")), vec![0]);
        assert_eq!(visible_gpus(Some("GPU-a1,GPU-b2")), vec![0, 1]);
    }

    #[test]
    fn invalid_settings_are_explained() {
        let err = Config::default()
            .num_cpus(-2)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("num_cpus must be a non-negative number"),
            "{err}"
        );
        let err = Config::default()
            .num_gpus(1.5)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("whole number"), "{err}");
        let err = Config::default()
            .resource("GPU", 1)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_gpus"), "{err}");
    }

    #[test]
    fn explicit_values_win() {
        let c = Config::default()
            .num_cpus(3)
            .num_gpus(2)
            .object_store_memory(10)
            .resolve()
            .unwrap();
        assert_eq!(c.cpu_units, 3 * UNIT);
        assert!(c.resources.describe_total().contains("2 GPU"));
        assert_eq!(c.object_store_memory, 10);
        assert!(default_store_memory() > 0);
    }
}
