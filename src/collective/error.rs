//! What a collective operation can fail with.

/// Why a collective operation, or making a group, failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectiveError {
    /// No runtime runs in this process.
    #[error("mobula is not initialized")]
    NotInitialized,
    /// The caller is not a member of a group of that name.
    #[error(
        "no collective group \"{0}\" for this member: create it with create_collective_group or \
         init_collective_group first"
    )]
    NoGroup(String),
    /// The members could not find each other.
    #[error("collective group \"{group}\" could not be formed: {reason}")]
    Rendezvous {
        /// The group.
        group: String,
        /// Why.
        reason: String,
    },
    /// The group failed: a member died or a letter was lost. Every pending and later
    /// operation of the group fails with this; destroy it and make a new one.
    #[error("collective group \"{group}\" failed: {reason}")]
    GroupFailed {
        /// The group.
        group: String,
        /// Why, naming the member.
        reason: String,
    },
    /// A bad argument: a rank out of range, buffers of the wrong length.
    #[error("{0}")]
    Invalid(String),
}
