//! The scheduler's pure state (`base::scheduling::tasks`) for this runtime's tasks: a task
//! is a [`TaskSpec`], a running async attempt is stopped through its task actor's address.

use actix::Addr;

use crate::base::function::FunctionDescriptor;
use crate::base::id::{ObjectId, TaskId};
use crate::base::options::ResolvedOptions;
use crate::base::scheduling::tasks::{self, QueuedTask};
use crate::runtime::task_actor::TaskActor;
use crate::runtime::task_spec::TaskSpec;

pub(crate) use crate::base::scheduling::tasks::{Ended, PlaceReply};

/// The node's scheduler state.
pub(crate) type SchedState = tasks::SchedState<TaskSpec, Addr<TaskActor>>;
/// Start one attempt of a task.
pub(crate) type Start = tasks::Start<TaskSpec>;
/// What the scheduler must do after an event.
pub(crate) type Action = tasks::Action<TaskSpec, Addr<TaskActor>>;

impl QueuedTask for TaskSpec {
    fn id(&self) -> TaskId {
        self.id
    }

    fn return_id(&self) -> ObjectId {
        self.return_id
    }

    fn function(&self) -> &'static FunctionDescriptor {
        self.function
    }

    fn options(&self) -> &ResolvedOptions {
        &self.options
    }
}
