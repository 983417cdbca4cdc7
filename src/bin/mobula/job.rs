//! `mobula job`: programs run on the cluster as jobs (Ray Jobs), and every driver's job.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use mobula::node;
use mobula::state::render::{self, Render};
use mobula::state::{self, JobId, JobInfo, JobStatus, ListOptions};

use crate::TIMEOUT;
use crate::args::{Options, dir_of};

/// `mobula job SUBCOMMAND`.
pub fn job(o: &Options) -> Result<(), String> {
    match o.words.first().map(String::as_str) {
        Some("submit") => submit(o),
        Some("status") => status(o),
        Some("logs") => logs(o),
        Some("stop") => stop(o),
        Some("list") => list(o),
        Some(other) => Err(format!(
            "job {other:?}? one of: submit, status, logs, stop, list"
        )),
        None => Err("job what? one of: submit, status, logs, stop, list".into()),
    }
}

/// The job named after the subcommand.
fn job_id(o: &Options) -> Result<JobId, String> {
    match o.words.as_slice() {
        [_, id] => id.parse(),
        [what] => Err(format!(
            "job {what} which job? (job-N, from `mobula job list`)"
        )),
        more => Err(format!("one job at a time, not {:?}", &more[1..])),
    }
}

/// The job's row.
fn info(dir: &Path, job: JobId) -> Result<JobInfo, String> {
    let options = ListOptions::new().filter("job_id", job);
    let listed = state::Source::ClusterDir(dir.to_path_buf(), TIMEOUT)
        .list_jobs(&options)
        .map_err(|e| e.to_string())?;
    listed
        .rows
        .into_iter()
        .next()
        .ok_or_else(|| format!("no job {job} (`mobula job list`)"))
}

fn submit(o: &Options) -> Result<(), String> {
    let Some((program, args)) = o.rest.split_first() else {
        return Err("job submit what? `mobula job submit -- ./program args...`".into());
    };
    let dir = dir_of(o);
    let job =
        node::submit_job(&dir, Path::new(program), args, TIMEOUT).map_err(|e| e.to_string())?;
    eprintln!("Submitted {job}: `mobula job status {job}`, `mobula job logs {job}`.");
    if o.no_wait {
        println!("{job}");
        return Ok(());
    }
    follow(&dir, job)?;
    let ended = info(&dir, job)?;
    eprintln!("{job} {}{}", ended.status, exit_text(&ended));
    match ended.status {
        JobStatus::Succeeded => Ok(()),
        other => Err(format!("{job} {other}{}", exit_text(&ended))),
    }
}

fn exit_text(job: &JobInfo) -> String {
    match (job.exit_code, job.message.is_empty()) {
        (Some(code), _) => format!(" (exit code {code})"),
        (None, false) => format!(" ({})", job.message),
        (None, true) => String::new(),
    }
}

/// Prints a submitted job's output as it comes, until the job ends.
fn follow(dir: &Path, job: JobId) -> Result<(), String> {
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    loop {
        let (bytes, ended) =
            node::job_output(dir, job, offset, TIMEOUT).map_err(|e| e.to_string())?;
        offset += bytes.len() as u64;
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        if ended {
            return Ok(());
        }
        if bytes.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn status(o: &Options) -> Result<(), String> {
    let job = info(&dir_of(o), job_id(o)?)?;
    if o.json {
        println!("{:#}", job.json());
    } else {
        println!("{} {}{}", job.job_id, job.status, exit_text(&job));
        print!("{}", render::table(JobInfo::HEADERS, &[job.cells()]));
    }
    Ok(())
}

fn logs(o: &Options) -> Result<(), String> {
    let (dir, job) = (dir_of(o), job_id(o)?);
    if o.follow {
        return follow(&dir, job);
    }
    let mut offset = 0;
    loop {
        let (bytes, ended) =
            node::job_output(&dir, job, offset, TIMEOUT).map_err(|e| e.to_string())?;
        offset += bytes.len() as u64;
        let _ = std::io::stdout().write_all(&bytes);
        if ended || bytes.is_empty() {
            return Ok(());
        }
    }
}

fn stop(o: &Options) -> Result<(), String> {
    let (dir, job) = (dir_of(o), job_id(o)?);
    node::stop_job(&dir, job, TIMEOUT).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = info(&dir, job)?;
        if now.status.is_terminal() {
            println!("{job} {}", now.status);
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{job} was told to stop but is still {}",
                now.status
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn list(o: &Options) -> Result<(), String> {
    let options = ListOptions::new().limit(o.limit.unwrap_or(state::DEFAULT_LIMIT));
    let listed = state::Source::ClusterDir(dir_of(o), TIMEOUT)
        .list_jobs(&options)
        .map_err(|e| e.to_string())?;
    if o.json {
        println!("{:#}", render::listed_json(&listed));
    } else {
        print!("{}", render::listed_table(&listed));
    }
    Ok(())
}
