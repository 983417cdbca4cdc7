//! A training worker: an actor that runs the user's train loop in place, found by its
//! registered id (every node runs the same binary).

use crate::NodeId;
use crate::runtime::registry::{self, CallHere};

/// One worker of a data-parallel run.
#[crate::actor]
pub struct TrainWorker {
    call: CallHere,
}

#[crate::actor]
impl TrainWorker {
    fn new(function: String) -> Result<Self, String> {
        let found = registry::find(&function).ok_or_else(|| {
            format!(
                "the train loop `{function}` is not a registered remote function of this binary"
            )
        })?;
        Ok(TrainWorker {
            call: found.call_here,
        })
    }

    /// Its node.
    fn node(&self) -> NodeId {
        crate::context().node_id().expect("a runtime runs")
    }

    /// Runs the train loop to its end with its encoded config and context.
    fn run(&self, config: Vec<u8>, context: Vec<u8>) -> Result<(), String> {
        (self.call)(&[config, context]).map(drop).map_err(|e| e.0)
    }
}
