//! The `mobula` command: start a cluster's head, look at the cluster, stop it.
//!
//!     mobula start --head [--listen 0.0.0.0:6380] [--num-cpus 0] [--dir DIR] [--block]
//!     mobula status [--dir DIR]
//!     mobula list tasks|actors|objects|nodes|placement-groups [--filter K=V] [--limit N]
//!                 [--format table|json] [--dir DIR]
//!     mobula summary tasks|actors|objects [--format table|json] [--dir DIR]
//!     mobula memory [--dir DIR]
//!     mobula timeline [--output FILE] [--limit N] [--dir DIR]
//!     mobula logs [ID] [--filter K=V] [--limit N] [--format table|json] [--dir DIR]
//!     mobula stop [--dir DIR]
//!
//! Worker nodes and drivers are the user's own program (every node runs the same binary):
//! `start --head` prints the variables that make it join.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use mobula::Config;
use mobula::node::{self, ClusterView, JoinInfo};
use mobula::state::render::{self, Render, SummaryPart};
use mobula::state::{self, ListOptions};

const USAGE: &str = "\
usage:
  mobula start --head [--listen HOST:PORT] [--num-cpus N] [--dir DIR] [--block]
      Starts a cluster's head (in the background unless --block) and prints how nodes join.
      --listen    where nodes reach it (default 0.0.0.0:6380)
      --num-cpus  CPUs the head itself offers for tasks (default 0: it only coordinates)
      --dir       the cluster directory: CA, join token, head address (default $MOBULA_DIR,
                  else ~/.mobula/cluster)
      --dashboard-address HOST:PORT   where the dashboard listens (default 127.0.0.1:8265;
                  skipped with a warning when that port is busy); --no-dashboard: none;
                  --dashboard-https: over HTTPS, under the cluster CA (ca.pem in DIR)
  mobula status [--dir DIR]   nodes, their resources and load, as the head sees them
  mobula list tasks|actors|objects|nodes|placement-groups [--filter KEY=VALUE]...
              [--limit N] [--format table|json] [--dir DIR]
      Every task, actor, object, node or placement group of the cluster (the head asks
      each node). --filter keeps rows whose field equals (KEY=VALUE) or differs from
      (KEY!=VALUE) a value, e.g. --filter state=RUNNING; --limit defaults to 100.
  mobula summary tasks|actors|objects [--format table|json] [--dir DIR]
      Counts: tasks by function and state, actors by class and state, objects by state.
  mobula memory [--dir DIR]   objects in every node's store, by node, the largest first
  mobula timeline [--output FILE] [--limit N] [--dir DIR]
      Writes the latest tasks of every node (default 10000) as a Chrome trace: open it in
      chrome://tracing or https://ui.perfetto.dev (default file: mobula-timeline-<time>.json)
  mobula logs [ID] [--filter KEY=VALUE]... [--limit N] [--format table|json] [--dir DIR]
      What the task or actor ID printed (mobula::println!) or logged (tracing), from the
      node it ran on, with the prefix its driver showed; without ID, every task's and
      actor's. The newest --limit lines (default 1000); --filter on task_id, actor_id,
      node_id, function or stream (stdout, stderr, tracing).
  mobula stop [--dir DIR]     stops every node of the cluster, then the head";

const TIMEOUT: Duration = Duration::from_secs(5);

