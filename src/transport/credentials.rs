//! A cluster's secrets: its CA, its join token, and the certificates it signs for nodes.
//!
//! The head makes a CA and a random join token the first time it starts and keeps them in
//! the cluster directory (mode 0700, files 0600). A joining node presents the token and pins
//! the CA by its fingerprint (as `kubeadm join` does); the head signs the node's certificate
//! request, naming the node by its id. Every later link is mutual TLS under that CA.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use ring::rand::SecureRandom;

use crate::base::id::NodeId;
use crate::base::role::Role;

/// The DNS name every node certificate carries and every client expects.
pub const NODE_NAME: &str = "node.mobula.cluster";

/// What went wrong with the cluster's credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing the cluster directory failed.
    #[error("cluster directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Making or parsing a key, certificate or request failed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The join token does not match.
    #[error("wrong join token")]
    WrongToken,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError + '_ {
    move |source| CredentialError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert_err(e: impl std::fmt::Display) -> CredentialError {
    CredentialError::Certificate(e.to_string())
}

/// The SHA-256 fingerprint of a certificate, as `sha256:` and hex digits.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    format!("sha256:{}", hex(digest.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh join token: 32 random bytes, hex.
pub fn new_token() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| cert_err("the system random source failed"))?;
    Ok(hex(&bytes))
}

/// Compares two tokens in time independent of where they differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The cluster CA: its certificate and its signing key. Only the head holds it.
pub struct ClusterCa {
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterCa({})", fingerprint(&self.cert_der))
    }
}

impl ClusterCa {
    /// Makes a new CA.
    pub fn generate() -> Result<Self, CredentialError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Mobula cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        let cert_der = cert.der().to_vec();
        Ok(ClusterCa {
            issuer: Issuer::new(params, key),
            cert_der,
        })
    }

    /// Loads a CA that [`ClusterDir::load_or_create`] saved.
    pub fn load(cert_der: Vec<u8>, key_der: &[u8]) -> Result<Self, CredentialError> {
        let key = KeyPair::try_from(key_der).map_err(cert_err)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key).map_err(cert_err)?;
        Ok(ClusterCa { cert_der, issuer })
    }

    /// The CA's certificate.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's signing key, for saving.
    fn key_der(&self) -> Vec<u8> {
        self.issuer.key().serialize_der()
    }

    /// Signs a certificate request as `grant` says: whatever names the request asks for, the
    /// certificate names the node by its id, carries [`NODE_NAME`] and the role, and is valid
    /// for the grant's time only.
    pub fn sign(&self, csr_der: &[u8], grant: &Grant) -> Result<Vec<u8>, CredentialError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(cert_err)?;
        let mut params = CertificateParams::new(vec![NODE_NAME.to_string()]).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, grant.node_id.to_string());
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, grant.role.as_str());
        params.not_before = grant.not_before.into();
        params.not_after = grant.not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(cert_err)?;
        Ok(cert.der().to_vec())
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its fresh key
    /// (PKCS#8), valid from `now` for `lifetime`: the dashboard's, for HTTPS.
    pub fn issue_server(
        &self,
        names: &[String],
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Mobula dashboard");
        params.not_before = now.checked_sub(CLOCK_SKEW).unwrap_or(now).into();
        params.not_after = (now + lifetime).into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok((cert.der().to_vec(), key.serialize_der()))
    }

    /// A whole identity (a fresh key, its certificate as `grant` says): what the head makes
    /// for itself and the CLI for its one request.
    pub fn issue(&self, grant: &Grant) -> Result<NodeIdentity, CredentialError> {
        let key = NodeKey::generate()?;
        Ok(NodeIdentity {
            node_id: grant.node_id,
            cert_der: self.sign(&key.csr_der()?, grant)?,
            key_der: key.pkcs8_der(),
            ca_der: self.cert_der.clone(),
        })
    }
}

/// How far another host's clock may be behind: a certificate is valid from this long before
/// it was signed.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// How long a node's certificate lives unless configured otherwise; a node renews it at half
/// its life while it is a member.
pub const NODE_CERT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long the CLI's own certificate lives: one request's time, with room.
pub const ADMIN_CERT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// What a certificate is to say: who, in which role, from when to when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The node it names.
    pub node_id: NodeId,
    /// Its role.
    pub role: Role,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
}

impl Grant {
    /// A grant valid from `now` (less [`CLOCK_SKEW`]) for `lifetime`.
    pub fn new(node_id: NodeId, role: Role, now: SystemTime, lifetime: Duration) -> Self {
        Grant {
            node_id,
            role,
            not_before: now.checked_sub(CLOCK_SKEW).unwrap_or(now),
            not_after: now + lifetime,
        }
    }
}

/// A node's key pair and a request to have it signed.
pub struct NodeKey {
    key: KeyPair,
}

impl NodeKey {
    /// A fresh key pair.
    pub fn generate() -> Result<Self, CredentialError> {
        Ok(NodeKey {
            key: KeyPair::generate().map_err(cert_err)?,
        })
    }

    /// A certificate signing request for this key.
    pub fn csr_der(&self) -> Result<Vec<u8>, CredentialError> {
        let params = CertificateParams::new(vec![NODE_NAME.to_string()]).map_err(cert_err)?;
        let csr = params.serialize_request(&self.key).map_err(cert_err)?;
        Ok(csr.der().to_vec())
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }
}

/// A joined node's credentials: its id, its certificate and key, the CA it trusts.
#[derive(Clone)]
pub struct NodeIdentity {
    /// The node's id, as its certificate names it.
    pub node_id: NodeId,
    /// Its certificate, signed by the cluster CA.
    pub cert_der: Vec<u8>,
    /// Its private key, PKCS#8.
    pub key_der: Vec<u8>,
    /// The cluster CA's certificate.
    pub ca_der: Vec<u8>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.node_id)
    }
}

