//! The cluster: the head's control plane (membership, heartbeats, failure detection), each
//! node's agent (join, register, heartbeat, run tasks sent to it) and remote task dispatch.
//!
//! - `membership`: pure; who is in the cluster and who died.

pub mod membership;
