//! The streaming executor: each operator of a plan is a pull-based stream of blocks in the
//! object store. An operator keeps at most a window of tasks in flight and hands on a block
//! only once its task has finished, so a dataset larger than memory flows through with a
//! bounded number of blocks alive (back-pressure); the consumer pulling is what makes more
//! work start. Blocks come out in the order of their inputs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::DataError;
use super::batch::Batch;
use super::source::Read;
use super::stage::{self, Stage};
use super::stats::{OpStats, Stats};
use crate::{GetError, ObjectRef, Split};

/// What the driver learns of a block when its task ends (Ray Data's block metadata).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct BlockMeta {
    pub rows: u64,
    pub bytes: u64,
    /// The file the block was read from.
    pub file: Option<String>,
    /// Why the task could not make the block (the block is then empty).
    pub error: Option<DataError>,
}

/// A block in the store, with what is known of it.
#[derive(Clone, Debug)]
pub(crate) struct BlockRef {
    pub batch: ObjectRef<Batch>,
    pub rows: u64,
    pub bytes: u64,
    pub file: Option<String>,
}

/// A stream of blocks.
pub(crate) type Blocks = Box<dyn Iterator<Item = Result<BlockRef, DataError>> + Send>;

/// `stages` on `batch`; an error names the operator, the block and the file.
fn apply_stages(
    mut batch: RecordBatch,
    stages: &[Stage],
    block: usize,
    file: &Option<String>,
) -> Result<RecordBatch, DataError> {
    for stage in stages {
        batch = stage.apply(batch).map_err(|reason| DataError::Operator {
            operator: stage.name(),
            block,
            file: file.clone(),
            reason,
        })?;
    }
    Ok(batch)
}

/// The block a task made, or why it could not.
pub(crate) fn finish(
    made: Result<RecordBatch, DataError>,
    file: Option<String>,
) -> (Batch, BlockMeta) {
    match made {
        Ok(batch) => {
            let batch = Batch::new(batch);
            let meta = BlockMeta {
                rows: batch.num_rows() as u64,
                bytes: batch.memory_size(),
                file,
                error: None,
            };
            (batch, meta)
        }
        Err(error) => (
            Batch::empty(),
            BlockMeta {
                file,
                error: Some(error),
                ..Default::default()
            },
        ),
    }
}

/// Reads a block and runs the fused operators on it. The operators that work row by row
/// (a filter, an expression, a function without a batch size) run on each chunk as it is
/// decoded, while it is in cache, and only their output is put together; the rest run on
/// the block.
fn read_and_apply(
    read: &Read,
    stages: &[Stage],
    block: usize,
    file: &Option<String>,
) -> Result<RecordBatch, DataError> {
    let streamed = stages.iter().take_while(|s| s.row_local()).count();
    if streamed == 0 {
        return apply_stages(read.run()?, stages, block, file);
    }
    let (head, rest) = stages.split_at(streamed);
    let chunks = read.chunks()?;
    let mut outs = Vec::new();
    for chunk in chunks.batches {
        outs.push(apply_stages(chunk?, head, block, file)?);
    }
    let joined = if outs.is_empty() {
        apply_stages(RecordBatch::new_empty(chunks.schema), head, block, file)?
    } else {
        stage::concat(&outs).map_err(|reason| DataError::Operator {
            operator: head.last().map(Stage::name).unwrap_or_default(),
            block,
            file: file.clone(),
            reason,
        })?
    };
    apply_stages(joined, rest, block, file)
}

/// Reads a block and runs the fused operators on it (one task).
#[crate::remote(num_returns = 2)]
fn read_block(read: Read, stages: Vec<Stage>, block: usize) -> (Batch, BlockMeta) {
    let file = read.file().map(str::to_string);
    let made = read_and_apply(&read, &stages, block, &file);
    finish(made, file)
}

