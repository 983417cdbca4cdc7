//! Where a captured line goes: into its node's [`LogBook`], and to the terminal of the
//! driver its task or actor works for: printed in place when that is this node, otherwise
//! put in the node's outbox, which the cluster layer sends on (`cluster::logs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::book::LogBook;
use crate::base::id::NodeId;
use crate::base::log_line::{LogLine, LogStream};
use crate::runtime::global::Runtime;

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
    /// Batches taken for each driver and not yet sent (or given up).
    in_flight: HashMap<NodeId, u32>,
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

    /// What gathered for other nodes' terminals, by driver; `None` when nothing did, which
    /// ends the flush under way (the next line starts another).
    pub fn take_pending(&self) -> Option<HashMap<NodeId, Vec<LogLine>>> {
        let mut out = self.outbox();
        if out.pending.is_empty() {
            out.flushing = false;
            return None;
        }
        let batch = std::mem::take(&mut out.pending);
        for driver in batch.keys() {
            *out.in_flight.entry(*driver).or_default() += 1;
        }
        Some(batch)
    }

    /// What gathered for one driver's terminal, taken to be sent now (see [`sent`]); `None`
    /// while lines for it are on their way already (wait for them first).
    ///
    /// [`sent`]: Self::sent
    pub fn take_for(&self, driver: NodeId) -> Option<Vec<LogLine>> {
        let mut out = self.outbox();
        if out.in_flight.contains_key(&driver) {
            return None;
        }
        let lines = out.pending.remove(&driver).unwrap_or_default();
        if !lines.is_empty() {
            *out.in_flight.entry(driver).or_default() += 1;
        }
        Some(lines)
    }

    /// A batch taken for `driver` was sent, put back or given up.
    pub fn sent(&self, driver: NodeId) {
        let mut out = self.outbox();
        if let Some(n) = out.in_flight.get_mut(&driver) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                out.in_flight.remove(&driver);
            }
        }
    }

    /// Marks a flush as on its way unless one is; whether this call did (and so must run it).
    pub fn claim_flush(&self) -> bool {
        !std::mem::replace(&mut self.outbox().flushing, true)
    }

    /// Lines that could not go yet, back in front of what came since, in order.
    pub fn put_back(&self, waiting: Vec<(NodeId, Vec<LogLine>)>) {
        let mut out = self.outbox();
        for (driver, mut lines) in waiting {
            let newer = out.pending.entry(driver).or_default();
            lines.append(newer);
            *newer = lines;
        }
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
        Arc::clone(cluster).ship_logs(rt);
    }
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
