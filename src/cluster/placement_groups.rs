//! Placement groups across nodes, the parts a node asks of others: the room each node has
//! for bundles, and reserving and releasing bundles on another node. (The bundles a node
//! hosts for others are reserved through its scheduler, `runtime::scheduler::bundles`; the
//! requests are served in `serve`.)

use std::sync::Arc;

use super::node::ClusterNode;
use crate::base::id::NodeId;
use crate::base::scheduling::bundles::Room;
use crate::base::scheduling::resources::UNIT;
use crate::wire::{Message, WireBundle};

impl ClusterNode {
    /// Every alive node that runs tasks, with its total resources, as room for a placement
    /// group's bundles; this node first.
    pub fn rooms(&self) -> Vec<Room> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        let mut rooms: Vec<Room> = view
            .nodes
            .iter()
            .filter(|n| n.alive && n.info.runs_tasks)
            .map(|n| {
                let units = |a: f64| (a * UNIT as f64).round() as i64;
                let mut room = Room {
                    node: n.info.node_id,
                    cpu: 0,
                    gpu: 0,
                    custom: Default::default(),
                };
                for (name, amount) in &n.info.resources {
                    match name.as_str() {
                        "CPU" => room.cpu = units(*amount),
                        "GPU" => room.gpu = units(*amount),
                        other => {
                            room.custom.insert(Arc::from(other), units(*amount));
                        }
                    }
                }
                room
            })
            .collect();
        rooms.sort_by_key(|r| r.node != self.node_id);
        rooms
    }

    /// Asks `node` to reserve bundles of placement group `group`; returns once they are.
    pub async fn reserve_bundles(
        &self,
        node: NodeId,
        group: String,
        bundles: Vec<WireBundle>,
    ) -> Result<(), String> {
        let address = self.find(node).await.map_err(|e| e.to_string())?;
        let message = Message::ReserveBundles { group, bundles };
        match self.endpoint.request(address, &message).await {
            Ok((Message::Ack, _)) => Ok(()),
            Ok((other, _)) => Err(format!("node {node} answered {}", other.name())),
            Err(e) => Err(format!("node {node}: {e}")),
        }
    }

    /// Tells `node` to give back what it reserved for `group`.
    pub async fn release_bundles(&self, node: NodeId, group: String) {
        if let Ok(address) = self.find(node).await {
            let message = Message::ReleaseBundles { group };
            let _ = self.endpoint.request(address, &message).await;
        }
    }
}
