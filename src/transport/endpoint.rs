//! A node's QUIC endpoint: it listens, accepts links (each peer's certificate tells who it
//! is), opens one link per peer address on demand, and hands every incoming request to the
//! node's handler. Runs on the node's event loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::LocalBoxFuture;

use super::credentials::{NODE_NAME, NodeIdentity, node_id_of};
use super::link::{self, LinkError};
use super::tls;
use crate::object::id::NodeId;
use crate::wire::Message;

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The node its certificate (signed by the cluster CA) names; `None` for a client without
    /// a certificate, which may only ask to join.
    pub node: Option<NodeId>,
    /// Where the link comes from.
    pub address: SocketAddr,
}

/// Handles one request: the message, the stream to answer on, and the stream it came on (for
/// payloads that follow).
pub type Handler =
    Rc<dyn Fn(Peer, Message, quinn::SendStream, quinn::RecvStream) -> LocalBoxFuture<'static, ()>>;

/// The endpoint, shared by everything on the node that talks to peers.
#[derive(Clone)]
pub struct Endpoint {
    inner: quinn::Endpoint,
    client: quinn::ClientConfig,
    links: Arc<Mutex<HashMap<SocketAddr, quinn::Connection>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({:?})", self.inner.local_addr().ok())
    }
}

impl Endpoint {
    /// Binds `address` with the node's identity. Must run on a tokio runtime (the node's
    /// event loop).
    pub fn bind(
        address: SocketAddr,
        identity: &NodeIdentity,
        idle: Duration,
    ) -> Result<Self, LinkError> {
        let server = tls::server_config(identity, idle).map_err(|e| LinkError::Connect {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let client = tls::client_config(identity, idle).map_err(|e| LinkError::Connect {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let inner = quinn::Endpoint::server(server, address).map_err(|e| LinkError::Connect {
            address: address.to_string(),
            reason: format!("cannot listen: {e}"),
        })?;
        Ok(Endpoint {
            inner,
            client,
            links: Arc::default(),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Accepts links until the endpoint closes, each request to `handler`.
    pub fn serve(&self, handler: Handler) {
        let inner = self.inner.clone();
        actix_rt::spawn(async move {
            while let Some(incoming) = inner.accept().await {
                let handler = handler.clone();
                actix_rt::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(connection) => serve_link(connection, handler).await,
                        Err(e) => tracing::warn!("refused a link from {remote}: {e}"),
                    }
                });
            }
        });
    }

    /// The link to `address`, opened if there is none yet (or the last one broke).
    pub async fn link(&self, address: SocketAddr) -> Result<quinn::Connection, LinkError> {
        if let Some(c) = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&address)
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let connection = connect(&self.inner, self.client.clone(), address).await?;
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address, connection.clone());
        Ok(connection)
    }

    /// Sends a request to `address` and reads the answer frame.
    pub async fn request(
        &self,
        address: SocketAddr,
        message: &Message,
    ) -> Result<(Message, quinn::RecvStream), LinkError> {
        let connection = self.link(address).await?;
        link::request(&connection, message).await
    }

    /// [`request`](Self::request) with the request already encoded.
    pub async fn request_frame(
        &self,
        address: SocketAddr,
        frame: &[u8],
    ) -> Result<(Message, quinn::RecvStream), LinkError> {
        let connection = self.link(address).await?;
        link::request_frame(&connection, frame).await
    }

    /// Opens a one-off link with another client configuration (a join).
    pub async fn connect_with(
        &self,
        client: quinn::ClientConfig,
        address: SocketAddr,
    ) -> Result<quinn::Connection, LinkError> {
        connect(&self.inner, client, address).await
    }

    /// Closes every link and stops listening.
    pub fn close(&self) {
        self.inner
            .close(quinn::VarInt::from_u32(0), b"node stopping");
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

async fn connect(
    endpoint: &quinn::Endpoint,
    client: quinn::ClientConfig,
    address: SocketAddr,
) -> Result<quinn::Connection, LinkError> {
    let connecting = endpoint
        .connect_with(client, address, NODE_NAME)
        .map_err(|e| LinkError::Connect {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    connecting.await.map_err(|e| LinkError::Connect {
        address: address.to_string(),
        reason: e.to_string(),
    })
}

async fn serve_link(connection: quinn::Connection, handler: Handler) {
    let node = match tls::peer_chain(&connection) {
        Some(chain) => match chain.first().and_then(|c| node_id_of(c)) {
            Some(node) => Some(node),
            None => {
                connection.close(quinn::VarInt::from_u32(1), b"certificate names no node");
                return;
            }
        },
        None => None,
    };
    let peer = Peer {
        node,
        address: connection.remote_address(),
    };
    loop {
        let (tx, mut rx) = match connection.accept_bi().await {
            Ok(streams) => streams,
            Err(_) => return, // closed or timed out; requests in flight see the same
        };
        let handler = handler.clone();
        actix_rt::spawn(async move {
            match link::recv(&mut rx).await {
                Ok(message) => handler(peer, message, tx, rx).await,
                Err(e) => tracing::warn!("dropped a request from {peer:?}: {e}"),
            }
        });
    }
}

/// Answers a request with one frame and finishes the stream.
pub async fn reply(mut tx: quinn::SendStream, message: &Message) {
    if let Err(e) = link::send(&mut tx, message).await {
        tracing::debug!("could not answer: {e}");
        return;
    }
    let _ = tx.finish();
}
