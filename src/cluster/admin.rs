//! The operator's side of a cluster: what the `mobula` CLI asks a running head.
//!
//! Whoever can read the cluster directory (its owner: the files are 0600) holds the cluster's
//! CA, so the CLI signs itself a client certificate with it, in the admin role and living a
//! few minutes, and talks to the head over the same mutual TLS as any node. It never joins:
//! it asks and leaves. Only this certificate may stop the cluster.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::base::build::{Build, BuildId};
use crate::base::id::NodeId;
use crate::base::jobs::JobId;
use crate::base::role::Role;
use crate::transport::credentials::{
    ADMIN_CERT_LIFETIME, ClusterCa, ClusterDir, CredentialError, Grant, NodeIdentity, fingerprint,
};
use crate::transport::endpoint::{Endpoint, Joins};
use crate::wire::{ClusterView, Message};

/// Why the CLI could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The cluster directory lacks a file: no head was started with it.
    #[error("{0}")]
    NoCluster(String),
    /// Reading or using the credentials failed.
    #[error("the cluster's credentials: {0}")]
    Credentials(String),
    /// The program to submit cannot be read.
    #[error("cannot read the program {program}: {reason}")]
    Program {
        /// The program.
        program: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The head did not answer, or answered something else.
    #[error("the head at {address}: {reason}")]
    Head {
        /// Where it was asked.
        address: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// What a joining node needs, as the head's files in the cluster directory say.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    /// Where the head listens.
    pub address: SocketAddr,
    /// The join token.
    pub token: String,
    /// The CA's fingerprint, to pin.
    pub ca_fingerprint: String,
}

fn read_text(dir: &ClusterDir, name: &str) -> Result<String, AdminError> {
    match dir.read(name) {
        Ok(Some(bytes)) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Ok(None) => Err(AdminError::NoCluster(format!(
            "no cluster in {} (no `{name}`): start one with `mobula start --head`",
            dir.path().display()
        ))),
        Err(e) => Err(AdminError::Credentials(e.to_string())),
    }
}

/// The head's address, token and CA fingerprint from the cluster directory.
pub fn join_info(dir: &Path) -> Result<JoinInfo, AdminError> {
    let dir = ClusterDir::new(dir);
    let address = read_text(&dir, "head.addr")?;
    let address = address.parse().map_err(|e| {
        AdminError::Credentials(format!("head.addr holds {address:?}, not an address: {e}"))
    })?;
    let token = read_text(&dir, "token")?;
    let ca = dir
        .read("ca.der")
        .map_err(|e| AdminError::Credentials(e.to_string()))?
        .ok_or_else(|| AdminError::NoCluster("no ca.der in the cluster directory".into()))?;
    Ok(JoinInfo {
        address,
        token,
        ca_fingerprint: fingerprint(&ca),
    })
}

/// Sends one request to the head named in the cluster directory and returns its answer.
pub fn ask(dir: &Path, message: &Message, timeout: Duration) -> Result<Message, AdminError> {
    ask_with(dir, message, &[], timeout)
}

/// [`ask`], with `payload` sent raw after the request on its stream.
fn ask_with(
    dir: &Path,
    message: &Message,
    payload: &[u8],
    timeout: Duration,
) -> Result<Message, AdminError> {
    let info = join_info(dir)?;
    let cluster = ClusterDir::new(dir);
    let credentials =
        |e: crate::transport::credentials::CredentialError| AdminError::Credentials(e.to_string());
    let (Some(ca_der), Some(ca_key)) = (
        cluster.read("ca.der").map_err(credentials)?,
        cluster.read("ca.key").map_err(credentials)?,
    ) else {
        return Err(AdminError::NoCluster(
            "the cluster directory lacks the CA (ca.der, ca.key)".into(),
        ));
    };
    let ca = ClusterCa::load(ca_der, &ca_key).map_err(credentials)?;
    let identity = admin_identity(&ca, SystemTime::now()).map_err(credentials)?;
    let head = info.address;
    let failed = |reason: String| AdminError::Head {
        address: head,
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.to_string()))?;
    runtime.block_on(async {
        let local = if head.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let endpoint = Endpoint::bind(
            local.parse().expect("an address"),
            &identity,
            timeout,
            Joins::Refused,
        )
        .map_err(|e| failed(e.to_string()))?;
        let asked = async {
            let connection = endpoint.link(head).await?;
            let frame = crate::wire::encode(message)?;
            crate::transport::link::request_frame(&connection, &frame, &[payload]).await
        };
        let answer = tokio::time::timeout(timeout, asked).await;
        endpoint.close();
        match answer {
            Ok(Ok((answer, _))) => Ok(answer),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
        }
    })
}