/// Runs the fused operators on a block already in the store (one task).
#[crate::remote(num_returns = 2)]
fn map_block(
    input: Batch,
    stages: Vec<Stage>,
    block: usize,
    file: Option<String>,
) -> (Batch, BlockMeta) {
    let made = apply_stages(input.into_inner(), &stages, block, &file);
    finish(made, file)
}

/// Rows `offset..offset + len` of a block (no copy on the block's node).
#[crate::remote]
fn slice_block(input: Batch, offset: usize, len: usize) -> Batch {
    Batch::new(input.slice(offset, len.min(input.num_rows().saturating_sub(offset))))
}

/// What an actor-pool call made: its block's metadata.
#[crate::remote]
fn describe_block(input: Batch) -> BlockMeta {
    BlockMeta {
        rows: input.num_rows() as u64,
        bytes: input.memory_size(),
        file: None,
        error: None,
    }
}

/// How a task of an operator is run.
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskResources {
    pub num_cpus: Option<f64>,
    pub num_gpus: Option<f64>,
    pub max_retries: Option<i64>,
}

impl TaskResources {
    /// `builder` asking for these resources.
    pub fn apply<F: crate::base::function::RemoteFunction, P>(
        &self,
        mut o: crate::api::function::TaskBuilder<F, P>,
    ) -> crate::api::function::TaskBuilder<F, P> {
        if let Some(c) = self.num_cpus {
            o = o.num_cpus(c);
        }
        if let Some(g) = self.num_gpus {
            o = o.num_gpus(g);
        }
        if let Some(r) = self.max_retries {
            o = o.max_retries(r);
        }
        o
    }
}

/// Tasks an operator keeps in flight: two per CPU of the cluster, at least 2.
pub(crate) fn default_window() -> usize {
    let cpus = crate::api::node::cluster_resources()
        .get("CPU")
        .copied()
        .unwrap_or(2.0);
    ((cpus * 2.0).ceil() as usize).max(2)
}

enum Input {
    Reads(std::vec::IntoIter<Read>),
    Blocks(Blocks),
}

struct InFlight {
    batch: ObjectRef<Batch>,
    meta: ObjectRef<BlockMeta>,
    block: usize,
    file: Option<String>,
}

/// Errors tolerated across one execution (Ray Data's `max_errored_blocks`).
#[derive(Clone)]
pub(crate) struct Tolerance {
    pub allowed: usize,
    pub seen: Arc<Mutex<Vec<DataError>>>,
}

impl Tolerance {
    /// Whether `e` is skipped (and recorded) rather than ending the run.
    fn skip(&self, e: &DataError) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < self.allowed {
            tracing::warn!("a block failed and is skipped: {e}");
            seen.push(e.clone());
            true
        } else {
            false
        }
    }
}

/// Fused per-block operators run as tasks.
pub(crate) struct TaskOp {
    input: Input,
    stages: Arc<Vec<Stage>>,
    resources: TaskResources,
    window: usize,
    flight: VecDeque<InFlight>,
    next_block: usize,
    tolerance: Tolerance,
    stats: OpStats,
    done: bool,
}

