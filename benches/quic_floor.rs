//! The floor under a cross-node sync round trip on this machine: bare quinn ping-pong between
//! two processes on loopback (16-byte messages on one stream, TLS 1.3, no Mobula), once with
//! the caller on the event loop's own thread and once from another thread (as a driver's
//! blocking `get` is). Mobula's sync actor call adds two more thread hand-offs to this: the
//! actor's thread on the worker, and the caller's.
//!
//!     cargo bench --bench quic_floor
//!
//! With `--bulk` it measures the floor under a large object across nodes instead: 256 MB
//! sent from one process to another (from a buffer made before, read without a copy of
//! ours), as one stream, as 4 streams of one connection, and as 4 connections; each side's
//! runtime on `QUIC_FLOOR_THREADS` threads (default 1, as a node's event loop).
//!
//!     cargo bench --bench quic_floor -- --bulk
//!     QUIC_FLOOR_THREADS=2 cargo bench --bench quic_floor -- --bulk

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

const ROUNDS: usize = 5_000;
const WARM: usize = 500;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(dir) = std::env::var_os("QUIC_FLOOR_SERVE") {
        if std::env::var_os("QUIC_FLOOR_BULK").is_some() {
            bulk_runtime().block_on(serve_bulk(std::path::PathBuf::from(dir)));
        } else {
            rt.block_on(serve(std::path::PathBuf::from(dir)));
        }
        return;
    }
    if std::env::args().any(|a| a == "--bulk") {
        bulk_main();
        return;
    }
    let dir = std::env::temp_dir().join(format!("mobula-quic-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut results = Vec::new();
    for round in 0..6 {
        let cross = round % 2 == 1;
        let _ = std::fs::remove_file(dir.join("addr"));
        let mut server = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env("QUIC_FLOOR_SERVE", &dir)
            .spawn()
            .expect("server");
        while !dir.join("addr").exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let per_s = rt.block_on(ping(&dir, cross));
        results.push((cross, per_s));
        let _ = server.kill();
        let _ = server.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    for cross in [false, true] {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|r| r.0 == cross)
            .map(|r| r.1)
            .collect();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        println!(
            "quic ping-pong, caller on {}: median {:.0} round trips/s ({:.1} us) of {:?}",
            if cross { "another thread" } else { "the loop" },
            median,
            1e6 / median,
            v.iter().map(|x| x.round()).collect::<Vec<_>>()
        );
    }
}

async fn serve(dir: std::path::PathBuf) {
    let ep = server_endpoint(&dir);
    let conn = ep.accept().await.expect("accept").await.expect("handshake");
    let (mut send, mut recv) = conn.accept_bi().await.expect("stream");
    let mut buf = [0u8; 16];
    while recv.read_exact(&mut buf).await.is_ok() {
        if send.write_all(&buf).await.is_err() {
            break;
        }
    }
}

/// A client endpoint that trusts the server `dir` describes, and the server's address.
fn client_endpoint(dir: &std::path::Path) -> (quinn::Endpoint, std::net::SocketAddr) {
    let der = std::fs::read(dir.join("cert.der")).expect("cert");
    let addr: std::net::SocketAddr = std::fs::read_to_string(dir.join("addr"))
        .expect("addr")
        .parse()
        .expect("addr");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).expect("root");
    let cfg = quinn::ClientConfig::with_root_certificates(Arc::new(roots)).expect("tls");
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind");
    ep.set_default_client_config(cfg);
    (ep, addr)
}

async fn ping(dir: &std::path::Path, cross: bool) -> f64 {
    let (ep, addr) = client_endpoint(dir);
    let conn = ep
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    let mut buf = [0u8; 16];
    if !cross {
        for _ in 0..WARM {
            send.write_all(&buf).await.expect("send");
            recv.read_exact(&mut buf).await.expect("recv");
        }
        let t = Instant::now();
        for _ in 0..ROUNDS {
            send.write_all(&buf).await.expect("send");
            recv.read_exact(&mut buf).await.expect("recv");
        }
        return ROUNDS as f64 / t.elapsed().as_secs_f64();
    }
    // The caller is another thread: it hands each request to the loop and blocks until the
    // answer is back, as a driver's get does.
    let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel::<mpsc::Sender<()>>();
    let caller = std::thread::spawn(move || {
        let once = || {
            let (tx, rx) = mpsc::channel();
            req_tx.send(tx).expect("loop");
            rx.recv().expect("answer");
        };
        (0..WARM).for_each(|_| once());
        let t = Instant::now();
        (0..ROUNDS).for_each(|_| once());
        ROUNDS as f64 / t.elapsed().as_secs_f64()
    });
    while let Some(done) = req_rx.recv().await {
        send.write_all(&buf).await.expect("send");
        recv.read_exact(&mut buf).await.expect("recv");
        let _ = done.send(());
    }
    caller.join().expect("caller")
}