/// Parsed command-line options.
#[derive(Debug, Default)]
struct Options {
    head: bool,
    block: bool,
    listen: Option<String>,
    address: Option<String>,
    token: Option<String>,
    ca_fingerprint: Option<String>,
    num_cpus: Option<f64>,
    dir: Option<PathBuf>,
    dashboard: Option<String>,
    no_dashboard: bool,
    dashboard_https: bool,
    filters: Vec<String>,
    limit: Option<usize>,
    json: bool,
    output: Option<PathBuf>,
    /// Words that are not options (what `list` and `summary` are about).
    words: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--head" => o.head = true,
            "--block" => o.block = true,
            "--listen" => {
                o.listen = Some(value(i)?);
                i += 1;
            }
            "--address" => {
                o.address = Some(value(i)?);
                i += 1;
            }
            "--token" => {
                o.token = Some(value(i)?);
                i += 1;
            }
            "--ca-fingerprint" => {
                o.ca_fingerprint = Some(value(i)?);
                i += 1;
            }
            "--num-cpus" => {
                let v = value(i)?;
                o.num_cpus = Some(
                    v.parse()
                        .map_err(|_| format!("--num-cpus takes a number, not {v:?}"))?,
                );
                i += 1;
            }
            "--dir" => {
                o.dir = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--dashboard-address" => {
                o.dashboard = Some(value(i)?);
                i += 1;
            }
            "--no-dashboard" => o.no_dashboard = true,
            "--dashboard-https" => o.dashboard_https = true,
            "--output" => {
                o.output = Some(PathBuf::from(value(i)?));
                i += 1;
            }
            "--filter" => {
                o.filters.push(value(i)?);
                i += 1;
            }
            "--limit" => {
                let v = value(i)?;
                o.limit = Some(
                    v.parse()
                        .map_err(|_| format!("--limit takes a count, not {v:?}"))?,
                );
                i += 1;
            }
            "--format" => {
                o.json = match value(i)?.as_str() {
                    "json" => true,
                    "table" => false,
                    other => return Err(format!("--format is table or json, not {other:?}")),
                };
                i += 1;
            }
            word if !word.starts_with('-') => o.words.push(word.to_string()),
            other => return Err(format!("unknown option {other:?}")),
        }
        i += 1;
    }
    Ok(o)
}

