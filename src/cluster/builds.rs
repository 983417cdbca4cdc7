//! Builds on disk: this process's own build (its executable, hashed once), a node's cache of
//! builds fetched from peers (by hash, in chunks, verified before use, evicted least
//! recently used past a size limit), and the chunks a node serves to peers that fetch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::base::build::{self, Build, BuildId, Cached};
use crate::base::id::NodeId;
use crate::base::node_config::ENV_BUILD_ID;
use crate::runtime::registry;
use crate::transport::endpoint::Endpoint;
use crate::transport::link;
use crate::wire::Message;

static BUILD: OnceLock<Option<Build>> = OnceLock::new();

/// This process's build: `None` for a process without user code (the `mobula` CLI, whose
/// nodes run other programs' builds), else its executable's hash, size and platform; `None`
/// too before [`find_this_build`] ran.
pub(crate) fn this_build() -> Option<&'static Build> {
    BUILD.get().and_then(Option::as_ref)
}

/// Finds this process's build, once: from the agent that started it (which fetched it by
/// its hash), else from what `dir` remembers of this executable (the same path, size, inode
/// and modification time), else by hashing it (and remembering that in `dir`).
pub(crate) fn find_this_build(dir: &Path) -> Option<&'static Build> {
    BUILD
        .get_or_init(|| {
            if registry::announced_fingerprint() == 0 {
                return None;
            }
            let exe = std::env::current_exe().ok()?;
            let size = std::fs::metadata(&exe).ok()?.len();
            // `HASH:SIZE`; taken only if the size is this executable's (a child process of
            // another program inherits the variable).
            let given = std::env::var(ENV_BUILD_ID).ok().and_then(|v| {
                let (hex, given_size) = v.split_once(':')?;
                (given_size.parse() == Ok(size)).then(|| BuildId::from_hex(hex))?
            });
            let id = match given {
                Some(id) => Ok(id),
                None => hash_remembered(&exe, dir),
            };
            match id {
                Ok(id) => Some(Build {
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

/// The hash of `exe`, from `dir/builds/hashes` when it has not changed since it was hashed.
fn hash_remembered(exe: &Path, dir: &Path) -> std::io::Result<BuildId> {
    let meta = std::fs::metadata(exe)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let key = format!("{} {} {inode} {modified}", exe.display(), meta.len());
    let hashes = dir.join("builds").join("hashes");
    if let Ok(known) = std::fs::read_to_string(&hashes)
        && let Some(hex) = known
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        && let Some(id) = BuildId::from_hex(hex)
    {
        return Ok(id);
    }
    let (id, _) = hash_file(exe)?;
    // Remembered for the next run of the same executable (the latest 64 kept).
    let mut lines: Vec<String> = std::fs::read_to_string(&hashes)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with(&format!("{} ", exe.display())))
        .map(str::to_string)
        .collect();
    lines.push(format!("{key} = {}", id.hex()));
    let keep = lines.len().saturating_sub(64);
    if std::fs::create_dir_all(dir.join("builds")).is_ok() {
        let _ = std::fs::write(&hashes, lines[keep..].join("\n") + "\n");
    }
    Ok(id)
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

    /// Receives an upload of `build` (its bytes follow on `rx`), verifies it and keeps it;
    /// refused when it is larger than the cache may hold.
    pub async fn receive(
        &self,
        build: &Build,
        rx: &mut quinn::RecvStream,
    ) -> Result<PathBuf, String> {
        if build.size > self.limit {
            return Err(format!(
                "build {} is {} bytes, more than the cache holds ({})",
                build.id, build.size, self.limit
            ));
        }
        let path = self.path(build.id);
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let partial = self.dir.join(format!("{}.upload", build.id.hex()));
        let received = receive_into(rx, build, &partial).await;
        if let Err(e) = received {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        make_executable(&partial).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &path).map_err(|e| e.to_string())?;
        self.touch(build.id);
        Ok(path)
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

    /// The file holding build `id` here: this process's own executable, or the cache's copy.
    fn file_of(&self, id: BuildId) -> Result<PathBuf, String> {
        match this_build() {
            Some(b) if b.id == id => std::env::current_exe().map_err(|e| e.to_string()),
            _ if self.has(id) => Ok(self.path(id)),
            _ => Err(format!("this node has no copy of build {id}")),
        }
    }

    /// Serves build `id` from `offset` on `tx`: a [`Message::BuildBytes`] frame, then the
    /// bytes raw, read in pieces off the event loop. An error before anything was sent is
    /// returned (to be answered as a refusal); one after ends the stream short, which the
    /// fetching node refuses as truncated.
    pub async fn serve(
        &self,
        id: BuildId,
        offset: u64,
        tx: &mut quinn::SendStream,
    ) -> Result<(), String> {
        let path = self.file_of(id)?;
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        let len = size.saturating_sub(offset);
        TRANSFERS_SERVED.fetch_add(1, Ordering::Relaxed);
        if let Err(why) = send_file(file, offset, len, tx).await {
            tracing::warn!(build = %id, "serving build {id} broke off: {why}");
            let _ = tx.reset(quinn::VarInt::from_u32(0));
        }
        Ok(())
    }
}

/// Sends `len` bytes of `file` from `offset` after their header frame.
async fn send_file(
    mut file: File,
    offset: u64,
    len: u64,
    tx: &mut quinn::SendStream,
) -> Result<(), String> {
    link::send(tx, &Message::BuildBytes { len })
        .await
        .map_err(|e| e.to_string())?;
    let (corrupt, truncate) = faults::take();
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| e.to_string())?;
    let mut sent = 0u64;
    let mut file = Some(file);
    while sent < len {
        let piece = (len - sent).min(PIECE) as usize;
        let mut f = file.take().ok_or("the file went")?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; piece];
            f.read_exact(&mut buffer).map(|()| (f, buffer))
        });
        let (f, mut buffer) = read
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        file = Some(f);
        if corrupt && sent == 0 {
            let middle = buffer.len() / 2;
            buffer[middle] ^= 0xff;
        }
        sent += buffer.len() as u64;
        if truncate && sent == len {
            buffer.pop();
        }
        link::send_bytes(tx, &buffer)
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.finish().map_err(|e| e.to_string())
}

/// How much of a build is read from disk, and written, at a time.
const PIECE: u64 = 4 << 20;

/// Fetches `wanted` from the node at `address` into `partial` on one stream, checking its
/// length and hash as the bytes arrive.
async fn fetch_into(
    endpoint: &Endpoint,
    address: std::net::SocketAddr,
    wanted: &Build,
    partial: &Path,
) -> Result<(), String> {
    let request = Message::FetchBuild {
        build: wanted.id,
        offset: 0,
    };
    let mut rx = match endpoint.request(address, &request).await {
        Ok((Message::BuildBytes { len }, rx)) if len == wanted.size => rx,
        Ok((Message::BuildBytes { len }, _)) => {
            return Err(format!(
                "it offers {len} bytes, not the build's {}",
                wanted.size
            ));
        }
        Ok((other, _)) => return Err(format!("answered {}", other.name())),
        Err(e) => return Err(e.to_string()),
    };
    receive_into(&mut rx, wanted, partial).await
}

/// Reads `wanted.size` bytes of `wanted` from `rx` into `partial`, checking their hash. The
/// bytes are hashed and written in pieces off the event loop (a build can be hundreds of
/// megabytes, and the loop also keeps the node's heartbeats), as `send_file` reads them.
async fn receive_into(
    rx: &mut quinn::RecvStream,
    wanted: &Build,
    partial: &Path,
) -> Result<(), String> {
    let cannot_write = |e: std::io::Error| format!("cannot write: {e}");
    let file = File::create(partial).map_err(cannot_write)?;
    let mut sink = Some((file, ring::digest::Context::new(&ring::digest::SHA256)));
    let mut piece: Vec<bytes::Bytes> = Vec::new();
    let mut piece_len = 0u64;
    let mut got = 0u64;
    while got < wanted.size {
        let left = usize::try_from(wanted.size - got).unwrap_or(usize::MAX);
        match rx.read_chunk(left.min(PIECE as usize), true).await {
            Ok(Some(chunk)) => {
                got += chunk.bytes.len() as u64;
                piece_len += chunk.bytes.len() as u64;
                piece.push(chunk.bytes);
            }
            Ok(None) => {
                return Err(format!(
                    "the transfer ended after {got} of {} bytes: the copy is truncated",
                    wanted.size
                ));
            }
            Err(e) => return Err(format!("the transfer broke after {got} bytes: {e}")),
        }
        if piece_len >= PIECE || got == wanted.size {
            let (mut file, mut context) = sink.take().ok_or("the file went")?;
            let bytes = std::mem::take(&mut piece);
            piece_len = 0;
            let written = tokio::task::spawn_blocking(move || {
                for b in &bytes {
                    context.update(b);
                    file.write_all(b)?;
                }
                Ok::<_, std::io::Error>((file, context))
            });
            sink = Some(
                written
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(cannot_write)?,
            );
        }
    }
    let (file, context) = sink.take().ok_or("the file went")?;
    if context.finish().as_ref() != wanted.id.0 {
        return Err("the bytes do not hash to the build's id: the copy is corrupt".into());
    }
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| e.to_string())?
        .map_err(cannot_write)
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

/// Transfers of builds this process served to peers.
static TRANSFERS_SERVED: AtomicU64 = AtomicU64::new(0);

/// How many times this process has served a build to a peer that fetched it.
pub fn transfers_served() -> u64 {
    TRANSFERS_SERVED.load(Ordering::Relaxed)
}

/// Fault injection for tests: builds this process serves come out corrupt or cut short.
pub mod faults {
    use super::{AtomicU32, Ordering};

    static CORRUPT: AtomicU32 = AtomicU32::new(0);
    static TRUNCATE: AtomicU32 = AtomicU32::new(0);

    /// The next `corrupt` transfers served have a byte flipped; the `truncate` after them
    /// lose their last byte.
    pub fn spoil_next_transfers(corrupt: u32, truncate: u32) {
        CORRUPT.store(corrupt, Ordering::Relaxed);
        TRUNCATE.store(truncate, Ordering::Relaxed);
    }

    fn take_one(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether the transfer starting now is to be corrupt, or truncated.
    pub(super) fn take() -> (bool, bool) {
        if take_one(&CORRUPT) {
            (true, false)
        } else {
            (false, take_one(&TRUNCATE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_hash_is_the_files_and_a_changed_file_is_hashed_again() {
        let dir = std::env::temp_dir().join(format!("mobula-hashes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("program");
        std::fs::write(&exe, b"first build").unwrap();
        let first = hash_remembered(&exe, &dir).unwrap();
        assert_eq!(first, hash_file(&exe).unwrap().0);
        assert!(dir.join("builds").join("hashes").is_file());
        assert_eq!(hash_remembered(&exe, &dir).unwrap(), first, "remembered");
        std::fs::write(&exe, b"second build!").unwrap();
        let second = hash_remembered(&exe, &dir).unwrap();
        assert_ne!(second, first);
        assert_eq!(second, hash_file(&exe).unwrap().0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
