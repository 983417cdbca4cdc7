//! Identifiers of nodes, tasks and objects.
//!
//! A node picks a random 64-bit prefix when it starts; task and object ids are that prefix
//! followed by a per-node counter. Minting an id is one atomic increment: no lock, no system
//! call, no random number on the submit path. The prefix tells which node minted (and owns) an
//! id, which the cluster layer uses to find an object's owner.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! counter_id {
    ($(#[$doc:meta])* $name:ident, $short:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(u128);

        impl $name {
            /// The id that names nothing (the id of a ref made while no runtime ran).
            pub const NIL: Self = Self(0);

            pub(crate) const fn from_parts(prefix: u64, seq: u64) -> Self {
                Self(((prefix as u128) << 64) | seq as u128)
            }

            /// The 64-bit prefix of the node that minted this id.
            pub const fn node_prefix(self) -> u64 {
                (self.0 >> 64) as u64
            }

            /// The per-node sequence number of this id.
            pub const fn sequence(self) -> u64 {
                self.0 as u64
            }

            /// The id as one 128-bit number.
            pub const fn as_u128(self) -> u128 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}{:08x}", self.node_prefix(), self.sequence())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($short, "({})"), self)
            }
        }
    };
}

counter_id!(
    /// Names one object in the object store: a `put` value or a task's return value.
    ObjectId,
    "ObjectId"
);
counter_id!(
    /// Names one task submission. Retries of a task keep its id.
    TaskId,
    "TaskId"
);
counter_id!(
    /// Names one actor. Restarts keep its id.
    ActorId,
    "ActorId"
);

/// Names one node (one running Mobula runtime).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(uuid::Uuid);

impl NodeId {
    /// A new random id (what a node takes when it starts).
    pub fn random() -> Self {
        NodeId(uuid::Uuid::new_v4())
    }

    /// The prefix that ids minted by this node carry.
    pub(crate) fn prefix(self) -> u64 {
        let (hi, lo) = self.0.as_u64_pair();
        hi ^ lo.rotate_left(17)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl std::str::FromStr for NodeId {
    type Err = uuid::Error;

    /// Parses the form `Display` prints (or any uuid form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(NodeId)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0.simple())
    }
}

/// Mints task, actor and object ids for one node (tasks and actors from one sequence).
#[derive(Debug)]
pub(crate) struct IdMint {
    prefix: u64,
    next_object: AtomicU64,
    next_task: AtomicU64,
}

impl IdMint {
    pub(crate) fn new(node: NodeId) -> Self {
        IdMint {
            prefix: node.prefix(),
            next_object: AtomicU64::new(1),
            next_task: AtomicU64::new(1),
        }
    }

    pub(crate) fn object(&self) -> ObjectId {
        ObjectId::from_parts(
            self.prefix,
            self.next_object.fetch_add(1, Ordering::Relaxed),
        )
    }

    pub(crate) fn task(&self) -> TaskId {
        TaskId::from_parts(self.prefix, self.next_task.fetch_add(1, Ordering::Relaxed))
    }

    /// An actor's id: from the tasks' sequence, so that no task and actor of a cluster share
    /// an id (`mobula logs ID` names one of them).
    pub(crate) fn actor(&self) -> ActorId {
        ActorId::from_parts(self.prefix, self.next_task.fetch_add(1, Ordering::Relaxed))
    }
}

/// A hasher for ids: ids are unique counters, so one multiply spreads them well; SipHash would
/// cost more than the table lookup it serves.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Debug)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_carry_the_node_prefix_and_count_up() {
        let node = NodeId::random();
        let mint = IdMint::new(node);
        let a = mint.object();
        let b = mint.object();
        assert_eq!(a.node_prefix(), node.prefix());
        assert_eq!(b.sequence(), a.sequence() + 1);
        assert_ne!(mint.task().as_u128(), mint.task().as_u128());
    }

    #[test]
    fn display_is_fixed_width_hex() {
        let id = ObjectId::from_parts(0xab, 0x10);
        assert_eq!(id.to_string(), "00000000000000ab00000010");
        assert_eq!(format!("{id:?}"), "ObjectId(00000000000000ab00000010)");
    }

    #[test]
    fn id_hash_spreads_sequential_ids_over_buckets() {
        let mut buckets = HashSet::new();
        for seq in 0..1024u64 {
            let mut h = IdHash.build_hasher();
            h.write_u128(ObjectId::from_parts(7, seq).as_u128());
            buckets.insert(h.finish() >> 57); // the 7 bits a SwissTable uses as a tag
        }
        assert!(buckets.len() > 100, "only {} distinct tags", buckets.len());
    }
}
