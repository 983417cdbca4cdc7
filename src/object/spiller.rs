//! A spiller actor: the file I/O of one shard. Spillers live on the store's own thread, so
//! encoding and disk writes never stall the runtime thread.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::prelude::*;

use super::id::ObjectId;
use super::shard::{DeleteFiles, Restored, ShardActor, SpillWritten};
use super::table::SpillFile;
use super::value::StoredValue;
use crate::error::GetError;
use crate::runtime::panic::panic_message;

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
    pub value: StoredValue,
    pub reply: Addr<ShardActor>,
}

impl Handler<WriteSpill> for Spiller {
    type Result = ();

    fn handle(&mut self, msg: WriteSpill, _: &mut Context<Self>) {
        let WriteSpill { id, value, reply } = msg;
        let encoded = match catch_unwind(AssertUnwindSafe(|| value.encode())) {
            Ok(Ok(e)) => e,
            Ok(Err(reason)) => {
                let reason = format!("cannot encode a {}: {reason}", (value.vtable.type_name)());
                return reply.do_send(SpillWritten {
                    id,
                    result: Err(SpillFailure {
                        reason,
                        permanent: true,
                    }),
                });
            }
            Err(panic) => {
                let reason = format!(
                    "encoding a {} panicked: {}",
                    (value.vtable.type_name)(),
                    panic_message(&*panic)
                );
                return reply.do_send(SpillWritten {
                    id,
                    result: Err(SpillFailure {
                        reason,
                        permanent: true,
                    }),
                });
            }
        };
        drop(value);
        let path = self.path_of(id);
        let result = write_file(&path, &encoded.bytes)
            .map(|()| {
                (
                    SpillFile {
                        path: path.clone(),
                        contained: encoded.contained,
                        actors: encoded.actors,
                    },
                    encoded.bytes.len() as u64,
                )
            })
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                SpillFailure {
                    reason: format!("writing {}: {e}", path.display()),
                    permanent: false,
                }
            });
        reply.do_send(SpillWritten { id, result });
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(MAGIC)?;
    f.write_all(bytes)?;
    f.flush()
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
        let result = match std::fs::read(&msg.path) {
            Ok(bytes) if bytes.starts_with(MAGIC) => Ok(Arc::from(&bytes[MAGIC.len()..])),
            Ok(_) => Err("the file is not a Mobula spill file".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let result = result.map_err(|reason| GetError::RestoreFailed {
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
