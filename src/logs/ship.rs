//! Where a captured line goes: into its node's [`LogBook`], and to the terminal of the
//! driver its task or actor works for: printed in place when that is this node, otherwise
//! gathered for a moment and sent there in one message per driver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::book::LogBook;
use crate::base::id::NodeId;
use crate::base::log_line::{LogLine, LogStream};
use crate::runtime::global::Runtime;

/// How long lines bound for another node gather before they go, so that a loop of prints
/// travels as a few messages rather than one per line.
const GATHER: Duration = Duration::from_millis(20);

/// A node's logs: what its tasks wrote, and what waits to go to other nodes' terminals.
#[derive(Debug)]
pub(crate) struct NodeLogs {
    pub book: LogBook,
    /// Whether lines for this node's terminal are printed (Ray's `log_to_driver`).
    pub to_terminal: bool,
    outbox: Mutex<Outbox>,
    /// Lines that could not reach their driver.
    pub undelivered: AtomicU64,
}

#[derive(Debug, Default)]
struct Outbox {
    pending: HashMap<NodeId, Vec<LogLine>>,
    /// A flush is on its way.
    flushing: bool,
}

impl NodeLogs {
    pub fn new(to_terminal: bool) -> Self {
        NodeLogs {
            book: LogBook::default(),
            to_terminal,
            outbox: Mutex::default(),
            undelivered: AtomicU64::new(0),
        }
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lines that arrived from another node for this node's terminal.
    pub fn arrived(&self, lines: &[LogLine]) {
        if self.to_terminal {
            for line in lines {
                emit(line);
            }
        }
    }
}

/// Keeps `line` in `rt`'s book and sends it on to the terminal of `log_to`.
pub(crate) fn keep(rt: &Runtime, line: LogLine, log_to: NodeId) {
    let line = rt.logs.book.push(line);
    if log_to == rt.node_id {
        if rt.logs.to_terminal {
            emit(&line);
        }
        return;
    }
    let Some(cluster) = rt.cluster.get() else {
        // Not in a cluster (any more): no other terminal to reach.
        rt.logs.undelivered.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let start = {
        let mut out = rt.logs.outbox();
        out.pending.entry(log_to).or_default().push(line);
        !std::mem::replace(&mut out.flushing, true)
    };
    if start {
        let (cluster, logs) = (Arc::clone(cluster), Arc::clone(&rt.logs));
        rt.node_arbiter.spawn_fn(move || {
            actix_rt::spawn(flush(cluster, logs));
        });
    }
}

/// Sends what gathered, driver by driver, until nothing is left. Lines for a driver this node
/// does not know yet (it joined a moment ago) wait for it, up to [`UNKNOWN_WAIT`].
async fn flush(cluster: Arc<crate::cluster::node::ClusterNode>, logs: Arc<NodeLogs>) {
    let mut unknown_since: HashMap<NodeId, Instant> = HashMap::new();
    tokio::time::sleep(GATHER).await;
    loop {
        let batch = {
            let mut out = logs.outbox();
            if out.pending.is_empty() {
                out.flushing = false;
                return;
            }
            std::mem::take(&mut out.pending)
        };
        let mut waiting = Vec::new();
        for (driver, lines) in batch {
            let count = lines.len() as u64;
            match crate::cluster::logs::send(&cluster, driver, lines).await {
                Ok(()) => {
                    unknown_since.remove(&driver);
                }
                Err(Undelivered::Unknown(lines))
                    if unknown_since
                        .entry(driver)
                        .or_insert_with(Instant::now)
                        .elapsed()
                        < UNKNOWN_WAIT =>
                {
                    waiting.push((driver, lines));
                }
                Err(why) => {
                    unknown_since.remove(&driver);
                    logs.undelivered.fetch_add(count, Ordering::Relaxed);
                    tracing::debug!(%driver, "{count} log lines did not reach their driver: {why}");
                }
            }
        }
        if !waiting.is_empty() {
            {
                // Back in front of what came since, in order.
                let mut out = logs.outbox();
                for (driver, mut lines) in waiting {
                    let newer = out.pending.entry(driver).or_default();
                    lines.append(newer);
                    *newer = lines;
                }
            }
            tokio::time::sleep(GATHER * 5).await;
        }
    }
}

/// How long lines wait for a driver this node has not heard of.
const UNKNOWN_WAIT: Duration = Duration::from_secs(10);

/// Why lines did not reach their driver.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undelivered {
    /// The node is not (yet) a live member in this node's view; the lines come back.
    #[error("it is not a live member of the cluster")]
    Unknown(Vec<LogLine>),
    /// It could not be reached, or did not take them.
    #[error("{0}")]
    Failed(String),
}

/// Prints `line` on this process's terminal, with its prefix: standard output for what was
/// printed there, standard error for the rest.
pub(crate) fn emit(line: &LogLine) {
    use std::io::Write as _;
    let text = line.render();
    let _ = match line.stream {
        LogStream::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
        LogStream::Stderr | LogStream::Tracing => writeln!(std::io::stderr().lock(), "{text}"),
    };
}
