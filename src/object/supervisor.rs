//! The store supervisor: root of the object store's actor tree.
//!
//! It starts the shard actors (each under an actix `Supervisor`, so a failed shard restarts
//! with its mailbox intact) and their spillers (on a thread of their own, for file I/O), and
//! it runs reclaims: when memory use passes the limit it picks the least recently used objects
//! that nobody is reading, across all shards, and has their shards spill them.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;

use super::eviction::{bytes_to_free, choose_victims};
use super::shard::{ShardActor, SpillObjects};
use super::spiller::Spiller;
use super::store::{SHARDS, Store, StoreActors};

/// How long to wait before spilling again after a write failed (a full disk, say).
const RETRY_AFTER_IO_FAILURE: Duration = Duration::from_secs(1);

pub(crate) struct StoreSupervisor {
    store: Store,
    spill_thread: Option<Arbiter>,
    shards: Vec<Addr<ShardActor>>,
    in_flight: usize,
    transient_failures: bool,
}

impl StoreSupervisor {
    /// Starts the store's actor tree and hands its addresses to the store before returning,
    /// so that the store's hot paths reach its actors from the first put on.
    pub fn start_tree(store: Store) -> Addr<StoreSupervisor> {
        StoreSupervisor::create(|ctx| {
            let spill_thread = Arbiter::new();
            let me = ctx.address();
            let shards: Vec<_> = (0..SHARDS)
                .map(|index| {
                    let dir = store.spill_dir.clone();
                    let spiller =
                        actix::Supervisor::start_in_arbiter(&spill_thread.handle(), move |_| {
                            Spiller::new(dir)
                        });
                    let (store, me) = (store.clone(), me.clone());
                    actix::Supervisor::start(move |_| ShardActor::new(index, store, me, spiller))
                })
                .collect();
            store.install_actors(StoreActors {
                supervisor: me,
                shards: shards.clone(),
            });
            StoreSupervisor {
                store,
                spill_thread: Some(spill_thread),
                shards,
                in_flight: 0,
                transient_failures: false,
            }
        })
    }
}

impl Actor for StoreSupervisor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(t) = self.spill_thread.take() {
            t.stop();
        }
    }
}

/// Memory use passed the limit: spill something.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reclaim;

impl Handler<Reclaim> for StoreSupervisor {
    type Result = ();

    fn handle(&mut self, _: Reclaim, _: &mut Context<Self>) {
        if self.in_flight > 0 {
            return; // the round in progress checks again when it ends
        }
        let need = bytes_to_free(self.store.memory_used(), self.store.memory_limit);
        if need == 0 {
            return self.store.reclaim_finished();
        }
        let mut candidates = Vec::new();
        for index in 0..SHARDS {
            self.store.table(index).spill_candidates(&mut candidates);
        }
        let victims = choose_victims(candidates, need);
        if victims.is_empty() {
            tracing::debug!(
                need,
                "over the memory limit but every object is in use; nothing to spill"
            );
            return self.store.reclaim_abandoned();
        }
        self.in_flight = victims.len();
        let mut by_shard: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for v in victims {
            by_shard
                .entry(Store::shard_index(v.id))
                .or_default()
                .push(v.id);
        }
        for (index, ids) in by_shard {
            self.shards[index].do_send(SpillObjects(ids));
        }
    }
}

/// One object of a reclaim round is done with (spilled, skipped or failed).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct SpillReport {
    pub transient_failure: bool,
}

impl Handler<SpillReport> for StoreSupervisor {
    type Result = ();

    fn handle(&mut self, report: SpillReport, ctx: &mut Context<Self>) {
        self.transient_failures |= report.transient_failure;
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight > 0 {
            return;
        }
        if std::mem::take(&mut self.transient_failures) {
            ctx.run_later(RETRY_AFTER_IO_FAILURE, |act, _| {
                act.store.reclaim_finished()
            });
        } else {
            self.store.reclaim_finished();
        }
    }
}
