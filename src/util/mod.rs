//! Utilities built on the public API only, as Ray's `ray.util`: a pool of actors to spread
//! work over, and a queue shared by tasks and actors.

mod actor_pool;
mod queue;

pub use actor_pool::ActorPool;
pub use queue::{Queue, QueueError};
