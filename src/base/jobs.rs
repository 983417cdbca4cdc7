//! Jobs, as Ray Jobs: every driver that connects to a cluster is one (its id, build, start,
//! end and how it ended), and so is every program submitted with `mobula job submit` (which
//! the head runs as a driver). The head keeps the table; this is its pure part: events in,
//! rows out, times as Unix milliseconds given by the caller.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::base::build::BuildId;
use crate::base::id::NodeId;

/// How many ended jobs the table keeps (the oldest ended ones go first).
pub const ENDED_KEPT: usize = 1000;

/// A job's id: `job-1`, `job-2`, ... in the order the head saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

impl std::str::FromStr for JobId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("job-")
            .and_then(|n| n.parse().ok())
            .map(JobId)
            .ok_or_else(|| format!("{s:?} is not a job id (job-N)"))
    }
}

/// Where a job is (Ray's `JobStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobStatus {
    /// Submitted; its driver has not connected yet.
    Pending,
    /// Its driver is connected (or, submitted, its process runs).
    Running,
    /// It ended well: its driver left, or its process exited with 0.
    Succeeded,
    /// It ended badly: its process exited otherwise, or its driver was lost.
    Failed,
    /// `mobula job stop` ended it.
    Stopped,
}

impl JobStatus {
    /// The status as tables and filters write it (`RUNNING`, ...).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Stopped => "STOPPED",
        }
    }

    /// Whether the job is over.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Stopped
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A job, as the state API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobInfo {
    /// Its id.
    pub job_id: JobId,
    /// Where it is.
    pub status: JobStatus,
    /// Whether it was submitted with `mobula job submit` (the head runs its process).
    pub submitted: bool,
    /// What runs: the submitted command line, or the driver's program.
    pub entrypoint: String,
    /// The node its driver joined as, once it did.
    pub driver: Option<NodeId>,
    /// The build of its program.
    pub build: Option<BuildId>,
    /// When it started (Unix ms).
    pub start_time: u64,
    /// When it ended (Unix ms).
    pub end_time: Option<u64>,
    /// A submitted job's exit code.
    pub exit_code: Option<i32>,
    /// Why it ended, when that says more than its status.
    pub message: String,
}

/// The head's job table.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Jobs {
    next: u64,
    jobs: BTreeMap<JobId, JobInfo>,
    /// Submitted jobs whose process a previous head started: this head cannot see it exit,
    /// so such a job ends when its driver does.
    #[serde(default)]
    orphans: std::collections::BTreeSet<JobId>,
}

impl Jobs {
    /// The table a previous head left (read back from its database): the submitted jobs
    /// still running lost the head that watched their process.
    pub fn restored(mut self) -> Self {
        self.orphans = self
            .jobs
            .values()
            .filter(|j| j.submitted && !j.status.is_terminal())
            .map(|j| j.job_id)
            .collect();
        self
    }

    fn mint(&mut self) -> JobId {
        self.next += 1;
        JobId(self.next)
    }

    /// A program was submitted: a pending job, running once its process starts.
    pub fn submitted(&mut self, entrypoint: String, build: BuildId, now_ms: u64) -> JobId {
        let id = self.mint();
        self.jobs.insert(
            id,
            JobInfo {
                job_id: id,
                status: JobStatus::Pending,
                submitted: true,
                entrypoint,
                driver: None,
                build: Some(build),
                start_time: now_ms,
                end_time: None,
                exit_code: None,
                message: String::new(),
            },
        );
        id
    }

    /// A submitted job's process started.
    pub fn started(&mut self, job: JobId) {
        if let Some(j) = self.jobs.get_mut(&job)
            && j.status == JobStatus::Pending
        {
            j.status = JobStatus::Running;
        }
    }

    /// A driver joined: the submitted job it belongs to (`job`, when the head started it),
    /// else a new job of its own. Returns the job.
    pub fn driver_joined(
        &mut self,
        driver: NodeId,
        job: Option<JobId>,
        entrypoint: String,
        build: Option<BuildId>,
        now_ms: u64,
    ) -> JobId {
        if let Some(id) = job
            && let Some(j) = self.jobs.get_mut(&id)
            && j.driver.is_none()
        {
            j.driver = Some(driver);
            if !j.status.is_terminal() {
                j.status = JobStatus::Running;
            }
            return id;
        }
        if let Some(j) = self.jobs.values().find(|j| j.driver == Some(driver)) {
            return j.job_id; // registering again after a reconnect
        }
        let id = self.mint();
        self.jobs.insert(
            id,
            JobInfo {
                job_id: id,
                status: JobStatus::Running,
                submitted: false,
                entrypoint,
                driver: Some(driver),
                build,
                start_time: now_ms,
                end_time: None,
                exit_code: None,
                message: String::new(),
            },
        );
        self.trim();
        id
    }

    /// A driver left (`lost`: it was declared dead rather than leaving). A job of its own
    /// ends; a submitted one ends when its process exits.
    pub fn driver_gone(&mut self, driver: NodeId, lost: bool, now_ms: u64) {
        let orphans = &self.orphans;
        let Some(j) = self.jobs.values_mut().find(|j| {
            j.driver == Some(driver)
                && (!j.submitted || orphans.contains(&j.job_id))
                && !j.status.is_terminal()
        }) else {
            return;
        };
        j.end_time = Some(now_ms);
        if lost {
            j.status = JobStatus::Failed;
            j.message = "its driver was lost (no heartbeat)".into();
        } else {
            j.status = JobStatus::Succeeded;
        }
        self.trim();
    }

