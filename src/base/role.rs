//! Who may ask what: the roles a cluster's certificates carry, and the pure decision whether a
//! request from a holder of one is served.
//!
//! A certificate names a node by its id and says its role. The head signs a joining
//! process's certificate as a worker [`Role::Node`] or a [`Role::Driver`], never anything
//! more; its own as [`Role::Head`]. Whoever holds the cluster directory (and so the CA's key)
//! signs itself a short-lived [`Role::Admin`] certificate: that is the `mobula` CLI.

use serde::{Deserialize, Serialize};

/// What a certificate's holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The head: it relays an operator's stop to the nodes.
    Head,
    /// A worker node (`mobula::node::run`, `MOBULA_WORKER`).
    Node,
    /// A driver: a program that joined to submit work (`mobula::init` with an address).
    Driver,
    /// The operator's CLI: it reads the cluster's state and stops it; never a member.
    Admin,
}

impl Role {
    /// The name a certificate carries (its organizational unit).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Head => "mobula-head",
            Role::Node => "mobula-node",
            Role::Driver => "mobula-driver",
            Role::Admin => "mobula-admin",
        }
    }

    /// The role a certificate's name stands for.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Head, Role::Node, Role::Driver, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    /// Whether the join token may get a certificate of this role: a node or a driver only.
    pub fn granted_by_token(self) -> bool {
        matches!(self, Role::Node | Role::Driver)
    }
}

/// What a request asks for, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Becoming or staying a member: registering, heartbeats, renewing a certificate.
    Membership,
    /// Stopping the cluster or this node; `by_own_agent` when the asker is the node agent
    /// that started this process.
    Stop {
        /// Whether the asker started this process.
        by_own_agent: bool,
    },
    /// Reading the cluster's membership or state.
    Read,
    /// Releasing a placement group's bundles; `by_owner` when the asker reserved them.
    ReleaseGroup {
        /// Whether the asker is the node that reserved them.
        by_owner: bool,
    },
    /// Running and stopping programs on the cluster (`mobula job submit`, `stop`).
    Jobs,
    /// Anything else a member does: tasks, actor calls, objects, names, logs.
    Work,
}

/// What the node that serves a request knows of the asker's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A live member.
    Member,
    /// Declared dead (or removed): its certificate is worth nothing any more.
    Dead,
    /// Not in this node's view: on the head, not registered; elsewhere, possibly joined
    /// since this node's last view.
    Unknown,
}

/// Why a request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The asker was declared dead or removed.
    #[error("node was declared dead or removed from the cluster: its certificate is refused")]
    Dead,
    /// The head does not know the asker as a member.
    #[error("not a member of the cluster: register first")]
    NotMember,
    /// Only an admin (the `mobula` CLI, on the head's machine) may stop the cluster or run
    /// and stop jobs.
    #[error("only an admin certificate (the `mobula` CLI) may stop the cluster or run jobs")]
    NotAdmin,
    /// Only the group's owner or an admin may release a placement group.
    #[error("only the placement group's owner or an admin may release it")]
    NotOwner,
    /// An admin certificate reads and stops; it does no work and is no member.
    #[error("an admin certificate may only read the cluster's state, stop it or release groups")]
    AdminDoesNoWork,
}

