//! The requests a node serves: from joining nodes and peers, and on the head the control
//! plane's (joins, registration, heartbeats, names); long exchanges (task and actor channels)
//! are handed to their modules.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::head::{self, HeadState};
use super::head_db::Change;
use super::node::ClusterNode;
use crate::base::id::{NodeId, TaskId};
use crate::base::role::{Ask, Role, Standing, admit};
use crate::base::scheduling::resources::ResourceRequest;
use crate::runtime::scheduler::bundles::{release_here, reserve_here};
use crate::transport::credentials::{Grant, token_matches};
use crate::transport::endpoint::{Peer, reply};
use crate::transport::link;
use crate::wire::{Message, TaskOutcome, WireBundle};

/// Reserves bundles another node's placement group put here; answers once all are reserved.
async fn reserve_for_peer(
    node: &Arc<ClusterNode>,
    owner: NodeId,
    group: String,
    bundles: Vec<WireBundle>,
) -> Message {
    let mut local = Vec::with_capacity(bundles.len());
    for (index, resources) in bundles {
        match ResourceRequest::from_list(&resources) {
            Ok(req) => local.push((index as usize, req, node.ids.task())),
            Err(why) => return refused(format!("bundle {index}: {why}")),
        }
    }
    {
        let mut hosted = node.hosted_groups.lock().unwrap_or_else(|e| e.into_inner());
        if hosted
            .get(&group)
            .is_some_and(|(held_by, _)| *held_by != owner)
        {
            return refused(format!(
                "placement group {group} has bundles here for another node"
            ));
        }
        hosted.insert(group.clone(), (owner, local.clone()));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let count = local.len();
    reserve_here(
        &node.scheduler,
        &group,
        &local,
        Arc::new(move |_, result| {
            let _ = tx.send(result);
        }),
    );
    for _ in 0..count {
        match rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(why)) => return refused(why),
            None => return refused("the reservation was dropped"),
        }
    }
    Message::Ack
}

/// Answers a fetch: a [`Message::TaskDone`] with the value (streamed when large), or why not.
async fn answer_value(mut tx: quinn::SendStream, task: TaskId, value: Result<Vec<u8>, String>) {
    match value {
        Ok(bytes) => {
            let wrap = |outcome| Message::TaskDone { task, outcome };
            if link::send_outcome(&mut tx, TaskOutcome::Value(bytes), wrap)
                .await
                .is_ok()
            {
                let _ = tx.finish();
            }
        }
        Err(why) => reply(tx, &refused(why)).await,
    }
}

/// The head signs a certificate request for `node` in `role`, for its certificates' lifetime.
fn certify(state: &HeadState, csr_der: &[u8], node: NodeId, role: Role) -> Message {
    let grant = Grant::new(
        node,
        role,
        std::time::SystemTime::now(),
        state.certificate_lifetime,
    );
    match state.ca.sign(csr_der, &grant) {
        Ok(cert_der) => Message::JoinAccepted {
            node_id: node,
            cert_der,
            ca_der: state.ca.cert_der().to_vec(),
        },
        Err(e) => refused(format!("bad certificate request: {e}")),
    }
}

fn refused(reason: impl Into<String>) -> Message {
    Message::Refused {
        reason: reason.into(),
    }
}

/// What a request asks for, as far as permissions go.
fn ask_of(node: &ClusterNode, from: NodeId, message: &Message) -> Ask {
    match message {
        Message::Register(_) | Message::Heartbeat { .. } | Message::Renew { .. } => Ask::Membership,
        Message::Status | Message::State(_) | Message::NodeState(_) | Message::JobLogs { .. } => {
            Ask::Read
        }
        Message::SubmitJob { .. } | Message::UploadBuild(_) | Message::StopJob(_) => Ask::Jobs,
        Message::Shutdown { .. } => Ask::Stop {
            by_own_agent: node.info().started_by == Some(from),
        },
        Message::ReleaseBundles { group } => Ask::ReleaseGroup {
            by_owner: node
                .hosted_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(group)
                .is_none_or(|(owner, _)| *owner == from),
        },
        _ => Ask::Work,
    }
}

/// Serves one request: a join from a peer without a certificate; anything else from a peer
/// whose certificate's role and standing in the membership allow it.
pub(super) async fn handle(
    node: Arc<ClusterNode>,
    peer: Peer,
    message: Message,
    tx: quinn::SendStream,
    rx: quinn::RecvStream,
) {
    if let (Some(from), Some(role)) = (peer.node, peer.role) {
        let standing = node.standing_of(from);
        let ask = ask_of(&node, from, &message);
        if let Err(denied) = admit(role, standing, node.head_state.is_some(), ask) {
            tracing::warn!(from = %from, role = role.as_str(), "refused {}: {denied}", message.name());
            return reply(tx, &refused(format!("{}: {denied}", message.name()))).await;
        }
    }
    serve(node, peer, message, tx, rx).await
}

