//! A node's QUIC endpoint: it listens, accepts links (each peer's certificate tells who it
//! is), opens one link per peer address on demand, and hands every incoming request to the
//! node's handler. Runs on the node's event loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::LocalBoxFuture;

use super::credentials::{NODE_NAME, NodeIdentity, identity_of};
use super::link::{self, LinkError};
use super::tls;
use crate::base::id::NodeId;
use crate::base::role::Role;
use crate::wire::{self, Message};

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The node its certificate (signed by the cluster CA) names; `None` for a client without
    /// a certificate, which may only ask to join.
    pub node: Option<NodeId>,
    /// The role its certificate names; `None` without a certificate.
    pub role: Option<Role>,
    /// Where the link comes from.
    pub address: SocketAddr,
}

/// Handles one request: the message, the stream to answer on, and the stream it came on (for
/// payloads that follow).
pub type Handler =
    Rc<dyn Fn(Peer, Message, quinn::SendStream, quinn::RecvStream) -> LocalBoxFuture<'static, ()>>;

/// The link to one peer address: locked while it is being opened, so that requests that
/// arrive together share one connection instead of each opening its own.
type Slot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

/// One link's figures, for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStats {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The latest round-trip time estimate.
    pub rtt: std::time::Duration,
    /// UDP payload bytes sent on it.
    pub sent_bytes: u64,
    /// UDP payload bytes received on it.
    pub received_bytes: u64,
}

/// The endpoint, shared by everything on the node that talks to peers.
#[derive(Clone)]
pub struct Endpoint {
    inner: quinn::Endpoint,
    /// How this node presents itself on links it opens: replaced when its certificate is
    /// renewed (links open already keep the one they began with).
    client: Arc<Mutex<quinn::ClientConfig>>,
    idle: Duration,
    links: Arc<Mutex<HashMap<SocketAddr, Slot>>>,
    /// Links this node opened: served like accepted ones, since a peer may send its own
    /// requests on them.
    opened: tokio::sync::mpsc::UnboundedSender<quinn::Connection>,
    opened_rx: Arc<Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<quinn::Connection>>>>,
    /// Whether peers without a certificate may connect to join (the head only), and how
    /// many are connected now.
    joins: Option<Arc<AtomicUsize>>,
}

/// Peers without a certificate connected at once to a head; more are closed at once.
pub const MAX_JOINING: usize = 16;

