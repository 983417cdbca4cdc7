//! The `mobula` command: start a cluster (its head and node agents), run jobs on it, look at
//! it, stop it.
//!
//!     mobula start --head [--listen 0.0.0.0:6380] [--num-cpus 0] [--dir DIR] [--block]
//!     mobula start --address HEAD:PORT [--token T] [--ca-fingerprint F] [--num-cpus N]
//!     mobula job submit|status|logs|stop|list ...
//!     mobula status | list | summary | memory | timeline | logs ...
//!     mobula stop [--dir DIR]
//!
//! Nodes started with `mobula start --address` hold no user code: they run the build each
//! driver brings. `mobula <command> --help` says more of each.

mod args;
mod inspect;
mod job;
mod lifecycle;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

/// How long the CLI waits for the head's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Each command's help.
const HELP: &[(&str, &str)] = &[
    (
        "start",
        "\
  mobula start --head [--listen HOST:PORT] [--num-cpus N] [--dir DIR] [--block]
      Starts a cluster's head (in the background unless --block) and prints how nodes and
      drivers join. Later commands find DIR without --dir.
      --listen    where nodes reach it (default 0.0.0.0:6380)
      --num-cpus  CPUs the head offers to the drivers' builds (default 0: it coordinates)
      --dir       the cluster directory: CA, join token, head address (default $MOBULA_DIR,
                  else ~/.mobula/cluster)
      --dashboard-address HOST:PORT   where the dashboard listens (default 127.0.0.1:8265;
                  skipped with a warning when that port is busy); --no-dashboard: none;
                  --dashboard-https: over HTTPS, under the cluster CA (ca.pem in DIR)
  mobula start --address HEAD:PORT [--token TOKEN] [--ca-fingerprint sha256:...]
               [--num-cpus N] [--build-cache-limit SIZE] [--listen HOST:PORT] [--dir DIR]
               [--block]
      Starts a node that joins the head at HEAD:PORT (in the background unless --block). It
      holds no code of yours: it fetches each driver's build (once, by hash; kept in
      DIR/builds, at most SIZE of builds not running, default 4G) and runs it, sharing the
      machine's CPUs (--num-cpus, default all) between the builds that run. The token and fingerprint come from the flags, else
      $MOBULA_JOIN_TOKEN and $MOBULA_CA_FINGERPRINT, else DIR (on the head's machine).",
    ),
    (
        "job",
        "\
  mobula job submit [--no-wait] [--dir DIR] -- PROGRAM [ARGS...]
      Runs PROGRAM (any build of your program) on the cluster as a job's driver: uploads it
      to the head (once per build), starts it there, and streams its output until it ends
      (not with --no-wait); exits with 0 when the job SUCCEEDED.
  mobula job status JOB [--dir DIR]   the job's status, build, start, end and exit code
  mobula job logs JOB [--follow] [--dir DIR]   what a submitted job printed (--follow: until
      it ends)
  mobula job stop JOB [--dir DIR]     kills a submitted job's program (status STOPPED)
  mobula job list [--format table|json] [--dir DIR]
      Every job: each driver that connected and each program submitted, the newest first.",
    ),
    (
        "serve",
        "\
  mobula serve status [--address HOST:PORT] [--format table|json]
      Serve's applications, deployments and replicas with their state, requests per second
      and latency percentiles, asked of the Serve proxy at HOST:PORT (default
      127.0.0.1:8000).",
    ),
    (
        "status",
        "\
  mobula status [--dir DIR]   nodes, what they are (head, agent, worker of a build, driver),
      their resources and load, as the head sees them",
    ),
    (
        "list",
        "\
  mobula list tasks|actors|objects|nodes|placement-groups|jobs [--filter KEY=VALUE]...
              [--limit N] [--format table|json] [--dir DIR]
      Every task, actor, object, node, placement group or job of the cluster (the head asks
      each node). --filter keeps rows whose field equals (KEY=VALUE) or differs from
      (KEY!=VALUE) a value, e.g. --filter state=RUNNING (function and class match their
      short name too: --filter function=work); --limit defaults to 100.",
    ),
    (
        "summary",
        "\
  mobula summary tasks|actors|objects [--format table|json] [--dir DIR]
      Counts: tasks by function and state, actors by class and state, objects by state.",
    ),
    (
        "memory",
        "\
  mobula memory [--dir DIR]   objects in every node's store, by node, the largest first",
    ),
    (
        "timeline",
        "\
  mobula timeline [--output FILE] [--limit N] [--dir DIR]
      Writes the latest tasks of every node (default 10000) as a Chrome trace: open it in
      chrome://tracing or https://ui.perfetto.dev (default file: mobula-timeline-<time>.json)",
    ),
    (
        "logs",
        "\
  mobula logs [ID] [--filter KEY=VALUE]... [--limit N] [--format table|json] [--dir DIR]
      What the task or actor ID printed (mobula::println!) or logged (tracing), from the
      node it ran on, with the prefix its driver showed; without ID, every task's and
      actor's. The newest --limit lines (default 1000); --filter on task_id, actor_id,
      node_id, function or stream (stdout, stderr, tracing).",
    ),
    (
        "stop",
        "\
  mobula stop [--dir DIR]     stops every node of the cluster, then the head",
    ),
];

/// Every command's help.
fn usage() -> String {
    let parts: Vec<&str> = HELP.iter().map(|(_, text)| *text).collect();
    format!("usage:\n{}", parts.join("\n"))
}

/// One command's help, or all of it for an unknown one.
fn help_of(command: &str) -> String {
    match HELP.iter().find(|(name, _)| *name == command) {
        Some((_, text)) => format!("usage:\n{text}"),
        None => usage(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    if matches!(command.as_str(), "help" | "--help" | "-h") {
        match args.get(1) {
            Some(topic) => println!("{}", help_of(topic)),
            None => println!("{}", usage()),
        }
        return ExitCode::SUCCESS;
    }
    let options = match args::parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mobula {command}: {e}\n{}", help_of(command));
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{}", help_of(command));
        return ExitCode::SUCCESS;
    }
    if command == "start" && options.block {
        // A node's own log: what its agent fetched, started and stopped, and its warnings.
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let result = match command.as_str() {
        "start" if options.head && options.address.is_some() => Err(
            "a node is either the head (--head) or joins one (--address HEAD:PORT), not both"
                .to_string(),
        ),
        "start" if options.head && options.block => lifecycle::start_blocking(&options),
        "start" if options.head => lifecycle::start_in_background(&options),
        "start" if options.address.is_some() && options.block => {
            lifecycle::agent_blocking(&options)
        }
        "start" if options.address.is_some() => lifecycle::agent_in_background(&options),
        "start" => Err(
            "start what? `mobula start --head` starts a cluster's head; `mobula start --address \
             HEAD:PORT` starts a node that joins it (`mobula start --help`)"
                .to_string(),
        ),
        "job" => job::job(&options),
        "serve" => serve::serve(&options),
        "status" => inspect::status(&options),
        "list" => inspect::list(&options),
        "summary" => inspect::summary(&options),
        "memory" => inspect::memory(&options),
        "timeline" => inspect::timeline(&options),
        "logs" => inspect::logs(&options),
        "stop" => lifecycle::stop(&options),
        other => Err(format!("unknown command {other:?}\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mobula {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