/// The node id a certificate names (its common name).
pub fn node_id_of(cert_der: &[u8]) -> Option<NodeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    cn.parse().ok()
}

/// The node id and the role a certificate names (common name, organizational unit); `None`
/// when it names either not as the cluster's CA writes them.
pub fn identity_of(cert_der: &[u8]) -> Option<(NodeId, Role)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    let ou = cert
        .subject()
        .iter_organizational_unit()
        .next()?
        .as_str()
        .ok()?;
    Some((cn.parse().ok()?, Role::parse(ou)?))
}

/// Until when a certificate is valid.
pub fn expiry_of(cert_der: &[u8]) -> Option<SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let secs = cert.validity().not_after.timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The head's secrets on disk.
#[derive(Debug, Clone)]
pub struct ClusterDir {
    path: PathBuf,
}

impl ClusterDir {
    /// The directory at `path` (made on first use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ClusterDir { path: path.into() }
    }

    /// `$MOBULA_DIR`, else `~/.mobula/cluster`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("MOBULA_DIR") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
        home.join(".mobula").join("cluster")
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn ensure(&self) -> Result<(), CredentialError> {
        fs::create_dir_all(&self.path).map_err(io(&self.path))?;
        set_mode(&self.path, 0o700)
    }

    /// Writes a file readable by the owner only.
    pub fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), CredentialError> {
        self.ensure()?;
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(io(&tmp))?;
            f.write_all(bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Reads a file, or `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, CredentialError> {
        let path = self.file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The CA and the token, made and saved the first time.
    pub fn load_or_create(&self) -> Result<(ClusterCa, String), CredentialError> {
        if let (Some(cert), Some(key), Some(token)) = (
            self.read("ca.der")?,
            self.read("ca.key")?,
            self.read("token")?,
        ) {
            let token = String::from_utf8(token).map_err(cert_err)?;
            return Ok((ClusterCa::load(cert, &key)?, token.trim().to_string()));
        }
        let ca = ClusterCa::generate()?;
        let token = new_token()?;
        self.write_private("ca.key", &ca.key_der())?;
        self.write_private("ca.der", ca.cert_der())?;
        // The same certificate for browsers and other tools to import (it is public).
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", ca.cert_der().to_vec()));
        self.write_private("ca.pem", pem.as_bytes())?;
        self.write_private("token", token.as_bytes())?;
        Ok((ca, token))
    }

    /// The CA, when this directory holds its key (the head's machine).
    pub fn load_ca(&self) -> Result<Option<ClusterCa>, CredentialError> {
        match (self.read("ca.der")?, self.read("ca.key")?) {
            (Some(cert), Some(key)) => Ok(Some(ClusterCa::load(cert, &key)?)),
            _ => Ok(None),
        }
    }

    /// The dashboard's token: read-only, apart from the join token, made the first time.
    pub fn dashboard_token(&self) -> Result<String, CredentialError> {
        if let Some(token) = self.read("dashboard-token")? {
            let token = String::from_utf8(token).map_err(cert_err)?;
            return Ok(token.trim().to_string());
        }
        let token = new_token()?;
        self.write_private("dashboard-token", token.as_bytes())?;
        Ok(token)
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<(), CredentialError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_certificate_names_the_node_not_what_it_asked_for() {
        let ca = ClusterCa::generate().unwrap();
        let key = NodeKey::generate().unwrap();
        let node = NodeId::random();
        let now = SystemTime::now();
        let grant = Grant::new(node, Role::Driver, now, Duration::from_secs(3600));
        let cert = ca.sign(&key.csr_der().unwrap(), &grant).unwrap();
        assert_eq!(node_id_of(&cert), Some(node));
        assert_eq!(identity_of(&cert), Some((node, Role::Driver)));
        let expiry = expiry_of(&cert).unwrap();
        let lifetime = expiry.duration_since(now).unwrap_or_default();
        assert!(lifetime > Duration::from_secs(3590) && lifetime <= Duration::from_secs(3600));
        assert!(ca.sign(b"not a request", &grant).is_err());
    }

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(token_matches(&a, &a.clone()));
        assert!(!token_matches(&a, &b));
        assert!(!token_matches(&a, &a[..63]));
    }

    #[test]
    fn the_cluster_directory_keeps_one_ca_and_token_private() {
        let dir = std::env::temp_dir().join(format!("mobula-cred-{}", NodeId::random()));
        let cluster = ClusterDir::new(&dir);
        let (ca, token) = cluster.load_or_create().unwrap();
        let (again, token_again) = cluster.load_or_create().unwrap();
        assert_eq!(ca.cert_der(), again.cert_der());
        assert_eq!(token, token_again);
        // The dashboard's token is its own, and kept.
        let dashboard = cluster.dashboard_token().unwrap();
        assert_ne!(dashboard, token);
        assert_eq!(cluster.dashboard_token().unwrap(), dashboard);
        assert_eq!(
            cluster.load_ca().unwrap().unwrap().cert_der(),
            ca.cert_der()
        );
        // The reloaded CA signs certificates under the same name.
        let node = NodeId::random();
        let grant = Grant::new(node, Role::Node, SystemTime::now(), NODE_CERT_LIFETIME);
        assert_eq!(
            identity_of(&again.issue(&grant).unwrap().cert_der),
            Some((node, Role::Node))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("ca.key")), 0o600);
            assert_eq!(mode(&dir.join("token")), 0o600);
            assert_eq!(mode(&dir.join("dashboard-token")), 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }
}
