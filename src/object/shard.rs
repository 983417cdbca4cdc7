//! A store shard actor: the lifecycle of the objects in one shard of the table.
//!
//! It drops freed values (their `Drop` is user code), carries out spills chosen by the store
//! supervisor, asks its spiller to read objects back, and turns the spiller's answers into
//! table transitions. It is supervised: if user code panics inside it, it stops and its
//! supervisor starts it again with the same mailbox and the same table, so no object and no
//! queued request is lost.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::spiller::{Payload, ReadSpill, SpillFailure, Spiller, WriteSpill};
use super::store::Store;
use super::supervisor::{SpillReport, StoreSupervisor};
use super::table::{Source, SpillFile, SpillStart};
use crate::base::error::GetError;
use crate::base::id::ObjectId;

pub(crate) struct ShardActor {
    index: usize,
    store: Store,
    supervisor: Addr<StoreSupervisor>,
    spiller: Addr<Spiller>,
}

impl ShardActor {
    pub fn new(
        index: usize,
        store: Store,
        supervisor: Addr<StoreSupervisor>,
        spiller: Addr<Spiller>,
    ) -> Self {
        ShardActor {
            index,
            store,
            supervisor,
            spiller,
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;
}

impl Supervised for ShardActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.store
            .counters
            .shard_restarts
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            shard = self.index,
            "object store shard restarted after a failure"
        );
    }
}

/// Drop the values in this shard's graveyard.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DropValues;

impl Handler<DropValues> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: DropValues, ctx: &mut Context<Self>) {
        let values = std::mem::take(
            &mut *self.store.shards[self.index]
                .graveyard
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let mut panics = 0;
        for v in values {
            if catch_unwind(AssertUnwindSafe(move || drop(v))).is_err() {
                panics += 1;
            }
        }
        if panics > 0 {
            tracing::error!(
                shard = self.index,
                panics,
                "a stored value panicked in Drop; restarting the shard"
            );
            ctx.stop();
        }
    }
}

/// Delete spill files of freed objects.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct DeleteFiles(pub Vec<PathBuf>);

impl Handler<DeleteFiles> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: DeleteFiles, _: &mut Context<Self>) {
        self.spiller.do_send(msg);
    }
}

/// Read a spilled object back into memory.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RestoreObject(pub ObjectId);

impl Handler<RestoreObject> for ShardActor {
    type Result = ();

    fn handle(&mut self, RestoreObject(id): RestoreObject, ctx: &mut Context<Self>) {
        let source = self.store.table(self.index).restore_source(id);
        let remote = self.store.remote_objects().cloned();
        match (source, remote) {
            (Some(Source::File(path)), _) => self.spiller.do_send(ReadSpill {
                id,
                path,
                reply: ctx.address(),
            }),
            (Some(Source::Node(copy)), Some(remote)) => {
                remote.fetch(id, copy, ctx.address().recipient());
            }
            (source, _) => {
                let reason = match source {
                    Some(Source::Node(copy)) => format!(
                        "it is on node {} and this process is no longer in its cluster",
                        copy.node
                    ),
                    _ => "its spill file is unknown".into(),
                };
                let err = GetError::ObjectLost {
                    object_id: id,
                    reason,
                };
                let fx = self
                    .store
                    .table(self.index)
                    .finish_restore(id, Err(Arc::new(err)));
                self.store.apply(self.index, fx);
            }
        }
    }
}

/// A spilled object was read back (or could not be).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Restored {
    pub id: ObjectId,
    pub result: Result<Arc<Vec<u8>>, GetError>,
}

impl Handler<Restored> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Restored, _: &mut Context<Self>) {
        if msg.result.is_ok() {
            self.store
                .counters
                .restored_objects
                .fetch_add(1, Ordering::Relaxed);
        }
        let fx = self
            .store
            .table(self.index)
            .finish_restore(msg.id, msg.result.map_err(Arc::new));
        self.store.apply(self.index, fx);
    }
}

/// Spill these objects (chosen by the supervisor).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SpillObjects(pub Vec<ObjectId>);

impl Handler<SpillObjects> for ShardActor {
    type Result = ();

    fn handle(&mut self, SpillObjects(ids): SpillObjects, ctx: &mut Context<Self>) {
        for id in ids {
            let start = self.store.table(self.index).begin_spill(id);
            match start {
                SpillStart::Write(value) => {
                    self.spiller.do_send(WriteSpill {
                        id,
                        value: Payload::Value(value),
                        reply: ctx.address(),
                    });
                }
                SpillStart::WriteBytes(bytes) => {
                    self.spiller.do_send(WriteSpill {
                        id,
                        value: Payload::Bytes(bytes),
                        reply: ctx.address(),
                    });
                }
                SpillStart::Done(fx) => {
                    self.store.apply(self.index, fx);
                    self.supervisor.do_send(SpillReport {
                        transient_failure: false,
                    });
                }
                SpillStart::Skip => self.supervisor.do_send(SpillReport {
                    transient_failure: false,
                }),
            }
        }
    }
}

/// The spiller's answer to a write.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SpillWritten {
    pub id: ObjectId,
    pub result: Result<(SpillFile, u64), SpillFailure>,
}

impl Handler<SpillWritten> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: SpillWritten, _: &mut Context<Self>) {
        let transient_failure = match msg.result {
            Ok((file, written)) => {
                let counters = &self.store.counters;
                counters.spilled_objects.fetch_add(1, Ordering::Relaxed);
                counters.spilled_bytes.fetch_add(written, Ordering::Relaxed);
                let fx = self.store.table(self.index).finish_spill(msg.id, file);
                self.store.apply(self.index, fx);
                false
            }
            Err(failure) => {
                self.store
                    .counters
                    .spill_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %msg.id, reason = %failure.reason, permanent = failure.permanent,
                    "could not spill object; it stays in memory");
                self.store
                    .table(self.index)
                    .abort_spill(msg.id, failure.permanent);
                !failure.permanent
            }
        };
        self.supervisor.do_send(SpillReport { transient_failure });
    }
}