/// Whether a request is served: `role` from the asker's certificate, `standing` from the
/// serving node's view, `on_head` when the serving node is the head (which knows every
/// member; another node takes an asker it has not heard of yet on its certificate).
pub fn admit(role: Role, standing: Standing, on_head: bool, ask: Ask) -> Result<(), Denied> {
    if role == Role::Admin {
        return match ask {
            Ask::Stop { .. } | Ask::Read | Ask::ReleaseGroup { .. } | Ask::Jobs => Ok(()),
            Ask::Membership | Ask::Work => Err(Denied::AdminDoesNoWork),
        };
    }
    match (standing, ask) {
        (Standing::Dead, _) => return Err(Denied::Dead),
        (Standing::Unknown, Ask::Membership) => {}
        (Standing::Unknown, _) if on_head => return Err(Denied::NotMember),
        _ => {}
    }
    match ask {
        Ask::Jobs => Err(Denied::NotAdmin),
        Ask::Stop {
            by_own_agent: false,
        } if role != Role::Head => Err(Denied::NotAdmin),
        Ask::ReleaseGroup { by_owner: false } => Err(Denied::NotOwner),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOP: Ask = Ask::Stop {
        by_own_agent: false,
    };

    #[test]
    fn only_an_admin_runs_jobs() {
        assert_eq!(
            admit(Role::Admin, Standing::Unknown, true, Ask::Jobs),
            Ok(())
        );
        for role in [Role::Node, Role::Driver, Role::Head] {
            assert_eq!(
                admit(role, Standing::Member, true, Ask::Jobs),
                Err(Denied::NotAdmin)
            );
        }
    }

    #[test]
    fn the_agent_that_started_a_process_may_stop_it() {
        let own = Ask::Stop { by_own_agent: true };
        assert_eq!(admit(Role::Node, Standing::Member, false, own), Ok(()));
        assert_eq!(
            admit(Role::Node, Standing::Member, false, STOP),
            Err(Denied::NotAdmin)
        );
    }

    #[test]
    fn role_names_round_trip_and_others_are_not_roles() {
        for role in [Role::Head, Role::Node, Role::Driver, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert!(Role::Node.granted_by_token() && Role::Driver.granted_by_token());
        assert!(!Role::Admin.granted_by_token() && !Role::Head.granted_by_token());
    }

    #[test]
    fn only_an_admin_or_the_head_relaying_it_stops_the_cluster() {
        use Standing::Member;
        assert_eq!(admit(Role::Admin, Standing::Unknown, true, STOP), Ok(()));
        assert_eq!(admit(Role::Head, Member, false, STOP), Ok(()));
        for role in [Role::Node, Role::Driver] {
            assert_eq!(admit(role, Member, true, STOP), Err(Denied::NotAdmin));
            assert_eq!(admit(role, Member, false, STOP), Err(Denied::NotAdmin));
        }
    }

    #[test]
    fn a_dead_node_is_refused_everything_and_the_head_refuses_strangers() {
        for ask in [Ask::Membership, Ask::Read, Ask::Work, STOP] {
            assert_eq!(
                admit(Role::Node, Standing::Dead, false, ask),
                Err(Denied::Dead)
            );
        }
        assert_eq!(
            admit(Role::Node, Standing::Unknown, true, Ask::Membership),
            Ok(())
        );
        assert_eq!(
            admit(Role::Driver, Standing::Unknown, true, Ask::Work),
            Err(Denied::NotMember)
        );
        // A node that joined since this worker's last view is taken on its certificate.
        assert_eq!(
            admit(Role::Node, Standing::Unknown, false, Ask::Work),
            Ok(())
        );
    }

    #[test]
    fn groups_are_released_by_their_owner_or_an_admin() {
        let other = Ask::ReleaseGroup { by_owner: false };
        let owner = Ask::ReleaseGroup { by_owner: true };
        assert_eq!(
            admit(Role::Driver, Standing::Member, false, other),
            Err(Denied::NotOwner)
        );
        assert_eq!(admit(Role::Driver, Standing::Member, false, owner), Ok(()));
        assert_eq!(admit(Role::Admin, Standing::Unknown, false, other), Ok(()));
    }

    #[test]
    fn an_admin_reads_and_stops_but_does_no_work() {
        for ask in [Ask::Membership, Ask::Work] {
            assert_eq!(
                admit(Role::Admin, Standing::Unknown, true, ask),
                Err(Denied::AdminDoesNoWork)
            );
        }
        assert_eq!(
            admit(Role::Admin, Standing::Unknown, true, Ask::Read),
            Ok(())
        );
    }
}
