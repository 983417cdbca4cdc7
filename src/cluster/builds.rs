//! Builds on disk: this process's own build (its executable, hashed once), a node's cache of
//! builds fetched from peers (by hash, in chunks, verified before use, evicted least
//! recently used past a size limit), and the chunks a node serves to peers that fetch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::build::{self, Build, BuildId, Cached};
use crate::base::id::NodeId;
use crate::runtime::registry;
use crate::transport::endpoint::Endpoint;
use crate::wire::{BUILD_CHUNK, Message};

/// This process's build: `None` for a process without user code (the `mobula` CLI, whose
/// nodes run other programs' builds), else its executable's hash, size and platform.
pub(crate) fn this_build() -> Option<&'static Build> {
    static BUILD: OnceLock<Option<Build>> = OnceLock::new();
    BUILD
        .get_or_init(|| {
            if registry::announced_fingerprint() == 0 {
                return None;
            }
            let exe = std::env::current_exe().ok()?;
            match hash_file(&exe) {
                Ok((id, size)) => Some(Build {
                    id,
                    size,
                    target: build::this_target(),
                }),
                Err(e) => {
                    tracing::warn!("cannot read this program ({}): {e}", exe.display());
                    None
                }
            }
        })
        .as_ref()
}

/// The SHA-256 and size of a file.
fn hash_file(path: &Path) -> std::io::Result<(BuildId, u64)> {
    let mut file = File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        context.update(&buffer[..n]);
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(context.finish().as_ref());
    Ok((BuildId(id), size))
}

/// How a fetch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// No holder gave a whole, verified copy.
    #[error("no node gave a good copy of build {build}: {why}")]
    NoGoodCopy {
        /// The build.
        build: BuildId,
        /// What the last holder did wrong.
        why: String,
    },
    /// The cache could not be written.
    #[error("cannot keep build {build} in {dir}: {source}")]
    Disk {
        /// The build.
        build: BuildId,
        /// The cache.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A node's cache of builds: one executable file per build, named by its hash.
pub(crate) struct BuildCache {
    dir: PathBuf,
    limit: u64,
    /// When each build was last used (ms since the Unix epoch), for eviction.
    used: Mutex<HashMap<BuildId, u64>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl BuildCache {
    /// The cache in `dir` (created when first written), holding at most `limit` bytes of
    /// builds no process runs.
    pub fn new(dir: PathBuf, limit: u64) -> Self {
        BuildCache {
            dir,
            limit,
            used: Mutex::default(),
        }
    }

    /// Where build `id` is (or would be) kept.
    pub fn path(&self, id: BuildId) -> PathBuf {
        self.dir.join(id.hex())
    }

    /// Whether a verified copy of `id` is here.
    pub fn has(&self, id: BuildId) -> bool {
        self.path(id).is_file()
    }

    fn touch(&self, id: BuildId) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, now_ms());
    }

    /// The executable of `wanted`, from the cache or fetched from its holders (each tried in
    /// turn, each at most twice), verified against its hash before it is kept.
    pub async fn get(
        &self,
        endpoint: &Endpoint,
        addresses: &[(NodeId, std::net::SocketAddr)],
        wanted: &Build,
    ) -> Result<PathBuf, FetchError> {
        let id = wanted.id;
        let path = self.path(id);
        if path.is_file() {
            self.touch(id);
            return Ok(path);
        }
        let disk = |source| FetchError::Disk {
            build: id,
            dir: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(disk)?;
        let partial = self.dir.join(format!("{}.part", id.hex()));
        let mut why = "no node holds it".to_string();
        for (holder, address) in addresses.iter().chain(addresses.iter()) {
            match fetch_into(endpoint, *address, wanted, &partial).await {
                Ok(()) => {
                    make_executable(&partial).map_err(disk)?;
                    std::fs::rename(&partial, &path).map_err(disk)?;
                    self.touch(id);
                    tracing::info!(build = %id, from = %holder, bytes = wanted.size, "fetched a build");
                    return Ok(path);
                }
                Err(e) => {
                    tracing::warn!(build = %id, from = %holder, "fetching a build failed, trying again: {e}");
                    let _ = std::fs::remove_file(&partial);
                    why = e;
                }
            }
        }
        Err(FetchError::NoGoodCopy { build: id, why })
    }

    /// Deletes the least recently used builds no process runs, past the size limit.
    pub fn evict(&self, running: &[BuildId]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let cached: Vec<Cached> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let id = BuildId::from_hex(e.file_name().to_str()?)?;
                let meta = e.metadata().ok()?;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                Some(Cached {
                    id,
                    size: meta.len(),
                    last_used: used.get(&id).copied().unwrap_or(modified),
                    in_use: running.contains(&id),
                })
            })
            .collect();
        for id in build::evict(&cached, self.limit) {
            tracing::info!(build = %id, "evicted a build from the cache");
            let _ = std::fs::remove_file(self.path(id));
            self.used
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
    }

    /// A chunk of build `id` for a peer: from this process's own executable, or the cache.
    pub fn read_chunk(&self, id: BuildId, offset: u64, len: u32) -> Result<Vec<u8>, String> {
        let path = match this_build() {
            Some(b) if b.id == id => std::env::current_exe().map_err(|e| e.to_string())?,
            _ if self.has(id) => self.path(id),
            _ => return Err(format!("this node has no copy of build {id}")),
        };
        let mut file = File::open(&path).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(len.min(BUILD_CHUNK) as usize);
        file.take(u64::from(len.min(BUILD_CHUNK)))
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }
}

/// Fetches `wanted` from the node at `address` into `partial`, chunk by chunk, checking its
/// length and hash.
async fn fetch_into(
    endpoint: &Endpoint,
    address: std::net::SocketAddr,
    wanted: &Build,
    partial: &Path,
) -> Result<(), String> {
    let mut file = File::create(partial).map_err(|e| format!("cannot write: {e}"))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut offset = 0u64;
    while offset < wanted.size {
        let len = (wanted.size - offset).min(u64::from(BUILD_CHUNK)) as u32;
        let request = Message::FetchBuild {
            build: wanted.id,
            offset,
            len,
        };
        let bytes = match endpoint.request(address, &request).await {
            Ok((Message::BuildBytes(bytes), _)) => bytes,
            Ok((other, _)) => return Err(format!("answered {}", other.name())),
            Err(e) => return Err(e.to_string()),
        };
        if bytes.len() != len as usize {
            return Err(format!(
                "a chunk at {offset} has {} bytes, not {len}: the copy is truncated",
                bytes.len()
            ));
        }
        context.update(&bytes);
        file.write_all(&bytes)
            .map_err(|e| format!("cannot write: {e}"))?;
        offset += u64::from(len);
    }
    if context.finish().as_ref() != wanted.id.0 {
        return Err("the bytes do not hash to the build's id: the copy is corrupt".into());
    }
    file.sync_all().map_err(|e| format!("cannot write: {e}"))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}