async fn serve(
    node: Arc<ClusterNode>,
    peer: Peer,
    message: Message,
    mut tx: quinn::SendStream,
    rx: quinn::RecvStream,
) {
    let name = message.name();
    let answer = match (peer.node, message) {
        (
            _,
            Message::Join {
                node_id,
                token,
                csr_der,
                registry: _,
                role,
            },
        ) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                if !token_matches(&state.token, &token) {
                    tracing::warn!(from = %peer.address, "refused a join: wrong token");
                    refused("wrong join token")
                } else if !role.granted_by_token() {
                    tracing::warn!(from = %peer.address, "refused a join as {}", role.as_str());
                    refused(format!(
                        "the join token grants a node or a driver, not {}",
                        role.as_str()
                    ))
                } else if let Err(e) = state.membership.check_join(node_id) {
                    tracing::warn!(from = %peer.address, "refused a join: {e}");
                    refused(e.to_string())
                } else {
                    certify(&state, &csr_der, node_id, role)
                }
            }
        },
        (None, other) => {
            tracing::warn!(from = %peer.address, "refused {} from a peer without a certificate", other.name());
            refused("join the cluster first")
        }
        (Some(from), Message::Register(mut info)) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(_) if info.node_id != from => refused("a node registers only itself"),
            Some(state) => {
                if info.address.ip().is_unspecified() {
                    info.address.set_ip(peer.address.ip());
                }
                // What it is comes from its certificate, not from what it says.
                info.role = peer.role.unwrap_or(Role::Driver);
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let now = state.now_ms();
                let driver = (info.role == Role::Driver).then(|| {
                    let build = info.build.as_ref().map(|b| b.id);
                    (info.job, info.entrypoint.clone(), build)
                });
                let record = info.clone();
                match state.membership.register(info, now) {
                    // Acknowledged once durable: a restarted head knows the member.
                    Ok(())
                        if let Err(e) = state.db.commit(vec![Change::Member {
                            info: record,
                            version: state.membership.version(),
                        }]) =>
                    {
                        // Not recorded, so not a member: the node is refused, and no live
                        // entry of it stays behind in memory either.
                        tracing::error!("{e}");
                        state.membership.leave(from, now);
                        refused(e.to_string())
                    }
                    Ok(()) => {
                        if let Some((job, entrypoint, build)) = driver {
                            let unix = super::jobs::unix_ms();
                            let job = state.change_jobs(|jobs| {
                                jobs.driver_joined(from, job, entrypoint, build, unix)
                            });
                            tracing::info!(%job, driver = %from, "a driver connected");
                        }
                        let view = state.membership.view();
                        node.set_view(view.clone());
                        Message::View(view)
                    }
                    Err(e) => refused(e.to_string()),
                }
            }
        },
        (
            Some(from),
            Message::Heartbeat {
                node_id,
                available,
                load,
                view_version,
            },
        ) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(_) if node_id != from => refused("a node reports only itself"),
            Some(state) => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let now = state.now_ms();
                match state
                    .membership
                    .heartbeat(node_id, available, load, view_version, now)
                {
                    // Every answer carries the view: loads and free resources change
                    // between membership changes, and placement reads them.
                    Ok(_) => Message::View(state.membership.view()),
                    Err(e) => refused(e.to_string()),
                }
            }
        },
        (Some(from), Message::Renew { csr_der }) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(_) if node.standing_of(from) != Standing::Member => {
                refused("only a live member renews its certificate")
            }
            Some(state) => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                // The role stays what the member joined as.
                certify(&state, &csr_der, from, peer.role.unwrap_or(Role::Driver))
            }
        },
        (Some(_), Message::Status) => Message::View(node.view()),
        (Some(from), Message::Leave) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => {
                let view = {
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    let now = state.now_ms();
                    if state.membership.leave(from, now) {
                        tracing::info!(node = %from, "node left the cluster");
                        state.forget_nodes(&[from]);
                        let now = super::jobs::unix_ms();
                        state.change_jobs(|jobs| jobs.driver_gone(from, false, now));
                    }
                    state.membership.view()
                };
                node.set_view(view);
                Message::Ack
            }
        },
        (Some(from), Message::FetchBuild { build, offset }) => {
            if let Err(why) = node.builds.serve(build, offset, &mut tx).await {
                tracing::warn!(%build, to = %from, "not serving a build: {why}");
                return reply(tx, &refused(why)).await;
            }
            return;
        }
        (Some(_), Message::SubmitJob { build, args }) => super::jobs::submit(&node, build, args),
        (Some(_), Message::UploadBuild(build)) => {
            let mut rx = rx;
            match node.builds.receive(&build, &mut rx).await {
                Ok(_) => Message::Ack,
                Err(why) => refused(format!("the upload of build {} failed: {why}", build.id)),
            }
        }
        (Some(_), Message::JobLogs { job, offset }) => super::jobs::output(&node, job, offset),
        (Some(_), Message::StopJob(job)) => super::jobs::stop(&node, job),
        (Some(from), Message::SetResources(resources)) => {
            if node.info().started_by != Some(from) {
                refused("only the agent that started this process sets its resources")
            } else {
                node.set_resources(resources).await
            }
        }
        (Some(_), Message::Shutdown { reason }) => {
            tracing::info!("asked to stop: {reason}");
            node.draining.store(true, Ordering::Release);
            // Answer first, and let the answer arrive, before the links close.
            if link::send(&mut tx, &Message::Ack).await.is_ok() && tx.finish().is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(500), tx.stopped()).await;
            }
            if node.head_state.is_some() {
                node.clone().leave().await;
            }
            node.shutdown.notify_one();
            return;
        }
        (Some(from), Message::OpenTasks) => {
            super::tasks::serve(node.clone(), from, tx, rx).await;
            return;
        }
        (
            Some(_),
            Message::NameActor {
                namespace,
                name,
                class,
                actor,
                node: host,
            },
        ) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => head::name_actor(state, (namespace, name), (actor, class, host)).await,
        },
        (
            Some(_),
            Message::UnnameActor {
                namespace,
                name,
                actor,
            },
        ) => match &node.head_state {
            None => Message::Ack,
            Some(state) => head::unname_actor(state, (namespace, name), actor).await,
        },
        (
            Some(_),
            Message::ActorAt {
                actor,
                class,
                node: at,
            },
        ) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => head::actor_at(state, actor, class, at).await,
        },
        (Some(_), Message::ActorGone { actor }) => match &node.head_state {
            None => Message::Ack,
            Some(state) => head::actor_gone(state, actor).await,
        },
        (Some(_), Message::LocateActor { actor }) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => head::locate_actor(state, actor).await,
        },
        (Some(from), Message::RecordGroup(group)) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(_) if group.creator != from => refused("a node records only groups it made"),
            Some(state) => head::record_group(state, group).await,
        },
        (Some(from), Message::ForgetGroup { group }) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => head::forget_group(state, group, from).await,
        },
        (
            Some(_),
            request @ (Message::KvPut { .. }
            | Message::KvGet { .. }
            | Message::KvDelete { .. }
            | Message::KvList { .. }),
        ) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .kv_request(request),
        },
        (Some(_), Message::FindActor { namespace, name }) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(state) => head::find_actor(state, (namespace, name)).await,
        },
        (Some(from), Message::FetchObject { task }) => {
            let held = node.take_held(from, task).ok_or_else(|| {
                format!(
                    "node {} holds no value of task {task} for node {from}",
                    node.node_id
                )
            });
            return answer_value(tx, task, held).await;
        }
        (Some(_), Message::FetchStored { object }) => {
            let stored = super::objects::stored_bytes(object).await;
            return answer_value(tx, TaskId::NIL, stored).await;
        }
        (Some(from), Message::ReleaseObject { task }) => {
            drop(node.take_held(from, task));
            Message::Ack
        }
        (Some(from), Message::ReserveBundles { group, bundles }) => {
            reserve_for_peer(&node, from, group, bundles).await
        }
        (Some(_), Message::ReleaseBundles { group }) => {
            // Who may release was checked in `handle`.
            let hosted = node
                .hosted_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&group);
            if let Some((_, bundles)) = hosted {
                release_here(&node.scheduler, &group, &bundles);
            }
            Message::Ack
        }
        (Some(_), Message::State(query)) => match &node.head_state {
            None => refused("this node is not the head"),
            Some(_) => super::state::gather(&node, query).await,
        },
        (Some(_), Message::NodeState(query)) => Message::StateReports {
            reports: vec![super::state::own(&node, &query)],
            missing: Vec::new(),
        },
        (Some(_), Message::Logs { lines }) => {
            super::logs::receive(&lines);
            Message::Ack
        }
        (Some(from), Message::OpenGenerator { generator }) => {
            super::generators::receive_items(node.clone(), from, generator, tx, rx).await;
            return;
        }
        (Some(_), Message::Mail { letter, len }) => {
            let mut rx = rx;
            super::mail::receive(&node, letter, len, &mut rx).await
        }
        (
            Some(_),
            Message::MailFailed {
                group,
                generation,
                reason,
            },
        ) => super::mail::failed(&node, group, generation, reason),
        (Some(from), Message::OpenActor(open)) => {
            super::actors::serve(node.clone(), from, open, tx, rx).await;
            return;
        }
        (Some(from), other) => {
            tracing::warn!(from = %from, "unexpected {} request", other.name());
            refused(format!("{name} is not a request"))
        }
    };
    reply(tx, &answer).await;
}