/// Threads each side's runtime has for the bulk cases (`QUIC_FLOOR_THREADS`, default 1).
fn bulk_threads() -> usize {
    std::env::var("QUIC_FLOOR_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn bulk_runtime() -> tokio::runtime::Runtime {
    let threads = bulk_threads();
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .expect("runtime")
}

fn server_endpoint(dir: &std::path::Path) -> quinn::Endpoint {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let cfg = quinn::ServerConfig::with_single_cert(vec![der.clone().into()], key).expect("tls");
    let ep = quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().expect("addr")).expect("bind");
    std::fs::write(dir.join("cert.der"), &der).expect("write");
    let addr = ep.local_addr().expect("addr").to_string();
    std::fs::write(dir.join("addr.tmp"), addr).expect("write");
    std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).expect("rename");
    ep
}

/// Serves bytes: each stream asks for a count (8 bytes) and gets that many, sent from one
/// buffer made (and faulted in) before, without a copy of ours.
async fn serve_bulk(dir: std::path::PathBuf) {
    let data = bytes::Bytes::from(vec![7u8; BULK]);
    let ep = server_endpoint(&dir);
    while let Some(incoming) = ep.accept().await {
        let data = data.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let data = data.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 8];
                    if recv.read_exact(&mut len).await.is_ok() {
                        let n = u64::from_le_bytes(len) as usize;
                        let _ = send.write_chunk(data.slice(..n)).await;
                        let _ = send.finish();
                        let _ = send.stopped().await;
                    }
                });
            }
        });
    }
}

const BULK: usize = 256 << 20;

/// `--bulk`: 256 MB from one process to another over loopback QUIC, read without a copy
/// of ours; as one stream, as 4 streams of one connection and as 4 connections, with each
/// side's runtime on `QUIC_FLOOR_THREADS` threads.
fn bulk_main() {
    let dir = std::env::temp_dir().join(format!("mobula-quic-bulk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let _ = std::fs::remove_file(dir.join("addr"));
    let mut server = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("QUIC_FLOOR_SERVE", &dir)
        .env("QUIC_FLOOR_BULK", "1")
        .spawn()
        .expect("server");
    while !dir.join("addr").exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let rt = bulk_runtime();
    for round in 0..3 {
        for (conns, streams) in [(1, 1), (1, 4), (4, 1)] {
            let gbps = rt.block_on(pull(&dir, conns, streams));
            println!(
                "round {round}: {conns} connection(s) x {streams} stream(s), {} thread(s): {gbps:.3} GB/s",
                bulk_threads()
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn pull(dir: &std::path::Path, conns: usize, streams: usize) -> f64 {
    let (ep, addr) = client_endpoint(dir);
    let mut links = Vec::new();
    for _ in 0..conns {
        let c = ep
            .connect(addr, "localhost")
            .expect("connect")
            .await
            .expect("handshake");
        links.push(c);
    }
    let part = BULK / (conns * streams);
    let t = Instant::now();
    let mut jobs = Vec::new();
    for c in &links {
        for _ in 0..streams {
            let c = c.clone();
            jobs.push(tokio::spawn(async move {
                let (mut send, mut recv) = c.open_bi().await.expect("stream");
                send.write_all(&(part as u64).to_le_bytes())
                    .await
                    .expect("ask");
                let mut got = 0;
                while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.expect("read") {
                    got += chunk.bytes.len();
                }
                assert_eq!(got, part);
            }));
        }
    }
    for j in jobs {
        j.await.expect("job");
    }
    let gbps = BULK as f64 / 1e9 / t.elapsed().as_secs_f64();
    for c in links {
        c.close(0u32.into(), b"done");
    }
    ep.wait_idle().await;
    gbps
}
