//! Peers that are not what they should be, over real QUIC on loopback: a host without a
//! certificate may only ask a head to join, once, in a small frame; anything else closes its
//! link, and a worker node does not take it at all. The cluster keeps serving.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use mobula::Config;
use mobula::transport::credentials::NODE_NAME;
use mobula::transport::endpoint::{CLOSED_UNAUTHENTICATED, MAX_JOINING};
use mobula::transport::tls;
use mobula::wire::{self, Message};

#[mobula::remote]
fn double(x: u64) -> u64 {
    x * 2
}

/// How long a link may take to be closed; a bound on the wait, not a sleep.
const BOUND: Duration = Duration::from_secs(20);

/// A link to `address` from a host without a certificate (it pins the cluster's CA, as a
/// joining node does).
async fn uncertified_link(address: SocketAddr, ca_fingerprint: &str) -> quinn::Connection {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(tls::join_config(ca_fingerprint, BOUND).unwrap());
    endpoint
        .connect(address, NODE_NAME)
        .unwrap()
        .await
        .expect("the TLS handshake completes on the client's side")
}

/// Waits for the link to be closed and says how.
async fn closed(connection: &quinn::Connection) -> quinn::ConnectionError {
    tokio::time::timeout(BOUND, connection.closed())
        .await
        .expect("the node closes the link")
}

fn closed_for_being_uncertified(error: &quinn::ConnectionError) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(c)
        if c.error_code == CLOSED_UNAUTHENTICATED)
}

/// Writes raw bytes on a new stream.
async fn send_raw(connection: &quinn::Connection, bytes: &[u8]) {
    if let Ok((mut tx, _rx)) = connection.open_bi().await {
        let _ = tx.write_all(bytes).await;
        let _ = tx.finish();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_host_without_a_certificate_may_only_ask_a_head_to_join() {
    let _turn = turn();
    let (cluster, workers, _driver) = local_cluster(
        Config::default().num_cpus(0),
        || Config::default().num_cpus(1),
        1,
        |c| c.num_cpus(0),
    );
    let join = cluster.join_info().clone();
    let worker_address = mobula::node::nodes()
        .iter()
        .find(|n| n.info.node_id == workers[0])
        .map(|n| n.info.address)
        .expect("the worker is listed");
    let rt = runtime();

    // A request other than a join, well formed: the link is closed, not answered.
    let heartbeat = wire::encode(&Message::Ack).unwrap();
    let link = rt.block_on(uncertified_link(join.address, &join.ca_fingerprint));
    let why = rt.block_on(async {
        send_raw(&link, &heartbeat).await;
        closed(&link).await
    });
    assert!(closed_for_being_uncertified(&why), "{why}");

    // A frame announced larger than a join can be: closed before its body is read.
    let link = rt.block_on(uncertified_link(join.address, &join.ca_fingerprint));
    let why = rt.block_on(async {
        send_raw(&link, &(1u32 << 20).to_le_bytes()).await;
        closed(&link).await
    });
    assert!(closed_for_being_uncertified(&why), "{why}");

    // Garbage, and a frame cut short: closed.
    for bytes in [
        &[7u8, 0, 0, 0, 0xff, 0xfe, 0xfd][..],
        &heartbeat[..heartbeat.len() - 1],
    ] {
        let link = rt.block_on(uncertified_link(join.address, &join.ca_fingerprint));
        let why = rt.block_on(async {
            send_raw(&link, bytes).await;
            closed(&link).await
        });
        assert!(closed_for_being_uncertified(&why), "{why}");
    }

    // Thousands of streams, each announcing a full-size frame: the first closes the link.
    let link = rt.block_on(uncertified_link(join.address, &join.ca_fingerprint));
    let why = rt.block_on(async {
        let prefix = (wire::MAX_FRAME as u32).to_le_bytes();
        for _ in 0..2000 {
            match link.open_bi().await {
                Ok((mut tx, _rx)) => {
                    if tx.write_all(&prefix).await.is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        closed(&link).await
    });
    assert!(closed_for_being_uncertified(&why), "{why}");

    // More hosts at once than a head lets wait to join: those past the limit are closed at
    // once saying so; the others (which say nothing) when their time to ask runs out.
    let extra = 4;
    let reasons = rt.block_on(async {
        let mut links = Vec::new();
        for _ in 0..MAX_JOINING + extra {
            links.push(uncertified_link(join.address, &join.ca_fingerprint).await);
        }
        let mut reasons = Vec::new();
        for link in &links {
            match closed(link).await {
                quinn::ConnectionError::ApplicationClosed(c)
                    if c.error_code == CLOSED_UNAUTHENTICATED =>
                {
                    reasons.push(String::from_utf8_lossy(&c.reason).to_string())
                }
                other => panic!("closed otherwise: {other}"),
            }
        }
        reasons
    });
    let turned_away = reasons
        .iter()
        .filter(|r| r.as_str() == "too many peers joining")
        .count();
    assert_eq!(turned_away, extra, "{reasons:?}");

    // A worker node takes no host without a certificate at all.
    let link = rt.block_on(async {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(tls::join_config(&join.ca_fingerprint, BOUND).unwrap());
        endpoint.connect(worker_address, NODE_NAME).unwrap().await
    });
    if let Ok(link) = link {
        // TLS 1.3 finishes on the client's side before the server checks the client: the
        // worker then closes the link without serving anything on it.
        let answered = rt.block_on(async {
            let request = wire::encode(&Message::Ack).unwrap();
            let (mut tx, mut rx) = link.open_bi().await.ok()?;
            tx.write_all(&request).await.ok()?;
            tx.finish().ok()?;
            let mut prefix = [0u8; 4];
            tokio::time::timeout(BOUND, rx.read_exact(&mut prefix))
                .await
                .ok()?
                .ok()
        });
        assert!(
            answered.is_none(),
            "a worker answered a host without a certificate"
        );
        let why = rt.block_on(closed(&link));
        assert!(
            !matches!(why, quinn::ConnectionError::LocallyClosed),
            "{why}"
        );
    }

    // The cluster still runs work, and a real node can still join.
    assert_eq!(
        double
            .options()
            .scheduling_strategy(mobula::SchedulingStrategy::NodeAffinity {
                node: workers[0],
                soft: false,
            })
            .remote(21)
            .get()
            .unwrap(),
        42
    );
    let mut cluster = cluster;
    let late = cluster
        .add_node(Config::default().num_cpus(1))
        .expect("a node with the token still joins");
    eventually("the late node is listed", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == late && n.alive)
    });
}