/// An admin certificate for one request, signed at `now`: it lives minutes
/// ([`ADMIN_CERT_LIFETIME`]) and names a fresh id that is never a member.
fn admin_identity(ca: &ClusterCa, now: SystemTime) -> Result<NodeIdentity, CredentialError> {
    let grant = Grant::new(NodeId::random(), Role::Admin, now, ADMIN_CERT_LIFETIME);
    ca.issue(&grant)
}

/// The head's view of the cluster.
pub fn status(dir: &Path, timeout: Duration) -> Result<ClusterView, AdminError> {
    match ask(dir, &Message::Status, timeout)? {
        Message::View(view) => Ok(view),
        other => Err(AdminError::Head {
            address: join_info(dir)?.address,
            reason: format!("answered {} to Status", other.name()),
        }),
    }
}

/// Tells the head to stop the cluster: every node stops, then the head.
pub fn stop(dir: &Path, timeout: Duration) -> Result<(), AdminError> {
    let message = Message::Shutdown {
        reason: "`mobula stop`".into(),
    };
    match ask(dir, &message, timeout)? {
        Message::Ack => Ok(()),
        other => Err(AdminError::Head {
            address: join_info(dir)?.address,
            reason: format!("answered {} to Shutdown", other.name()),
        }),
    }
}

/// Runs `program` with `args` on the cluster as a job's driver (`mobula job submit`): the
/// head gets the program's build (uploaded when it has no copy) and starts it. Returns the
/// job's id.
pub fn submit_job(
    dir: &Path,
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<JobId, AdminError> {
    let bytes = std::fs::read(program).map_err(|e| AdminError::Program {
        program: program.to_path_buf(),
        reason: e.to_string(),
    })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let mut id = [0u8; 32];
    id.copy_from_slice(digest.as_ref());
    let build = Build {
        id: BuildId(id),
        size: bytes.len() as u64,
        target: crate::base::build::this_target(),
    };
    let submit = Message::SubmitJob {
        build: build.clone(),
        args: args.to_vec(),
    };
    let unexpected = |answer: Message, to: &str| AdminError::Head {
        address: join_info(dir)
            .map(|i| i.address)
            .unwrap_or(([0, 0, 0, 0], 0).into()),
        reason: format!("answered {} to {to}", answer.name()),
    };
    match ask(dir, &submit, timeout)? {
        Message::JobSubmitted(job) => return Ok(job),
        Message::SendBuild => {}
        other => return Err(unexpected(other, "SubmitJob")),
    }
    // The upload takes as long as it takes: a minute per 100 MB at least.
    let upload_time = timeout + Duration::from_secs(60 + build.size / (2 << 20));
    match ask_with(dir, &Message::UploadBuild(build), &bytes, upload_time)? {
        Message::Ack => {}
        other => return Err(unexpected(other, "UploadBuild")),
    }
    match ask(dir, &submit, timeout)? {
        Message::JobSubmitted(job) => Ok(job),
        other => Err(unexpected(other, "SubmitJob")),
    }
}

/// A submitted job's output from byte `offset`, and whether the job has ended.
pub fn job_output(
    dir: &Path,
    job: JobId,
    offset: u64,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), AdminError> {
    match ask(dir, &Message::JobLogs { job, offset }, timeout)? {
        Message::JobOutput { bytes, ended } => Ok((bytes, ended)),
        other => Err(AdminError::Head {
            address: join_info(dir)?.address,
            reason: format!("answered {} to JobLogs", other.name()),
        }),
    }
}

/// Stops a submitted job (its process is killed).
pub fn stop_job(dir: &Path, job: JobId, timeout: Duration) -> Result<(), AdminError> {
    match ask(dir, &Message::StopJob(job), timeout)? {
        Message::Ack => Ok(()),
        other => Err(AdminError::Head {
            address: join_info(dir)?.address,
            reason: format!("answered {} to StopJob", other.name()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::credentials::{expiry_of, identity_of};

    #[test]
    fn the_cli_signs_itself_an_admin_certificate_that_lives_minutes() {
        let ca = ClusterCa::generate().unwrap();
        let now = SystemTime::now();
        let identity = admin_identity(&ca, now).unwrap();
        let (_, role) = identity_of(&identity.cert_der).unwrap();
        assert_eq!(role, Role::Admin);
        let lives = expiry_of(&identity.cert_der)
            .unwrap()
            .duration_since(now)
            .unwrap();
        assert!(lives <= Duration::from_secs(5 * 60), "{lives:?}");
        assert!(lives > Duration::from_secs(4 * 60), "{lives:?}");
    }
}
