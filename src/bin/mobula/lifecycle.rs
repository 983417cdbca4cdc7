//! Starting and stopping: the head, a node agent, the whole cluster.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mobula::Config;
use mobula::node::{self, ClusterView, JoinInfo};

use crate::TIMEOUT;
use crate::args::{Options, dir_of, remember};

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

pub fn start_blocking(o: &Options) -> Result<(), String> {
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
    if let Some(bytes) = o.build_cache_limit {
        config = config.build_cache_limit(bytes);
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
pub fn agent_blocking(o: &Options) -> Result<(), String> {
    node::run_agent(agent_config(o)).map_err(|e| e.to_string())
}

/// Starts a node agent as a background process and waits until it has joined.
pub fn agent_in_background(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join(format!("node-{}.log", std::process::id()));
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
    if let Some(bytes) = o.build_cache_limit {
        cmd.arg("--build-cache-limit").arg(bytes.to_string());
    }
    let joined = |printed: &str| {
        let line = printed.lines().find(|l| l.starts_with("mobula: joined"));
        line.map(str::to_string)
    };
    let (pid, line) = in_background(cmd, &log_path, "the node", Duration::from_secs(30), joined)?;
    println!("{line} (pid {pid}; its log: {})", log_path.display());
    Ok(())
}

/// Runs `cmd` in the background, its output to `log_path`, until `ready` finds what it
/// waits for (it reads the log so far); the process's id and what was found. Fails, with
/// the log, if the process exits first, and kills it if `wait` passes.
fn in_background<T>(
    mut cmd: Command,
    log_path: &std::path::Path,
    what: &str,
    wait: Duration,
    mut ready: impl FnMut(&str) -> Option<T>,
) -> Result<(u32, T), String> {
    let log =
        std::fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {what}: {e}"))?;
    let deadline = Instant::now() + wait;
    loop {
        let printed = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(found) = ready(&printed) {
            return Ok((child.id(), found));
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let printed = std::fs::read_to_string(log_path).unwrap_or_default();
            return Err(format!("{what} exited ({status}):\n{printed}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "{what} was not ready within {wait:?}; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the head as a background process, waits until it answers, prints how to join.
pub fn start_in_background(o: &Options) -> Result<(), String> {
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
    let answers = |_: &str| node::cluster_status(&dir, Duration::from_millis(500)).ok();
    let (pid, view) = in_background(cmd, &log_path, "the head", Duration::from_secs(15), answers)?;
    let info = node::join_info(&dir).map_err(|e| e.to_string())?;
    remember(&dir);
    print_started(&info, &dir, &view, pid);
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

pub fn stop(o: &Options) -> Result<(), String> {
    let dir = dir_of(o);
    node::stop_cluster(&dir, TIMEOUT).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while node::cluster_status(&dir, Duration::from_millis(300)).is_ok() {
        if Instant::now() > deadline {
            return Err("the head was told to stop but still answers after 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Later commands say at once that no head runs here.
    let _ = std::fs::remove_file(dir.join("head.addr"));
    println!("Stopped the cluster of {}.", dir.display());
    Ok(())
}
