//! A dataset's plan: the operators that make its blocks, the pass that prunes it to the
//! columns its consumer needs (projection pushdown into Parquet reads), and how it runs as
//! a stream of blocks.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::DataError;
use super::all_to_all::{self, AllToAll};
use super::exec::{BlockRef, Blocks, LimitOp, PoolOp, PoolPlan, TaskOp, TaskResources, Tolerance};
use super::source::Read;
use super::stage::Stage;
use super::stats::Stats;

/// The plan: what makes the blocks.
#[derive(Clone)]
pub(crate) enum Plan {
    Read(Vec<Read>),
    Blocks(Vec<BlockRef>),
    Stages {
        input: Arc<Plan>,
        stages: Vec<Stage>,
        resources: TaskResources,
    },
    Pool(Arc<Plan>, Arc<dyn PoolSpec>),
    Limit(Arc<Plan>, u64),
    Union(Vec<Arc<Plan>>),
    AllToAll(Arc<Plan>, AllToAll),
    Zip(Arc<Plan>, Arc<Plan>),
}

/// An actor pool stage, its handle type erased.
pub(crate) trait PoolSpec: Send + Sync {
    fn name(&self) -> String;
    fn start(
        &self,
        input: Blocks,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Result<Blocks, DataError>;
}

impl<H: Send + 'static> PoolSpec for PoolPlan<H> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn start(
        &self,
        input: Blocks,
        tolerance: Tolerance,
        stats: &Stats,
    ) -> Result<Blocks, DataError> {
        Ok(Box::new(PoolOp::new(input, self, tolerance, stats)?))
    }
}

/// `plan` with each Parquet read cut to the columns the operators above it use (projection
/// pushdown), where they say which: `select_columns`, expressions, sort keys and aggregates
/// do; a registered function does not, so above one every column is read. `needed` is what
/// the consumer uses, `None` for every column.
pub(crate) fn prune(plan: &Arc<Plan>, needed: Option<BTreeSet<String>>) -> Arc<Plan> {
    match &**plan {
        Plan::Read(reads) => match needed {
            Some(columns) => Arc::new(Plan::Read(reads.iter().map(|r| r.only(&columns)).collect())),
            None => plan.clone(),
        },
        Plan::Blocks(_) => plan.clone(),
        Plan::Stages {
            input,
            stages,
            resources,
        } => {
            let needed = stages.iter().rev().fold(needed, |n, s| s.needs(n));
            Arc::new(Plan::Stages {
                input: prune(input, needed),
                stages: stages.clone(),
                resources: resources.clone(),
            })
        }
        Plan::Pool(input, pool) => Arc::new(Plan::Pool(prune(input, None), pool.clone())),
        Plan::Limit(input, n) => Arc::new(Plan::Limit(prune(input, needed), *n)),
        Plan::Union(plans) => Arc::new(Plan::Union(
            plans.iter().map(|p| prune(p, needed.clone())).collect(),
        )),
        Plan::AllToAll(input, op) => {
            Arc::new(Plan::AllToAll(prune(input, op.needs(needed)), op.clone()))
        }
        Plan::Zip(a, b) => Arc::new(Plan::Zip(prune(a, None), prune(b, None))),
    }
}

/// The plan as text, from its sources to its last operator.
pub(crate) fn explain(plan: &Plan) -> String {
    match plan {
        Plan::Read(reads) => {
            let operator = reads.first().map_or("read", Read::operator);
            let columns = reads.iter().find_map(Read::columns);
            match columns {
                Some(c) => format!(
                    "{operator}({} blocks, columns [{}])",
                    reads.len(),
                    c.join(", ")
                ),
                None => format!("{operator}({} blocks)", reads.len()),
            }
        }
        Plan::Blocks(blocks) => format!("blocks({})", blocks.len()),
        Plan::Stages { input, stages, .. } => {
            let names: Vec<String> = stages.iter().map(Stage::name).collect();
            format!("{} -> {}", explain(input), names.join(" -> "))
        }
        Plan::Pool(input, pool) => format!("{} -> {}", explain(input), pool.name()),
        Plan::Limit(input, n) => format!("{} -> limit({n})", explain(input)),
        Plan::Union(plans) => format!(
            "union({})",
            plans
                .iter()
                .map(|p| explain(p))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Plan::AllToAll(input, op) => format!("{} -> {}", explain(input), op.name()),
        Plan::Zip(a, b) => format!("zip({}; {})", explain(a), explain(b)),
    }
}

/// Runs `plan`: the stream of its blocks.
pub(crate) fn run(
    plan: &Arc<Plan>,
    stats: &Stats,
    tolerance: &Tolerance,
) -> Result<Blocks, DataError> {
    Ok(match &**plan {
        Plan::Read(reads) => Box::new(TaskOp::reads(
            reads.clone(),
            Vec::new(),
            TaskResources::default(),
            tolerance.clone(),
            stats,
        )),
        Plan::Blocks(blocks) => Box::new(blocks.clone().into_iter().map(Ok)),
        Plan::Stages {
            input,
            stages,
            resources,
        } => {
            for s in stages {
                s.check()
                    .map_err(|reason| DataError::Invalid(format!("{}: {reason}", s.name())))?;
            }
            match &**input {
                // Reading is fused with what follows it.
                Plan::Read(reads) => Box::new(TaskOp::reads(
                    reads.clone(),
                    stages.clone(),
                    resources.clone(),
                    tolerance.clone(),
                    stats,
                )),
                _ => Box::new(TaskOp::blocks(
                    run(input, stats, tolerance)?,
                    stages.clone(),
                    resources.clone(),
                    tolerance.clone(),
                    stats,
                )),
            }
        }
        Plan::Pool(input, pool) => {
            pool.start(run(input, stats, tolerance)?, tolerance.clone(), stats)?
        }
        Plan::Limit(input, n) => Box::new(LimitOp::new(run(input, stats, tolerance)?, *n, stats)),
        Plan::Union(plans) => {
            let mut all: Vec<Blocks> = Vec::new();
            for p in plans {
                all.push(run(p, stats, tolerance)?);
            }
            Box::new(all.into_iter().flatten())
        }
        Plan::AllToAll(input, op) => {
            let blocks = run(input, stats, tolerance)?.collect::<Result<Vec<_>, _>>()?;
            Box::new(all_to_all::run(blocks, op, stats)?.into_iter().map(Ok))
        }
        Plan::Zip(a, b) => {
            let a = run(a, stats, tolerance)?.collect::<Result<Vec<_>, _>>()?;
            let b = run(b, stats, tolerance)?.collect::<Result<Vec<_>, _>>()?;
            Box::new(all_to_all::zip(a, b, stats)?.into_iter().map(Ok))
        }
    })
}
