//! The public face of the runtime: configuration, object refs, remote functions and the free
//! functions (`put`, `get_all`, `wait`, `cancel`, `context`).

pub(crate) mod actor;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod function;
pub mod kv;
pub mod node;
pub(crate) mod ops;
pub(crate) mod placement_group;
