//! The dashboard's HTTPS certificate: signed by the cluster CA for `localhost` and the
//! address the dashboard listens on, and signed again once half its life has passed, at the
//! next handshake.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::transport::credentials::{ClusterCa, NODE_CERT_LIFETIME};
use crate::transport::tls;

/// How long each dashboard certificate lives.
const LIFETIME: Duration = NODE_CERT_LIFETIME;

/// Signs the dashboard's certificates and hands the current one to each handshake.
pub(super) struct DashboardCertificate {
    ca: ClusterCa,
    names: Vec<String>,
    provider: Arc<CryptoProvider>,
    /// The current certificate and when to sign the next.
    current: Mutex<(Arc<CertifiedKey>, SystemTime)>,
}

impl std::fmt::Debug for DashboardCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DashboardCertificate({:?})", self.names)
    }
}

impl DashboardCertificate {
    /// A certificate for the dashboard at `address`, under `ca`.
    pub fn new(ca: ClusterCa, address: SocketAddr) -> Result<Self, String> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        if !address.ip().is_unspecified() && !address.ip().is_loopback() {
            names.push(address.ip().to_string());
        }
        let provider = tls::provider();
        let now = SystemTime::now();
        let first = sign(&ca, &names, &provider, now)?;
        Ok(DashboardCertificate {
            ca,
            names,
            provider,
            current: Mutex::new((first, now + LIFETIME / 2)),
        })
    }

    /// A TLS configuration that serves it.
    pub fn server_config(self) -> Result<rustls::ServerConfig, String> {
        let provider = self.provider.clone();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self));
        Ok(config)
    }
}

fn sign(
    ca: &ClusterCa,
    names: &[String],
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = ca
        .issue_server(names, now, LIFETIME)
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    let chain = vec![
        CertificateDer::from(cert),
        CertificateDer::from(ca.cert_der().to_vec()),
    ];
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

impl ResolvesServerCert for DashboardCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        if now >= current.1 {
            match sign(&self.ca, &self.names, &self.provider, now) {
                Ok(next) => *current = (next, now + LIFETIME / 2),
                Err(e) => tracing::warn!("could not renew the dashboard's certificate: {e}"),
            }
        }
        Some(current.0.clone())
    }
}
