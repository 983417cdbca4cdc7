//! Peers that are not what they should be, over real QUIC on loopback: a host without a
//! certificate may only ask a head to join, once, in a small frame, on a link held to one
//! stream and a few kilobytes; anything else closes its link, and a worker node does not take
//! it at all. A certificate gets what its role and its holder's membership allow: a driver
//! does not stop the cluster or release another's group, a dead node and an expired
//! certificate are refused, and members renew theirs. The cluster keeps serving.

mod common;
#[path = "common/peers.rs"]
mod peers;

use std::time::Duration;

use common::*;
use mobula::Config;
use mobula::transport::credentials::{Grant, NODE_NAME, expiry_of, identity_of};
use mobula::transport::endpoint::{CLOSED_UNAUTHENTICATED, MAX_JOINING};
use mobula::transport::tls;
use mobula::wire::{self, Message, Role};
use peers::*;

#[mobula::remote]
fn double(x: u64) -> u64 {
    x * 2
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

/// A head (`head`, without CPUs), one worker with `cpus`, and this process as the driver.
fn one_worker(
    head: Config,
    cpus: u32,
) -> (
    mobula::testing::LocalCluster,
    Vec<mobula::NodeId>,
    mobula::InitGuard,
) {
    local_cluster(
        head.num_cpus(0),
        move || Config::default().num_cpus(cpus),
        1,
        |c| c.num_cpus(0),
    )
}

#[test]
fn a_host_without_a_certificate_may_only_ask_a_head_to_join() {
    let _turn = turn();
    let (cluster, workers, _driver) = one_worker(Config::default(), 1);
    let join = cluster.join_info().clone();
    let worker_address = address_of(workers[0]);
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

/// The resident memory of this process (all of the test's nodes live in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_flood_from_hosts_without_a_certificate_is_held_to_a_few_kilobytes() {
    let _turn = turn();
    let (cluster, workers, _driver) = one_worker(Config::default(), 1);
    let join = cluster.join_info().clone();
    let rt = runtime();

    // As many hosts as may wait to join, each starting a join it never finishes (so the head
    // keeps its link open) and then opening stream after stream of a megabyte each: what
    // quinn's defaults would have buffered is about 10 GB per link.
    let before = resident_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                peak.fetch_max(resident_bytes(), std::sync::atomic::Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let outcomes = rt.block_on(async {
        let mut floods = Vec::new();
        for _ in 0..MAX_JOINING {
            let link = uncertified_link(join.address, &join.ca_fingerprint).await;
            floods.push(tokio::spawn(async move {
                let megabyte = vec![0u8; 1 << 20];
                let mut opened = 0u32;
                if let Ok((mut tx, _rx)) = link.open_bi().await {
                    opened += 1;
                    let mut start = (wire::JOIN_FRAME_LIMIT as u32).to_le_bytes().to_vec();
                    start.extend_from_slice(&[0u8; 100]);
                    let _ = tx.write_all(&start).await;
                    for _ in 0..200 {
                        let Ok((mut tx, _rx)) = link.open_bi().await else {
                            break;
                        };
                        opened += 1;
                        if tx.write_all(&megabyte).await.is_err() {
                            break;
                        }
                    }
                }
                let why = closed(&link).await;
                (opened, link.stats().udp_tx.bytes, why)
            }));
        }
        let mut outcomes = Vec::new();
        for flood in floods {
            outcomes.push(flood.await.unwrap());
        }
        outcomes
    });
    done.store(true, std::sync::atomic::Ordering::Release);
    sampler.join().unwrap();
    let grew = peak
        .load(std::sync::atomic::Ordering::Acquire)
        .saturating_sub(before);
    eprintln!(
        "flood of {MAX_JOINING} links: resident memory grew {} KiB at most; sent per link: {:?} bytes",
        grew >> 10,
        outcomes.iter().map(|o| o.1).collect::<Vec<_>>()
    );
    for (opened, sent, why) in &outcomes {
        assert!(closed_for_being_uncertified(why), "{why}");
        assert_eq!(
            *opened, 1,
            "a host without a certificate opened a second stream"
        );
        // The handshake, the 16 KiB the link lets in, and retransmissions: far below the
        // hundreds of megabytes the flood tried.
        assert!(*sent < 256 << 10, "{sent} bytes went out on one link");
    }
    assert!(grew < 64 << 20, "resident memory grew {grew} bytes");

    // The cluster still runs work.
    assert_eq!(
        double
            .options()
            .scheduling_strategy(mobula::SchedulingStrategy::NodeAffinity {
                node: workers[0],
                soft: false,
            })
            .remote(5)
            .get()
            .unwrap(),
        10
    );
}

#[test]
fn a_certificate_gets_what_its_role_and_membership_allow_and_no_more() {
    let _turn = turn();
    let (cluster, workers, _driver) = one_worker(Config::default(), 2);
    let join = cluster.join_info().clone();
    let worker_address = address_of(workers[0]);
    let rt = runtime();

    // The token grants a node or a driver, never an admin or a head.
    for role in [Role::Admin, Role::Head] {
        let refused = rt.block_on(join_as(&join, role)).unwrap_err();
        assert!(refused.contains("grants a node or a driver"), "{refused}");
    }

    // A driver that joined and registered: a member, not an admin.
    let identity = rt.block_on(join_as(&join, Role::Driver)).unwrap();
    let driver = rt.block_on(async { endpoint_of(&identity) });
    let info = driver_info(&identity, &driver);
    // Before it registers, the head serves it nothing but membership.
    let early = rt.block_on(ask(&driver, join.address, &Message::Status));
    assert!(early.contains("not a member"), "{early}");
    assert_eq!(
        rt.block_on(ask(&driver, join.address, &Message::Register(info))),
        "View"
    );
    assert_eq!(
        rt.block_on(ask(&driver, join.address, &Message::Status)),
        "View"
    );

    // It may not stop the cluster, at the head or at a worker.
    let stop = Message::Shutdown {
        reason: "a driver tries".into(),
    };
    for address in [join.address, worker_address] {
        let answer = rt.block_on(ask(&driver, address, &stop));
        assert!(answer.contains("only an admin"), "{answer}");
    }

    // It may not release another driver's placement group.
    let group = mobula::placement_group(
        vec![mobula::Bundle::new().num_cpus(1)],
        mobula::PlacementStrategy::Pack,
    )
    .unwrap();
    group.ready().unwrap();
    let host_address = address_of(group.bundle_node(0).expect("the bundle has a node"));
    let release = Message::ReleaseBundles {
        group: group.id().to_string(),
    };
    let answer = rt.block_on(ask(&driver, host_address, &release));
    assert!(answer.contains("owner"), "{answer}");
    // The group still holds its bundle: a task in it runs.
    assert_eq!(
        double
            .options()
            .placement_group(&group, Some(0))
            .remote(4)
            .get()
            .unwrap(),
        8
    );

    // An expired certificate, signed by the cluster's own CA, is refused in the handshake.
    let ca = cluster_ca(&cluster);
    let now = std::time::SystemTime::now();
    let expired = ca
        .issue(&Grant {
            node_id: identity.node_id,
            role: Role::Driver,
            not_before: now - Duration::from_secs(7200),
            not_after: now - Duration::from_secs(3600),
        })
        .unwrap();
    let stale = rt.block_on(async { endpoint_of(&expired) });
    let answer = rt.block_on(ask(&stale, join.address, &Message::Status));
    assert!(answer.starts_with("failed"), "{answer}");

    // The driver stops heartbeating: once the head declares it dead, its certificate, still
    // valid, is refused by the head and, once their view says so, by the other nodes.
    eventually("the silent driver is declared dead", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == identity.node_id && !n.alive)
    });
    // (The head also closes its link to a node it declares dead: a request on that link
    // fails, and one on a new link is refused.)
    eventually("the head refuses the dead driver", || {
        rt.block_on(ask(&driver, join.address, &Message::Status))
            .contains("declared dead")
    });
    eventually("the worker refuses the dead driver", || {
        rt.block_on(ask(&driver, worker_address, &Message::Status))
            .contains("declared dead")
    });

    // An admin certificate (the CLI's) reads, and is no member.
    let admin = ca
        .issue(&Grant::new(
            mobula::NodeId::random(),
            Role::Admin,
            now,
            Duration::from_secs(60),
        ))
        .unwrap();
    let admin = rt.block_on(async { endpoint_of(&admin) });
    assert_eq!(
        rt.block_on(ask(&admin, join.address, &Message::Status)),
        "View"
    );
    let answer = rt.block_on(ask(&admin, worker_address, &Message::OpenTasks));
    assert!(answer.contains("admin certificate may only"), "{answer}");
    mobula::remove_placement_group(&group);
}