    /// A submitted job's process exited: with `code`, or by a signal (`None`); `stopped`
    /// when `mobula job stop` ended it.
    pub fn exited(&mut self, job: JobId, code: Option<i32>, stopped: bool, now_ms: u64) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.end_time = Some(now_ms);
        j.exit_code = code;
        (j.status, j.message) = match (stopped, code) {
            (true, _) => (JobStatus::Stopped, "stopped by `mobula job stop`".into()),
            (false, Some(0)) => (JobStatus::Succeeded, String::new()),
            (false, Some(code)) => (JobStatus::Failed, format!("exited with code {code}")),
            (false, None) => (JobStatus::Failed, "killed by a signal".into()),
        };
        self.trim();
    }

    /// A job.
    pub fn get(&self, job: JobId) -> Option<&JobInfo> {
        self.jobs.get(&job)
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<JobInfo> {
        self.jobs.values().cloned().collect()
    }

    /// How many jobs are listed.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Drops the oldest ended jobs beyond [`ENDED_KEPT`].
    fn trim(&mut self) {
        let ended: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.status.is_terminal())
            .map(|j| j.job_id)
            .collect();
        for id in ended.iter().take(ended.len().saturating_sub(ENDED_KEPT)) {
            self.jobs.remove(id);
            self.orphans.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_is_a_job_that_succeeds_when_it_leaves_and_fails_when_lost() {
        let mut jobs = Jobs::default();
        let (a, b) = (NodeId::random(), NodeId::random());
        let ja = jobs.driver_joined(a, None, "./a".into(), None, 10);
        let jb = jobs.driver_joined(b, None, "./b".into(), None, 20);
        assert_eq!(
            (ja.to_string(), jb.to_string()),
            ("job-1".into(), "job-2".into())
        );
        assert_eq!(
            jobs.driver_joined(a, None, "./a".into(), None, 30),
            ja,
            "again"
        );
        jobs.driver_gone(a, false, 40);
        jobs.driver_gone(b, true, 50);
        let a = jobs.get(ja).unwrap();
        assert_eq!((a.status, a.end_time), (JobStatus::Succeeded, Some(40)));
        let b = jobs.get(jb).unwrap();
        assert_eq!(b.status, JobStatus::Failed);
        assert!(b.message.contains("lost"));
    }

    #[test]
    fn a_submitted_job_ends_with_its_process_exit_code_or_its_stop() {
        let mut jobs = Jobs::default();
        let build = BuildId([1; 32]);
        let ok = jobs.submitted("./ok".into(), build, 1);
        let bad = jobs.submitted("./bad".into(), build, 1);
        let stopped = jobs.submitted("./long".into(), build, 1);
        assert_eq!(jobs.get(ok).unwrap().status, JobStatus::Pending);
        jobs.started(ok);
        let driver = NodeId::random();
        assert_eq!(
            jobs.driver_joined(driver, Some(ok), "x".into(), None, 2),
            ok
        );
        assert_eq!(jobs.get(ok).unwrap().driver, Some(driver));
        jobs.driver_gone(driver, false, 3);
        assert_eq!(
            jobs.get(ok).unwrap().status,
            JobStatus::Running,
            "until it exits"
        );
        jobs.exited(ok, Some(0), false, 4);
        jobs.exited(bad, Some(3), false, 4);
        jobs.exited(stopped, None, true, 4);
        assert_eq!(jobs.get(ok).unwrap().status, JobStatus::Succeeded);
        let bad = jobs.get(bad).unwrap();
        assert_eq!((bad.status, bad.exit_code), (JobStatus::Failed, Some(3)));
        assert_eq!(jobs.get(stopped).unwrap().status, JobStatus::Stopped);
        assert_eq!(jobs.len(), 3);
    }

    #[test]
    fn a_table_read_back_after_a_restart_goes_on_numbering_and_ends_orphans_with_drivers() {
        let mut jobs = Jobs::default();
        let build = BuildId([1; 32]);
        let (a, b) = (NodeId::random(), NodeId::random());
        let ja = jobs.driver_joined(a, None, "./a".into(), None, 1);
        let sub = jobs.submitted("./s".into(), build, 2);
        jobs.started(sub);
        jobs.driver_joined(b, Some(sub), "./s".into(), None, 3);
        let bytes = postcard::to_stdvec(&jobs).unwrap();
        let mut back = postcard::from_bytes::<Jobs>(&bytes).unwrap().restored();
        assert_eq!(back.list(), jobs.list());
        // A driver reconnecting is still its job; a new one gets the next id.
        assert_eq!(back.driver_joined(a, None, "./a".into(), None, 4), ja);
        let c = back.driver_joined(NodeId::random(), None, "./c".into(), None, 5);
        assert_eq!(c, JobId(3));
        // The submitted job's process was the old head's: it ends with its driver.
        back.driver_gone(b, false, 6);
        let s = back.get(sub).unwrap();
        assert_eq!((s.status, s.end_time), (JobStatus::Succeeded, Some(6)));
    }

    #[test]
    fn only_the_newest_ended_jobs_are_kept_and_running_ones_always() {
        let mut jobs = Jobs::default();
        let running = jobs.driver_joined(NodeId::random(), None, "r".into(), None, 0);
        for i in 0..(ENDED_KEPT as u64 + 5) {
            let d = NodeId::random();
            jobs.driver_joined(d, None, "d".into(), None, i);
            jobs.driver_gone(d, false, i);
        }
        assert_eq!(jobs.len(), ENDED_KEPT + 1);
        assert!(jobs.get(running).is_some());
        assert!(jobs.get(JobId(2)).is_none(), "the oldest ended job went");
        assert_eq!("job-7".parse::<JobId>(), Ok(JobId(7)));
        assert!("7".parse::<JobId>().is_err());
    }
}
