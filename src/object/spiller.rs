//! A spiller actor: the file I/O of one shard. Spillers live on the store's own thread, so
//! encoding and disk writes never stall the runtime thread.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::prelude::*;

use super::shard::{DeleteFiles, Restored, ShardActor, SpillWritten};
use super::table::SpillFile;
use super::value::{Contained, StoredValue};
use crate::base::error::GetError;
use crate::base::id::ObjectId;
use crate::base::panic::panic_message;

/// File header: magic and format version.
const MAGIC: &[u8; 8] = b"MOBSPL01";

pub(crate) struct Spiller {
    dir: PathBuf,
}

impl Spiller {
    pub fn new(dir: PathBuf) -> Self {
        Spiller { dir }
    }

    fn path_of(&self, id: ObjectId) -> PathBuf {
        self.dir.join(format!("{id}.spill"))
    }
}

impl Actor for Spiller {
    type Context = Context<Self>;
}

impl Supervised for Spiller {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(dir = %self.dir.display(), "spiller restarted after a failure");
    }
}

/// Why a spill did not happen.
#[derive(Debug, Clone)]
pub(crate) struct SpillFailure {
    pub reason: String,
    /// Retrying would fail the same way (the value cannot be encoded).
    pub permanent: bool,
}

/// Write one object to disk.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct WriteSpill {
    pub id: ObjectId,
    pub value: Payload,
    pub reply: Addr<ShardActor>,
}

/// What a spill writes: a typed value (encoded on the way), or bytes already encoded (read
/// from another node and not decoded yet).
pub(crate) enum Payload {
    Value(StoredValue),
    Bytes(Arc<Vec<u8>>),
}

impl Handler<WriteSpill> for Spiller {
    type Result = ();

    fn handle(&mut self, msg: WriteSpill, _: &mut Context<Self>) {
        let WriteSpill { id, value, reply } = msg;
        let path = self.path_of(id);
        let written = match &value {
            Payload::Value(value) => catch_unwind(AssertUnwindSafe(|| write_file(&path, value)))
                .unwrap_or_else(|panic| {
                    let reason = format!(
                        "encoding a {} panicked: {}",
                        (value.vtable.type_name)(),
                        panic_message(&*panic)
                    );
                    Err(SpillFailure {
                        reason,
                        permanent: true,
                    })
                }),
            Payload::Bytes(bytes) => write_bytes(&path, bytes),
        };
        drop(value);
        let result = match written {
            Ok((found, bytes)) => Ok((
                SpillFile {
                    path,
                    contained: found.objects,
                    actors: found.actors,
                },
                bytes,
            )),
            Err(failure) => {
                let _ = std::fs::remove_file(&path);
                Err(failure)
            }
        };
        reply.do_send(SpillWritten { id, result });
    }
}

/// A file writer that remembers whether the disk failed, to tell disk errors (worth retrying)
/// from encoding errors (not).
struct SpillOut {
    file: BufWriter<File>,
    written: u64,
    disk_error: Option<std::io::Error>,
}

impl Write for SpillOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.file.write(buf) {
            Ok(n) => {
                self.written += n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.disk_error = Some(e);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// A disk error while writing `path`: worth retrying.
fn disk_error(path: &Path) -> impl Fn(std::io::Error) -> SpillFailure + Copy + '_ {
    move |e| SpillFailure {
        reason: format!("writing {}: {e}", path.display()),
        permanent: false,
    }
}

/// A new spill file, readable by this user only (a spilled value is the program's data).
fn create(path: &Path) -> Result<File, SpillFailure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(disk_error(path))
}

/// Streams the value to a new spill file; returns what it contains and the bytes written.
fn write_file(path: &Path, value: &StoredValue) -> Result<(Contained, u64), SpillFailure> {
    let disk = disk_error(path);
    let file = create(path)?;
    let mut out = SpillOut {
        file: BufWriter::with_capacity(1 << 20, file),
        written: 0,
        disk_error: None,
    };
    out.write_all(MAGIC).map_err(disk)?;
    match value.write_to(&mut out) {
        Ok(found) => {
            out.flush().map_err(disk)?;
            Ok((found, out.written))
        }
        Err(reason) => Err(match out.disk_error.take() {
            Some(e) => disk(e),
            None => SpillFailure {
                reason: format!("cannot encode a {}: {reason}", (value.vtable.type_name)()),
                permanent: true,
            },
        }),
    }
}

/// Writes bytes already encoded to a new spill file, after its header; they hold no refs
/// this node tracks (they were never decoded here).
fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(Contained, u64), SpillFailure> {
    let disk = disk_error(path);
    let mut file = BufWriter::with_capacity(1 << 20, create(path)?);
    file.write_all(MAGIC).map_err(disk)?;
    file.write_all(bytes).map_err(disk)?;
    file.flush().map_err(disk)?;
    Ok((Contained::default(), (MAGIC.len() + bytes.len()) as u64))
}

/// Reads a spill file's payload (after its header) without copying it again.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut header = [0u8; MAGIC.len()];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    if &header != MAGIC {
        return Err("the file is not a Mobula spill file".into());
    }
    let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut payload = Vec::with_capacity(size.saturating_sub(MAGIC.len()));
    file.read_to_end(&mut payload).map_err(|e| e.to_string())?;
    Ok(payload)
}

/// Read one object back.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadSpill {
    pub id: ObjectId,
    pub path: PathBuf,
    pub reply: Addr<ShardActor>,
}

impl Handler<ReadSpill> for Spiller {
    type Result = ();

    fn handle(&mut self, msg: ReadSpill, _: &mut Context<Self>) {
        let result = read_file(&msg.path)
            .map(Arc::new)
            .map_err(|reason| GetError::RestoreFailed {
                object_id: msg.id,
                path: msg.path,
                reason,
            });
        msg.reply.do_send(Restored { id: msg.id, result });
    }
}

impl Handler<DeleteFiles> for Spiller {
    type Result = ();

    fn handle(&mut self, DeleteFiles(paths): DeleteFiles, _: &mut Context<Self>) {
        for p in paths {
            if let Err(e) = std::fs::remove_file(&p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "could not delete a spill file");
            }
        }
    }
}
