//! Jobs on the head: the table of every driver and submitted program (`base::jobs` decides),
//! and the programs the head runs for `mobula job submit`, as drivers of the cluster, with
//! their output kept in the cluster directory's `jobs/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::node::ClusterNode;
use crate::base::build::Build;
use crate::base::jobs::JobId;
use crate::base::node_config::{
    ENV_ADDRESS, ENV_BUILD_ID, ENV_CA_FINGERPRINT, ENV_JOB_ID, ENV_JOIN_TOKEN,
};
use crate::transport::credentials::fingerprint;
use crate::wire::Message;

/// The most output one [`Message::JobOutput`] carries.
const OUTPUT_PIECE: u64 = 1 << 20;

/// Unix milliseconds now.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A program the head runs for a job.
pub(crate) struct JobProcess {
    child: Child,
    /// Set by `mobula job stop`.
    stopping: bool,
}

fn refused(reason: impl Into<String>) -> Message {
    Message::Refused {
        reason: reason.into(),
    }
}

/// Where a job's output goes.
fn output_of(dir: &std::path::Path, job: JobId) -> PathBuf {
    dir.join("jobs").join(format!("{job}.log"))
}

/// Runs `build` with `args` as a new job's driver, if the head has the build.
pub(super) fn submit(node: &Arc<ClusterNode>, build: Build, args: Vec<String>) -> Message {
    let Some(state) = &node.head_state else {
        return refused("this node is not the head");
    };
    if let Err(e) = build.runs_on(&crate::base::build::this_target()) {
        return refused(e.to_string());
    }
    if !node.builds.has(build.id) {
        return Message::SendBuild;
    }
    let program = node.builds.path(build.id);
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let entrypoint = std::iter::once(format!("<build {}>", build.id))
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let job = state.change_jobs(|jobs| jobs.submitted(entrypoint, build.id, unix_ms()));
    let dir = state.dir.clone();
    let output = output_of(&dir, job);
    let spawned = (|| {
        std::fs::create_dir_all(dir.join("jobs").join(job.to_string()))?;
        let log = std::fs::File::create(&output)?;
        let mut head = node.info().address;
        if head.ip().is_unspecified() {
            head.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Command::new(&program)
            .args(&args)
            .current_dir(dir.join("jobs").join(job.to_string()))
            .env(ENV_ADDRESS, head.to_string())
            .env(ENV_JOIN_TOKEN, &state.token)
            .env(ENV_CA_FINGERPRINT, fingerprint(state.ca.cert_der()))
            .env(ENV_JOB_ID, job.to_string())
            .env(ENV_BUILD_ID, format!("{}:{}", build.id.hex(), build.size))
            .env("MOBULA_DIR", dir.join("jobs").join(job.to_string()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    })();
    match spawned {
        Ok(child) => {
            tracing::info!(%job, pid = child.id(), "started a submitted job");
            state.change_jobs(|jobs| jobs.started(job));
            state.job_processes.insert(
                job,
                JobProcess {
                    child,
                    stopping: false,
                },
            );
            drop(state);
            actix_rt::spawn(reap(node.clone(), job));
            Message::JobSubmitted(job)
        }
        Err(e) => {
            state.change_jobs(|jobs| jobs.exited(job, None, false, unix_ms()));
            refused(format!("cannot start the job's program: {e}"))
        }
    }
}

/// Waits for a job's process to exit and records how.
async fn reap(node: Arc<ClusterNode>, job: JobId) {
    let Some(state) = &node.head_state else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = state.job_processes.get_mut(&job) else {
            return;
        };
        match p.child.try_wait() {
            Ok(None) => continue,
            Ok(Some(status)) => {
                let stopping = p.stopping;
                state.job_processes.remove(&job);
                state.change_jobs(|jobs| jobs.exited(job, status.code(), stopping, unix_ms()));
                tracing::info!(%job, "a submitted job ended ({status})");
                return;
            }
            Err(e) => {
                tracing::warn!(%job, "cannot wait for the job's process: {e}");
                state.job_processes.remove(&job);
                state.change_jobs(|jobs| jobs.exited(job, None, false, unix_ms()));
                return;
            }
        }
    }
}

/// A job's output from `offset`.
pub(super) fn output(node: &ClusterNode, job: JobId, offset: u64) -> Message {
    let Some(state) = &node.head_state else {
        return refused("this node is not the head");
    };
    let (ended, path) = {
        let state = state.lock().unwrap_or_else(|e| e.into_inner());
        match state.jobs.get(job) {
            None => return refused(format!("no job {job}")),
            Some(j) if !j.submitted => {
                return refused(format!(
                    "{job} was not submitted with `mobula job submit`: its output is on its own terminal"
                ));
            }
            Some(j) => (j.status.is_terminal(), output_of(&state.dir, job)),
        }
    };
    use std::io::{Read, Seek, SeekFrom};
    let read = (|| {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = Vec::new();
        file.take(OUTPUT_PIECE).read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(bytes)
    })();
    match read {
        // Ended, and nothing more than this piece left to read.
        Ok(bytes) => Message::JobOutput {
            ended: ended && (bytes.len() as u64) < OUTPUT_PIECE,
            bytes,
        },
        Err(e) => refused(format!("cannot read {}: {e}", path.display())),
    }
}

/// Stops a submitted job: its process is killed.
pub(super) fn stop(node: &ClusterNode, job: JobId) -> Message {
    let Some(state) = &node.head_state else {
        return refused("this node is not the head");
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match state.job_processes.get_mut(&job) {
        Some(p) => {
            p.stopping = true;
            let _ = p.child.kill();
            Message::Ack
        }
        None => match state.jobs.get(job) {
            None => refused(format!("no job {job}")),
            Some(j) if j.status.is_terminal() => {
                refused(format!("{job} already ended ({})", j.status))
            }
            Some(_) => refused(format!(
                "{job} was not submitted with `mobula job submit`: stop its driver where it runs"
            )),
        },
    }
}

/// Kills every submitted job's process (the head is stopping).
pub(super) fn stop_all(node: &ClusterNode) {
    if let Some(state) = &node.head_state {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        for (_, p) in state.job_processes.iter_mut() {
            p.stopping = true;
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        state.job_processes.clear();
    }
}