#[test]
fn members_renew_their_certificates_and_new_links_keep_working_after_the_first_expire() {
    let _turn = turn();
    let lifetime = Duration::from_secs(3);
    let (mut cluster, workers, _driver) =
        one_worker(Config::default().certificate_lifetime(lifetime), 1);
    let worker_address = address_of(workers[0]);
    let ca = cluster_ca(&cluster);
    let rt = runtime();
    // What the worker presents to a new link: we connect with an admin certificate.
    let presented = || {
        let admin = ca
            .issue(&Grant::new(
                mobula::NodeId::random(),
                Role::Admin,
                std::time::SystemTime::now(),
                Duration::from_secs(60),
            ))
            .unwrap();
        rt.block_on(async {
            let endpoint = endpoint_of(&admin);
            let link = endpoint.link(worker_address).await.ok()?;
            let chain = tls::peer_chain(&link)?;
            endpoint.close();
            chain.first().map(|c| c.to_vec())
        })
    };
    let first = presented().expect("the worker presents a certificate");
    assert_eq!(identity_of(&first), Some((workers[0], Role::Node)));
    let first_expiry = expiry_of(&first).unwrap();
    // Until the first certificate has expired, and the worker presents another, valid one
    // (the handshake checks it).
    eventually(
        "the worker's first certificate expires and it presents a new one",
        || {
            std::time::SystemTime::now() > first_expiry
                && presented().is_some_and(|c| c != first && identity_of(&c) == identity_of(&first))
        },
    );
    // A node that joins now links to the others with the certificates they renewed, both
    // ways: the driver runs a task there, and the worker is still reached.
    let late = cluster.add_node(Config::default().num_cpus(1)).unwrap();
    eventually("the driver sees the late node", || {
        mobula::node::nodes()
            .iter()
            .any(|n| n.info.node_id == late && n.alive)
    });
    for node in [late, workers[0]] {
        let on = |node| {
            double
                .options()
                .scheduling_strategy(mobula::SchedulingStrategy::NodeAffinity { node, soft: false })
                .remote(7)
                .get()
        };
        assert_eq!(on(node).unwrap(), 14);
    }
    // Every node is still a member: none was refused a renewal.
    assert!(mobula::node::nodes().iter().all(|n| n.alive));
}
