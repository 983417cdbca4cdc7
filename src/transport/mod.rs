//! How nodes reach each other: a QUIC endpoint per node (quinn), TLS under the cluster's own
//! CA (rustls with the ring provider), joining with a token, and framed requests on streams.
//!
//! - `credentials`: the CA, the join token, node certificates, the cluster directory.
//! - `tls`: rustls and quinn configurations; the pinned-CA check of a join.
//! - `link`: frames and payloads on QUIC streams.
//! - `endpoint`: listening, accepting, one link per peer.

pub mod credentials;
pub mod endpoint;
pub mod link;
pub mod tls;
