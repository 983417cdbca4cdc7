//! For tests: a cluster of several nodes inside one process, fault injection, and the object
//! codec for fuzzing.

pub mod codec;
mod local_cluster;

pub use local_cluster::LocalCluster;

/// Builds served to peers: how many transfers this process served, and faults to inject in
/// the next ones (a corrupt or truncated transfer, which the fetching node must refuse).
pub mod builds {
    pub use crate::cluster::builds::faults::spoil_next_transfers;
    pub use crate::cluster::builds::transfers_served;
}

use crate::runtime::panic::WorkerKill;

/// Kills the worker running the current task, as a crash of a Ray worker process would (Ray's
/// own tests call `os._exit` inside a task for this). The worker thread really exits and the
/// pool replaces it; the task's attempt is lost, a system failure, and it is retried if its
/// `max_retries` allows.
///
/// Only meaningful inside a task; anywhere else it unwinds the calling thread.
pub fn kill_current_worker() -> ! {
    std::panic::resume_unwind(Box::new(WorkerKill))
}