impl TaskOp {
    pub fn reads(
        reads: Vec<Read>,
        stages: Vec<Stage>,
        resources: TaskResources,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Self {
        let mut name = reads.first().map_or("read", |r| r.operator()).to_string();
        for s in &stages {
            name.push_str("->");
            name.push_str(&s.name());
        }
        Self::new(
            Input::Reads(reads.into_iter()),
            name,
            stages,
            resources,
            tolerance,
            stats,
        )
    }

    pub fn blocks(
        input: Blocks,
        stages: Vec<Stage>,
        resources: TaskResources,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Self {
        let name = stages
            .iter()
            .map(Stage::name)
            .collect::<Vec<_>>()
            .join("->");
        Self::new(
            Input::Blocks(input),
            name,
            stages,
            resources,
            tolerance,
            stats,
        )
    }

    fn new(
        input: Input,
        name: String,
        stages: Vec<Stage>,
        resources: TaskResources,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Self {
        TaskOp {
            input,
            stages: Arc::new(stages),
            resources,
            window: default_window(),
            flight: VecDeque::new(),
            next_block: 0,
            tolerance,
            stats: stats.operator(&name),
            done: false,
        }
    }

    /// Starts one more task, if there is input; false when the input is used up.
    fn submit_one(&mut self) -> Result<bool, DataError> {
        let block = self.next_block;
        let stages = (*self.stages).clone();
        let (batch, meta, file) = match &mut self.input {
            Input::Reads(reads) => {
                let Some(read) = reads.next() else {
                    return Ok(false);
                };
                let file = read.file().map(str::to_string);
                let (b, m) = self
                    .resources
                    .apply(read_block.options())
                    .remote(read, stages, block)
                    .split();
                (b, m, file)
            }
            Input::Blocks(blocks) => match blocks.next() {
                None => return Ok(false),
                Some(Err(e)) => return Err(e),
                Some(Ok(input)) => {
                    let file = input.file.clone();
                    let (b, m) = self
                        .resources
                        .apply(map_block.options())
                        .remote(&input.batch, stages, block, file.clone())
                        .split();
                    (b, m, file)
                }
            },
        };
        self.stats.started();
        self.next_block += 1;
        self.flight.push_back(InFlight {
            batch,
            meta,
            block,
            file,
        });
        Ok(true)
    }
}

impl Iterator for TaskOp {
    type Item = Result<BlockRef, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            while !self.done && self.flight.len() < self.window {
                match self.submit_one() {
                    Ok(true) => {}
                    Ok(false) => self.done = true,
                    Err(e) => {
                        if self.tolerance.skip(&e) {
                            continue;
                        }
                        self.done = true;
                        self.flight.clear();
                        return Some(Err(e));
                    }
                }
            }
            let f = self.flight.pop_front()?;
            let meta = match f.meta.get() {
                Ok(meta) => meta,
                Err(e) => BlockMeta {
                    error: Some(DataError::Operator {
                        operator: self.stats.name(),
                        block: f.block,
                        file: f.file.clone(),
                        reason: runtime_reason(&e),
                    }),
                    ..Default::default()
                },
            };
            if let Some(e) = meta.error {
                if self.tolerance.skip(&e) {
                    continue;
                }
                self.done = true;
                self.flight.clear();
                return Some(Err(e));
            }
            self.stats.finished(meta.rows, meta.bytes);
            return Some(Ok(BlockRef {
                batch: f.batch,
                rows: meta.rows,
                bytes: meta.bytes,
                file: meta.file,
            }));
        }
    }
}

/// A get's error as the reason an operator failed.
pub(crate) fn runtime_reason(e: &GetError) -> String {
    match e {
        GetError::Task(t) => t.message.clone(),
        other => other.to_string(),
    }
}

/// A block for an actor: the call made on one actor of the pool.
pub(crate) type PoolCall<H> = Arc<dyn Fn(&H, ObjectRef<Batch>) -> ObjectRef<Batch> + Send + Sync>;

/// Makes one actor of a pool.
pub(crate) type PoolMake<H> = Arc<dyn Fn() -> Result<H, crate::ActorError> + Send + Sync>;

/// What an actor-pool operator is made of.
pub(crate) struct PoolPlan<H> {
    pub name: String,
    pub make: PoolMake<H>,
    pub call: PoolCall<H>,
    pub min: usize,
    pub max: usize,
    pub batch_size: Option<usize>,
}

/// How many times a block goes again to a new actor when the one it went to is lost.
const POOL_CALL_RETRIES: u32 = 3;

/// A call in flight on a pool's actor.
struct Call {
    slot: usize,
    /// The slot's actor generation the call went to.
    generation: u32,
    piece: ObjectRef<Batch>,
    out: ObjectRef<Batch>,
    meta: ObjectRef<BlockMeta>,
    block: usize,
    attempt: u32,
}

/// Whether a call failed because its actor (or the actor's node) was lost, not by what the
/// function did.
fn actor_lost(e: &GetError) -> bool {
    matches!(
        e,
        GetError::ActorDied { .. }
            | GetError::ActorRestarting { .. }
            | GetError::ActorUnavailable { .. }
            | GetError::ObjectLost { .. }
    )
}

/// `map_batches` on an actor pool: each block (cut to `batch_size` rows) goes to the actor
/// with the fewest calls in flight; the pool grows from `min` to `max` actors while every
/// actor has its fill of calls and blocks wait.
pub(crate) struct PoolOp<H> {
    input: Blocks,
    make: PoolMake<H>,
    call: PoolCall<H>,
    /// Each actor, its calls in flight, and how many actors its slot has had (a lost
    /// actor is replaced in its slot).
    actors: Vec<(H, usize, u32)>,
    max: usize,
    per_actor: usize,
    batch_size: Option<usize>,
    /// Pieces of input blocks not yet handed to an actor.
    pending: VecDeque<ObjectRef<Batch>>,
    flight: VecDeque<Call>,
    next_block: usize,
    tolerance: Tolerance,
    stats: OpStats,
    input_done: bool,
}

impl<H: Send + 'static> PoolOp<H> {
    pub fn new(
        input: Blocks,
        plan: &PoolPlan<H>,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Result<Self, DataError> {
        let (name, make) = (&plan.name, &plan.make);
        let mut actors = Vec::new();
        for _ in 0..plan.min.max(1) {
            actors.push((
                make().map_err(|e| {
                    DataError::Runtime(format!("{name}: cannot start an actor of the pool: {e}"))
                })?,
                0,
                0,
            ));
        }
        Ok(PoolOp {
            input,
            make: make.clone(),
            call: plan.call.clone(),
            actors,
            max: plan.max.max(plan.min).max(1),
            per_actor: 2,
            batch_size: plan.batch_size,
            pending: VecDeque::new(),
            flight: VecDeque::new(),
            next_block: 0,
            tolerance,
            stats: stats.operator(name),
            input_done: false,
        })
    }

    /// Cuts the next input block into pieces; false when the input is used up.
    fn refill(&mut self) -> Result<bool, DataError> {
        match self.input.next() {
            None => Ok(false),
            Some(Err(e)) => Err(e),
            Some(Ok(block)) => {
                let size = self.batch_size.unwrap_or(usize::MAX).max(1) as u64;
                if block.rows <= size {
                    self.pending.push_back(block.batch);
                } else {
                    let mut offset = 0u64;
                    while offset < block.rows {
                        let len = size.min(block.rows - offset);
                        self.pending
                            .push_back(slice_block.options().num_cpus(0).remote(
                                &block.batch,
                                offset as usize,
                                len as usize,
                            ));
                        offset += len;
                    }
                }
                Ok(true)
            }
        }
    }

    /// Sends `piece` (output block `block`) to the actor in `slot`.
    fn send(&mut self, slot: usize, piece: ObjectRef<Batch>, block: usize, attempt: u32) -> Call {
        let out = (self.call)(&self.actors[slot].0, piece.clone());
        let meta = describe_block.options().num_cpus(0).remote(&out);
        self.actors[slot].1 += 1;
        Call {
            slot,
            generation: self.actors[slot].2,
            piece,
            out,
            meta,
            block,
            attempt,
        }
    }

    /// A new actor in `slot`, unless the one lost (of `generation`) was replaced already.
    fn replace(&mut self, slot: usize, generation: u32) -> Result<(), DataError> {
        if self.actors[slot].2 != generation {
            return Ok(());
        }
        let fresh = (self.make)().map_err(|e| {
            DataError::Runtime(format!(
                "{}: cannot replace a lost actor of the pool: {e}",
                self.stats.name()
            ))
        })?;
        let busy = self.actors[slot].1;
        self.actors[slot] = (fresh, busy, generation + 1);
        tracing::warn!(operator = %self.stats.name(), slot, "an actor of the pool was lost; a new one takes its place");
        Ok(())
    }

    fn least_busy(&self) -> Option<usize> {
        self.actors
            .iter()
            .enumerate()
            .filter(|(_, (_, n, _))| *n < self.per_actor)
            .min_by_key(|(_, (_, n, _))| *n)
            .map(|(i, _)| i)
    }
}

impl<H: Send + 'static> Iterator for PoolOp<H> {
    type Item = Result<BlockRef, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // Hand out work while some actor has room.
            loop {
                if self.pending.is_empty() && !self.input_done {
                    match self.refill() {
                        Ok(true) => continue,
                        Ok(false) => self.input_done = true,
                        Err(e) => {
                            self.input_done = true;
                            if self.tolerance.skip(&e) {
                                continue;
                            }
                            self.flight.clear();
                            return Some(Err(e));
                        }
                    }
                }
                if self.pending.is_empty() {
                    break;
                }
                let slot = match self.least_busy() {
                    Some(i) => i,
                    None if self.actors.len() < self.max => match (self.make)() {
                        Ok(h) => {
                            self.actors.push((h, 0, 0));
                            self.actors.len() - 1
                        }
                        Err(e) => {
                            tracing::warn!("an actor pool could not grow: {e}");
                            self.max = self.actors.len();
                            break;
                        }
                    },
                    None => break,
                };
                let piece = self.pending.pop_front().expect("checked");
                self.stats.started();
                let call = self.send(slot, piece, self.next_block, 0);
                self.flight.push_back(call);
                self.next_block += 1;
            }
            let call = self.flight.pop_front()?;
            self.actors[call.slot].1 -= 1;
            match call.meta.get() {
                Ok(meta) => {
                    self.stats.finished(meta.rows, meta.bytes);
                    return Some(Ok(BlockRef {
                        batch: call.out,
                        rows: meta.rows,
                        bytes: meta.bytes,
                        file: None,
                    }));
                }
                Err(e) if actor_lost(&e) && call.attempt < POOL_CALL_RETRIES => {
                    // The actor (or its node) is gone: a new actor takes its slot, and the
                    // block goes again, first in line so the order holds.
                    if let Err(e) = self.replace(call.slot, call.generation) {
                        self.flight.clear();
                        self.pending.clear();
                        self.input_done = true;
                        return Some(Err(e));
                    }
                    let again = self.send(call.slot, call.piece, call.block, call.attempt + 1);
                    self.flight.push_front(again);
                }
                Err(e) => {
                    let block = call.block;
                    let e = DataError::Operator {
                        operator: self.stats.name(),
                        block,
                        file: None,
                        reason: runtime_reason(&e),
                    };
                    if self.tolerance.skip(&e) {
                        continue;
                    }
                    self.flight.clear();
                    self.pending.clear();
                    self.input_done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// At most `n` rows of the input: the last block is cut, and nothing more is pulled.
pub(crate) struct LimitOp {
    input: Blocks,
    left: u64,
    stats: OpStats,
}

impl LimitOp {
    pub fn new(input: Blocks, n: u64, stats: &Stats) -> Self {
        LimitOp {
            input,
            left: n,
            stats: stats.operator(&format!("limit({n})")),
        }
    }
}

impl Iterator for LimitOp {
    type Item = Result<BlockRef, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut block = match self.input.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        if block.rows > self.left {
            block.batch =
                slice_block
                    .options()
                    .num_cpus(0)
                    .remote(&block.batch, 0, self.left as usize);
            block.bytes = block.bytes * self.left / block.rows.max(1);
            block.rows = self.left;
        }
        self.left -= block.rows;
        self.stats.started();
        self.stats.finished(block.rows, block.bytes);
        Some(Ok(block))
    }
}
