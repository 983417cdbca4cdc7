//! Talking to a cluster's nodes as a peer would, over real QUIC: without a certificate (to
//! join), or with one the test got by joining or signed with the cluster's CA. Shared by
//! tests/hostile_peers.rs and tests/spill_back.rs.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use mobula::node::JoinInfo;
use mobula::transport::credentials::{ClusterCa, NODE_NAME, NodeIdentity, NodeKey};
use mobula::transport::endpoint::{Endpoint, Joins};
use mobula::transport::{link, tls};
use mobula::wire::{Message, Role};

/// How long a link may take to be closed; a bound on the wait, not a sleep.
pub const BOUND: Duration = Duration::from_secs(20);

/// A link to `address` from a host without a certificate (it pins the cluster's CA, as a
/// joining node does).
pub async fn uncertified_link(address: SocketAddr, ca_fingerprint: &str) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::join_config(ca_fingerprint, BOUND).unwrap());
    endpoint
        .connect(address, NODE_NAME)
        .unwrap()
        .await
        .expect("the TLS handshake completes on the client's side")
}

/// Where a node listens, as the driver's view says.
pub fn address_of(node: mobula::NodeId) -> SocketAddr {
    mobula::node::nodes()
        .iter()
        .find(|n| n.info.node_id == node)
        .map(|n| n.info.address)
        .expect("the node is listed")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The cluster's CA, from the cluster directory (as the CLI reads it).
pub fn cluster_ca(cluster: &mobula::testing::LocalCluster) -> ClusterCa {
    let read = |name: &str| std::fs::read(cluster.dir().join(name)).unwrap();
    ClusterCa::load(read("ca.der"), &read("ca.key")).unwrap()
}

/// An endpoint presenting `identity`, to send requests as its holder.
pub fn endpoint_of(identity: &NodeIdentity) -> Endpoint {
    Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        identity,
        BOUND,
        Joins::Refused,
    )
    .unwrap()
}

/// Joins the cluster for real, as a host with the token would, asking for `role`.
pub async fn join_as(join: &JoinInfo, role: Role) -> Result<NodeIdentity, String> {
    let key = NodeKey::generate().unwrap();
    let node_id = mobula::NodeId::random();
    let link = uncertified_link(join.address, &join.ca_fingerprint).await;
    let request = Message::Join {
        node_id,
        token: join.token.clone(),
        csr_der: key.csr_der().unwrap(),
        registry: 0,
        role,
    };
    let answer = link::request(&link, &request).await;
    link.close(quinn::VarInt::from_u32(0), b"done");
    match answer {
        Ok((
            Message::JoinAccepted {
                cert_der, ca_der, ..
            },
            _,
        )) => Ok(NodeIdentity {
            node_id,
            cert_der,
            key_der: key.pkcs8_der(),
            ca_der,
        }),
        Ok((other, _)) => Err(format!("answered {}", other.name())),
        Err(e) => Err(e.to_string()),
    }
}

/// How a driver that joined as `identity`, listening on `endpoint`, announces itself: no
/// resources, no build of its own.
pub fn driver_info(identity: &NodeIdentity, endpoint: &Endpoint) -> mobula::wire::NodeInfo {
    mobula::wire::NodeInfo {
        node_id: identity.node_id,
        address: endpoint.local_addr(),
        resources: Vec::new(),
        registry: 0,
        runs_tasks: false,
        role: Role::Driver,
        build: None,
        target: mobula::wire::this_target(),
        agent: false,
        started_by: None,
        job: None,
        entrypoint: String::new(),
    }
}

/// What `address` answers `message` from `endpoint`: the answer's name, or the refusal.
pub async fn ask(endpoint: &Endpoint, address: SocketAddr, message: &Message) -> String {
    match endpoint.request(address, message).await {
        Ok((Message::Refused { reason }, _)) => format!("refused: {reason}"),
        Ok((answer, _)) => answer.name().to_string(),
        Err(e) => format!("failed: {e}"),
    }
}