fn dir_of(o: &Options) -> PathBuf {
    o.dir
        .clone()
        .unwrap_or_else(mobula::transport::credentials::ClusterDir::default_path)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match parse(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mobula {command}: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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
        "start" if options.head && options.block => start_blocking(&options),
        "start" if options.head => start_in_background(&options),
        "start" if options.address.is_some() && options.block => agent_blocking(&options),
        "start" if options.address.is_some() => agent_in_background(&options),
        "start" => Err(
            "start what? `mobula start --head` starts a cluster's head; `mobula start --address \
             HEAD:PORT` starts a node that joins it"
                .to_string(),
        ),
        "status" => status(&options),
        "list" => list(&options),
        "summary" => summary(&options),
        "memory" => memory(&options),
        "timeline" => timeline(&options),
        "logs" => logs(&options),
        "stop" => stop(&options),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mobula {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the head in this process until `mobula stop`.
const DEFAULT_DASHBOARD: &str = "127.0.0.1:8265";

/// Where the head's dashboard goes: as asked, none, or the default when its port is free.
fn dashboard_of(o: &Options) -> Option<String> {
    if o.no_dashboard {
        return None;
    }
    if let Some(address) = &o.dashboard {
        return Some(address.clone());
    }
    match std::net::TcpListener::bind(DEFAULT_DASHBOARD) {
        Ok(_) => Some(DEFAULT_DASHBOARD.to_string()),
        Err(e) => {
            eprintln!(
                "no dashboard: {DEFAULT_DASHBOARD} is busy ({e}); --dashboard-address picks another"
            );
            None
        }
    }
}

fn start_blocking(o: &Options) -> Result<(), String> {
    let cpus = o.num_cpus.unwrap_or(0.0);
    let config = Config::default()
        .num_cpus(cpus)
        .head(o.listen.clone().unwrap_or_else(|| "0.0.0.0:6380".into()))
        .cluster_dir(dir_of(o));
    // A head with CPUs runs the drivers' builds on them, as a node agent does.
    let run = |config: Config| {
        if cpus > 0.0 {
            node::run_agent(config)
        } else {
            node::run(config)
        }
    };
    let Some(address) = dashboard_of(o) else {
        return run(config).map_err(|e| e.to_string());
    };
    let with_dashboard = config
        .clone()
        .dashboard_address(address)
        .dashboard_https(o.dashboard_https);
    match run(with_dashboard) {
        // The default port was taken since it was checked: go on without a dashboard.
        Err(e) if o.dashboard.is_none() && e.to_string().contains("dashboard") => {
            eprintln!("no dashboard: {e}");
            run(config).map_err(|e| e.to_string())
        }
        other => other.map_err(|e| e.to_string()),
    }
}

/// The settings of a node agent joining `--address`.
fn agent_config(o: &Options) -> Config {
    let mut config = Config::default()
        .address(o.address.clone().unwrap_or_default())
        .cluster_dir(dir_of(o));
    if let Some(listen) = &o.listen {
        config = config.listen(listen.clone());
    }
    if let Some(n) = o.num_cpus {
        config = config.num_cpus(n);
    }
    if let Some(token) = &o.token {
        config = config.join_token(token.clone());
    }
    if let Some(pin) = &o.ca_fingerprint {
        config = config.ca_fingerprint(pin.clone());
    }
    config
}

/// Runs a node agent in this process until the cluster stops.
fn agent_blocking(o: &Options) -> Result<(), String> {
    node::run_agent(agent_config(o)).map_err(|e| e.to_string())
}

/// Starts a node agent as a background process and waits until it has joined.
fn agent_in_background(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join(format!("node-{}.log", std::process::id()));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.arg("start")
        .arg("--block")
        .arg("--dir")
        .arg(&dir)
        .arg("--address")
        .arg(o.address.clone().unwrap_or_default());
    for (flag, value) in [
        ("--listen", &o.listen),
        ("--token", &o.token),
        ("--ca-fingerprint", &o.ca_fingerprint),
    ] {
        if let Some(value) = value {
            cmd.arg(flag).arg(value);
        }
    }
    if let Some(n) = o.num_cpus {
        cmd.arg("--num-cpus").arg(n.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting the node: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let printed = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(line) = printed.lines().find(|l| l.starts_with("mobula: joined")) {
            println!(
                "{} (pid {}; its log: {})",
                line,
                child.id(),
                log_path.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the node exited ({status}):\n{printed}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the node did not join within 30 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the head as a background process, waits until it answers, prints how to join.
fn start_in_background(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    if node::cluster_status(&dir, Duration::from_millis(500)).is_ok() {
        return Err(format!(
            "a head already runs for {} (`mobula status`; `mobula stop` ends it)",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join("head.addr"));
    // The dashboard's token, made before the head starts (which reads the same file).
    let token = mobula::transport::credentials::ClusterDir::new(&dir)
        .dashboard_token()
        .map_err(|e| e.to_string())?;
    let log_path = dir.join("head.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.arg("start")
        .arg("--head")
        .arg("--block")
        .arg("--dir")
        .arg(&dir);
    if let Some(listen) = &o.listen {
        cmd.arg("--listen").arg(listen);
    }
    if let Some(n) = o.num_cpus {
        cmd.arg("--num-cpus").arg(n.to_string());
    }
    let dashboard = dashboard_of(o);
    if o.dashboard_https {
        cmd.arg("--dashboard-https");
    }
    if let Some(address) = &o.dashboard {
        cmd.arg("--dashboard-address").arg(address);
    } else if dashboard.is_none() {
        cmd.arg("--no-dashboard");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting the head: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let view = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the head exited ({status}):\n{log}"));
        }
        if let Ok(view) = node::cluster_status(&dir, Duration::from_millis(500)) {
            break view;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "the head did not answer within 15 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let info = node::join_info(&dir).map_err(|e| e.to_string())?;
    print_started(&info, &dir, &view, child.id());
    if let Some(address) = dashboard {
        let scheme = if o.dashboard_https { "https" } else { "http" };
        println!(
            "Dashboard: {scheme}://{address}/ (it listens on {address} only; log in with its \
             read-only token {}, kept in {})",
            token.trim(),
            dir.join("dashboard-token").display()
        );
    }
    Ok(())
}

/// The address others use: the listening one, or this machine's outward address when it
/// listens on all interfaces.
fn reachable(info: &JoinInfo) -> String {
    let mut address = info.address;
    if address.ip().is_unspecified() {
        // A UDP "connection" sends nothing; it only picks the interface a route would use.
        let outward = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
            .and_then(|s| s.local_addr());
        if let Ok(local) = outward {
            address.set_ip(local.ip());
        }
    }
    address.to_string()
}

fn print_started(info: &JoinInfo, dir: &std::path::Path, view: &ClusterView, pid: u32) {
    let address = reachable(info);
    println!(
        "Mobula head running at {address} (pid {pid}, {} node).",
        view.nodes.len()
    );
    println!(
        "Cluster directory: {} (the CA and join token: keep it private)",
        dir.display()
    );
    println!();
    println!("Add a node: on each machine, with the mobula command only, run");
    println!(
        "    mobula start --address {address} --token {} --ca-fingerprint {}",
        info.token, info.ca_fingerprint
    );
    println!("(it runs whatever build each driver brings: nothing of yours to copy)");
    println!();
    println!("Run a driver, any build of your program, from any machine:");
    println!(
        "    MOBULA_ADDRESS={address} MOBULA_JOIN_TOKEN={} MOBULA_CA_FINGERPRINT={} ./your-program",
        info.token, info.ca_fingerprint
    );
    println!(
        "(mobula::init joins the cluster; here, the cluster directory is enough: MOBULA_ADDRESS)"
    );
    println!("Look: mobula status    Stop every node: mobula stop");
}

fn status(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    let view = node::cluster_status(&dir, TIMEOUT).map_err(|e| e.to_string())?;
    print!("{}", render_status(&view));
    Ok(())
}

/// The status table.
fn render_status(view: &ClusterView) -> String {
    let alive = view.nodes.iter().filter(|n| n.alive).count();
    let mut out = format!(
        "{alive} node(s) alive, {} dead (membership version {})\n",
        view.nodes.len() - alive,
        view.version
    );
    out += &format!(
        "{:<34} {:<22} {:<6} {:<6} {:>5}  resources\n",
        "node", "address", "state", "tasks", "load"
    );
    let mut totals: Vec<(String, f64)> = Vec::new();
    for n in &view.nodes {
        let resources: Vec<String> = n
            .info
            .resources
            .iter()
            .map(|(name, amount)| format!("{name}={amount}"))
            .collect();
        if n.alive {
            for (name, amount) in &n.info.resources {
                match totals.iter_mut().find(|(t, _)| t == name) {
                    Some((_, total)) => *total += amount,
                    None => totals.push((name.clone(), *amount)),
                }
            }
        }
        out += &format!(
            "{:<34} {:<22} {:<6} {:<6} {:>5}  {}\n",
            n.info.node_id.to_string(),
            n.info.address.to_string(),
            if n.alive { "alive" } else { "dead" },
            if n.info.runs_tasks { "yes" } else { "no" },
            n.load,
            resources.join(" ")
        );
    }
    let totals: Vec<String> = totals.iter().map(|(n, a)| format!("{n}={a}")).collect();
    out += &format!("total (alive): {}\n", totals.join(" "));
    out
}

fn state_source(o: &Options) -> state::Source {
    state::Source::ClusterDir(dir_of(o), TIMEOUT)
}

fn the_word<'a>(o: &'a Options, what: &str, choices: &[&str]) -> Result<&'a str, String> {
    match o.words.as_slice() {
        [word] if choices.contains(&word.as_str()) => Ok(word),
        [word] => Err(format!("{what} {word:?}? one of: {}", choices.join(", "))),
        [] => Err(format!("{what} what? one of: {}", choices.join(", "))),
        more => Err(format!("one {what} at a time, not {more:?}")),
    }
}

fn shown<T: Render>(listed: &state::Listed<T>, json: bool) -> String {
    if json {
        format!("{:#}\n", render::listed_json(listed))
    } else {
        render::listed_table(listed)
    }
}

/// `mobula list KIND`.
fn list(o: &Options) -> Result<(), String> {
    let kinds = ["tasks", "actors", "objects", "nodes", "placement-groups"];
    let kind = the_word(o, "list", &kinds)?;
    let mut options = ListOptions::new().limit(o.limit.unwrap_or(state::DEFAULT_LIMIT));
    for f in &o.filters {
        options = options.parse_filter(f).map_err(|e| e.to_string())?;
    }
    let source = state_source(o);
    let err = |e: state::StateError| e.to_string();
    let text = match kind {
        "tasks" => shown(&source.list_tasks(&options).map_err(err)?, o.json),
        "actors" => shown(&source.list_actors(&options).map_err(err)?, o.json),
        "objects" => shown(&source.list_objects(&options).map_err(err)?, o.json),
        "nodes" => shown(&source.list_nodes(&options).map_err(err)?, o.json),
        _ => shown(
            &source.list_placement_groups(&options).map_err(err)?,
            o.json,
        ),
    };
    print!("{text}");
    Ok(())
}

/// `mobula summary KIND`.
fn summary(o: &Options) -> Result<(), String> {
    let part = match the_word(o, "summary", &["tasks", "actors", "objects"])? {
        "tasks" => SummaryPart::Tasks,
        "actors" => SummaryPart::Actors,
        _ => SummaryPart::Objects,
    };
    let summary = state_source(o).summary().map_err(|e| e.to_string())?;
    if o.json {
        println!("{:#}", render::summary_json(&summary, part));
    } else {
        print!("{}", render::summary_table(&summary, part));
    }
    Ok(())
}

/// `mobula memory` (Ray's `ray memory`): every node's objects, the largest first, with the
/// store's use per node.
fn memory(o: &Options) -> Result<(), String> {
    let source = state_source(o);
    let err = |e: state::StateError| e.to_string();
    let nodes = source
        .list_nodes(&ListOptions::new().limit(10_000))
        .map_err(err)?;
    let limit = o.limit.unwrap_or(state::DEFAULT_LIMIT);
    for node in nodes.rows.iter().filter(|n| n.alive) {
        println!(
            "node {} ({}): {} objects, {} of {} bytes in memory, {} bytes spilled",
            node.node_id,
            node.address.as_deref().unwrap_or("-"),
            node.objects,
            node.store_used,
            node.store_limit,
            node.spilled_bytes
        );
        let objects = source
            .list_objects(
                &ListOptions::new()
                    .filter("node_id", node.node_id)
                    .limit(limit),
            )
            .map_err(err)?;
        for line in render::listed_table(&objects).lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

/// `mobula timeline`.
fn timeline(o: &Options) -> Result<(), String> {
    let trace = state_source(o)
        .timeline(o.limit.unwrap_or(10_000))
        .map_err(|e| e.to_string())?;
    let path = o.output.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        PathBuf::from(format!("mobula-timeline-{secs}.json"))
    });
    let tasks = trace["traceEvents"]
        .as_array()
        .map_or(0, |e| e.iter().filter(|e| e["ph"] == "X").count());
    std::fs::write(&path, trace.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "Wrote {tasks} tasks to {}: open it in chrome://tracing or https://ui.perfetto.dev",
        path.display()
    );
    Ok(())
}

/// `mobula logs [ID]` (Ray's `ray logs`).
fn logs(o: &Options) -> Result<(), String> {
    let mut options = ListOptions::new().limit(o.limit.unwrap_or(1000));
    match o.words.as_slice() {
        [] => {}
        [id] => options = options.filter("id", id),
        more => return Err(format!("one task or actor id at a time, not {more:?}")),
    }
    for f in &o.filters {
        options = options.parse_filter(f).map_err(|e| e.to_string())?;
    }
    let listed = state_source(o)
        .list_logs(&options)
        .map_err(|e| e.to_string())?;
    if o.json {
        println!("{:#}", render::listed_json(&listed));
        return Ok(());
    }
    let (lines, notes) = render::log_lines(&listed);
    print!("{lines}");
    eprint!("{notes}");
    if listed.rows.is_empty()
        && let [id] = o.words.as_slice()
    {
        return Err(format!(
            "no lines of {id}: no live node kept any (is it a task or actor id from \
             `mobula list` or a driver's prefix?)"
        ));
    }
    Ok(())
}

fn stop(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    node::stop_cluster(&dir, TIMEOUT).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while node::cluster_status(&dir, Duration::from_millis(300)).is_ok() {
        if Instant::now() > deadline {
            return Err("the head was told to stop but still answers after 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("Stopped the cluster of {}.", dir.display());
    Ok(())
}