/// How long a peer without a certificate has to ask to join, and then to go.
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// Whether an endpoint takes peers without a certificate (to let them join).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joins {
    /// A head: a peer without a certificate may ask to join, and nothing else.
    Accepted,
    /// Every peer must present a certificate signed by the cluster CA.
    Refused,
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
        joins: Joins,
    ) -> Result<Self, LinkError> {
        let accept_joins = joins == Joins::Accepted;
        let (server, client) =
            configs(identity, idle, accept_joins).map_err(|reason| LinkError::Connect {
                address: address.to_string(),
                reason,
            })?;
        let inner = quinn::Endpoint::server(server, address).map_err(|e| LinkError::Connect {
            address: address.to_string(),
            reason: format!("cannot listen: {e}"),
        })?;
        let (opened, opened_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Endpoint {
            inner,
            client: Arc::new(Mutex::new(client)),
            idle,
            links: Arc::default(),
            opened,
            opened_rx: Arc::new(Mutex::new(Some(opened_rx))),
            joins: accept_joins.then(Arc::default),
        })
    }

    /// Presents `identity` (a renewed certificate) from now on: to peers that connect and on
    /// links this node opens. Links open already go on as they are.
    pub fn renew(&self, identity: &NodeIdentity) -> Result<(), LinkError> {
        let (server, client) =
            configs(identity, self.idle, self.joins.is_some()).map_err(|reason| {
                LinkError::Connect {
                    address: self.local_addr().to_string(),
                    reason,
                }
            })?;
        self.inner.set_server_config(Some(server));
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = client;
        Ok(())
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .local_addr()
            .expect("a bound endpoint has an address")
    }

    /// Accepts links until the endpoint closes, and serves them and the links this node
    /// opens: each request to `handler`.
    pub fn serve(&self, handler: Handler) {
        let opened = self
            .opened_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut opened) = opened {
            let handler = handler.clone();
            actix_rt::spawn(async move {
                while let Some(connection) = opened.recv().await {
                    actix_rt::spawn(serve_link(connection, handler.clone(), None));
                }
            });
        }
        let endpoint = self.clone();
        actix_rt::spawn(async move {
            while let Some(incoming) = endpoint.inner.accept().await {
                let (handler, endpoint) = (handler.clone(), endpoint.clone());
                actix_rt::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(connection) => {
                            endpoint.adopt(&connection);
                            serve_link(connection, handler, endpoint.joins.clone()).await
                        }
                        Err(e) => tracing::warn!("refused a link from {remote}: {e}"),
                    }
                });
            }
        });
    }

    fn slot(&self, address: SocketAddr) -> Slot {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.entry(address).or_default().clone()
    }

    /// Keeps an accepted link from a node for this node's own requests to it: a peer's
    /// endpoint sends from the address it listens on, so one connection serves the pair.
    fn adopt(&self, connection: &quinn::Connection) {
        if tls::peer_chain(connection).is_none() {
            return; // a join: not a node yet
        }
        let slot = self.slot(connection.remote_address());
        if let Ok(mut link) = slot.try_lock()
            && link.as_ref().is_none_or(|c| c.close_reason().is_some())
        {
            *link = Some(connection.clone());
        }
    }

    /// Every open link's peer address, round-trip time and bytes sent and received (UDP
    /// payloads), for the metrics; a link being opened right now is left out.
    pub fn link_stats(&self) -> Vec<LinkStats> {
        let slots: Vec<(SocketAddr, Slot)> = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(a, s)| (*a, s.clone()))
            .collect();
        slots
            .into_iter()
            .filter_map(|(peer, slot)| {
                let link = slot.try_lock().ok()?;
                let c = link.as_ref().filter(|c| c.close_reason().is_none())?;
                let stats = c.stats();
                Some(LinkStats {
                    peer,
                    rtt: c.rtt(),
                    sent_bytes: stats.udp_tx.bytes,
                    received_bytes: stats.udp_rx.bytes,
                })
            })
            .collect()
    }

    /// The link to `address`, opened if there is none yet (or the last one broke).
    pub async fn link(&self, address: SocketAddr) -> Result<quinn::Connection, LinkError> {
        let slot = self.slot(address);
        let mut link = slot.lock().await;
        if let Some(c) = &*link
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let client = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let connection = connect(&self.inner, client, address).await?;
        *link = Some(connection.clone());
        let _ = self.opened.send(connection.clone());
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

    /// Opens a one-off link with another client configuration (a join).
    pub async fn connect_with(
        &self,
        client: quinn::ClientConfig,
        address: SocketAddr,
    ) -> Result<quinn::Connection, LinkError> {
        connect(&self.inner, client, address).await
    }

    /// Lets go of the link to `address` (its node died): closed, and its slot removed.
    pub fn forget(&self, address: SocketAddr) {
        let slot = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&address);
        if let Some(slot) = slot
            && let Ok(mut link) = slot.try_lock()
            && let Some(connection) = link.take()
        {
            connection.close(quinn::VarInt::from_u32(0), b"the node was declared dead");
        }
    }

    /// Peer addresses with a link slot (open, being opened, or closed and not yet reopened).
    pub fn link_count(&self) -> usize {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes every link open now, as a network fault would; the endpoint goes on listening
    /// and opens links again on the next request. For fault injection.
    pub fn break_links(&self) {
        let slots: Vec<Slot> = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            if let Ok(mut link) = slot.try_lock()
                && let Some(connection) = link.take()
            {
                connection.close(LINK_BROKEN, b"link broken on purpose");
            }
        }
    }

    /// Closes every link and stops listening.
    pub fn close(&self) {
        self.inner
            .close(quinn::VarInt::from_u32(0), b"node stopping");
        self.links.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn configs(
    identity: &NodeIdentity,
    idle: Duration,
    accept_joins: bool,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), String> {
    let server = tls::server_config(identity, idle, accept_joins).map_err(|e| e.to_string())?;
    let client = tls::client_config(identity, idle).map_err(|e| e.to_string())?;
    Ok((server, client))
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

async fn serve_link(
    connection: quinn::Connection,
    handler: Handler,
    joins: Option<Arc<AtomicUsize>>,
) {
    let (node, role) = match tls::peer_chain(&connection) {
        Some(chain) => match chain.first().and_then(|c| identity_of(c)) {
            Some(identity) => identity,
            None => {
                connection.close(
                    quinn::VarInt::from_u32(1),
                    b"certificate names no node and role",
                );
                return;
            }
        },
        None => {
            match joins {
                Some(joining) => serve_join(connection, handler, &joining).await,
                None => connection.close(CLOSED_UNAUTHENTICATED, b"a certificate is required"),
            }
            return;
        }
    };
    // A member: now it may open as many streams, and have as many bytes in flight, as the
    // cluster's work needs.
    tls::admit(&connection);
    let peer = Peer {
        node: Some(node),
        role: Some(role),
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

/// How [`Endpoint::break_links`] closes a link.
pub const LINK_BROKEN: quinn::VarInt = quinn::VarInt::from_u32(3);

/// How a head closes a link from a peer without a certificate that did anything but join.
pub const CLOSED_UNAUTHENTICATED: quinn::VarInt = quinn::VarInt::from_u32(2);

/// A peer without a certificate, on a head: it may ask to join, once, in a small frame, and
/// nothing else; its link is closed after the answer (once the peer goes, or after
/// [`JOIN_WAIT`]) or at the first other request. At most [`MAX_JOINING`] at once.
async fn serve_join(connection: quinn::Connection, handler: Handler, joining: &AtomicUsize) {
    let address = connection.remote_address();
    if joining.fetch_add(1, Ordering::AcqRel) >= MAX_JOINING {
        joining.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(%address, "closed a link without a certificate: {MAX_JOINING} are joining already");
        connection.close(CLOSED_UNAUTHENTICATED, b"too many peers joining");
        return;
    }
    let peer = Peer {
        node: None,
        role: None,
        address,
    };
    let request = async {
        let (tx, mut rx) = connection.accept_bi().await.map_err(|e| e.to_string())?;
        let message = link::recv_within(&mut rx, wire::JOIN_FRAME_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((message, tx, rx))
    };
    match tokio::time::timeout(JOIN_WAIT, request).await {
        Ok(Ok((message @ Message::Join { .. }, tx, rx))) => {
            handler(peer, message, tx, rx).await;
            // The answer is on its way; the peer closes once it has it.
            let _ = tokio::time::timeout(JOIN_WAIT, connection.closed()).await;
        }
        Ok(Ok((other, _, _))) => {
            tracing::warn!(%address, "closed a link without a certificate: it sent {}", other.name());
        }
        Ok(Err(e)) => tracing::warn!(%address, "closed a link without a certificate: {e}"),
        Err(_) => {
            tracing::warn!(%address, "closed a link without a certificate: no join within {JOIN_WAIT:?}")
        }
    }
    connection.close(
        CLOSED_UNAUTHENTICATED,
        b"a peer without a certificate may only join",
    );
    joining.fetch_sub(1, Ordering::AcqRel);
}

/// Answers a request with one frame and finishes the stream.
pub async fn reply(mut tx: quinn::SendStream, message: &Message) {
    if let Err(e) = link::send(&mut tx, message).await {
        tracing::debug!("could not answer: {e}");
        return;
    }
    let _ = tx.finish();
}
