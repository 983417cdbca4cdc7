//! TLS for QUIC: the server side every node runs, the client side of a join (the CA pinned by
//! fingerprint, no client certificate) and of every other link (mutual TLS under the CA).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::credentials::{NodeIdentity, fingerprint};

/// The ALPN protocol name of Mobula's links.
pub const ALPN: &[u8] = b"mobula/1";

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

fn tls_err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// The cryptography under every link: *ring*'s provider, named explicitly so that the
/// process-wide default (which a user's program may set) does not matter. rustls 0.23.48
/// deprecates it for lacking post-quantum key exchange; the alternative (aws-lc-rs) adds a
/// C library to every build. The cluster's links run under its own CA and certificates, so
/// the choice is kept, and the deprecation allowed here, in this one place.
pub fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

fn roots(ca_der: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(tls_err)?;
    Ok(Arc::new(roots))
}

fn chain(identity: &NodeIdentity) -> Vec<CertificateDer<'static>> {
    vec![
        CertificateDer::from(identity.cert_der.clone()),
        CertificateDer::from(identity.ca_der.clone()),
    ]
}

fn key(identity: &NodeIdentity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()))
}

/// Streams an authenticated peer may have open on a link at once.
pub const MAX_STREAMS: u32 = 8192;

/// Bytes an authenticated peer may have in flight on a link, unread, over all its streams
/// (each stream has quinn's own window, 1.25 MB, under this).
pub const LINK_WINDOW: u32 = 64 << 20;

/// What a peer gets on a link it opened before its certificate is checked: one stream at a
/// time, and this many bytes in flight over the whole link. Enough for a join request
/// ([`crate::wire::JOIN_FRAME_LIMIT`]); raised to [`MAX_STREAMS`] and [`LINK_WINDOW`] once
/// the peer proves to be a member.
pub const UNAUTHENTICATED_STREAMS: u32 = 1;
/// See [`UNAUTHENTICATED_STREAMS`].
pub const UNAUTHENTICATED_WINDOW: u32 = 16 << 10;

/// QUIC timing and limits: keep-alives well inside the idle timeout, so that a silent peer
/// is noticed within `idle` and a live one never times out; `streams` and `window` as above.
fn transport_config(idle: Duration, streams: u32, window: u32) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        idle.try_into()
            .unwrap_or(quinn::IdleTimeout::from(quinn::VarInt::from_u32(10_000))),
    ));
    t.keep_alive_interval(Some(idle / 4));
    // quinn sets up state for every stream a peer may open at once, when the link opens:
    // 65,536 took about 100 ms per link. A link carries one task channel, one stream per
    // actor this process calls there, and short requests.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    // quinn's default lets a peer have unbounded bytes in flight over a link's streams
    // (about 10 GB with 8,192 streams) and 1.25 MB of datagrams; links use no datagrams.
    t.receive_window(quinn::VarInt::from_u32(window));
    t.datagram_receive_buffer_size(None);
    Arc::new(t)
}

/// Raises a link's limits to an authenticated peer's ([`MAX_STREAMS`], [`LINK_WINDOW`]).
pub fn admit(connection: &quinn::Connection) {
    connection.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(MAX_STREAMS));
    connection.set_receive_window(quinn::VarInt::from_u32(LINK_WINDOW));
}

/// The server side of a node: presents its certificate; a client must present one signed by
/// the cluster CA, except, on a head (`accept_joins`), a client that comes to join, which
/// presents none and may do nothing else.
pub fn server_config(
    identity: &NodeIdentity,
    idle: Duration,
    accept_joins: bool,
) -> Result<quinn::ServerConfig, TlsError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(&identity.ca_der)?, provider());
    let builder = if accept_joins {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder.build().map_err(tls_err)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(identity), key(identity))
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(tls_err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    // Every peer starts small; `admit` raises the limits once its certificate is checked.
    config.transport_config(transport_config(
        idle,
        UNAUTHENTICATED_STREAMS,
        UNAUTHENTICATED_WINDOW,
    ));
    Ok(config)
}

/// The client side of a link between joined nodes: the server must hold a certificate signed
/// by the cluster CA, and so do we.
pub fn client_config(
    identity: &NodeIdentity,
    idle: Duration,
) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_root_certificates(roots(&identity.ca_der)?)
        .with_client_auth_cert(chain(identity), key(identity))
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    finish_client(tls, idle)
}

/// The client side of a join: no client certificate; the server's chain must end in a CA
/// whose fingerprint is `pin`.
pub fn join_config(pin: &str, idle: Duration) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: pin.to_string(),
            provider: provider(),
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    finish_client(tls, idle)
}

fn finish_client(
    tls: rustls::ClientConfig,
    idle: Duration,
) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    // The server proved to hold the cluster's CA (or the pinned one) in the handshake.
    config.transport_config(transport_config(idle, MAX_STREAMS, LINK_WINDOW));
    Ok(config)
}

/// Accepts a server whose chain carries the pinned CA and verifies under it.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates.iter().find(|c| fingerprint(c) == self.pin) else {
            return Err(rustls::Error::General(format!(
                "the server's CA is not the pinned one ({})",
                self.pin
            )));
        };
        let roots = roots(ca).map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots,
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate chain a connected peer presented, if any.
pub fn peer_chain(connection: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    connection
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|b| *b)
}
