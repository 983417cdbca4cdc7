//! What goes wrong in a dataset, saying where.

use serde::{Deserialize, Serialize};

/// An error of a dataset: which operator, which block and which file, when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum DataError {
    /// A file could not be listed, opened, read or decoded.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file (or the pattern that matched nothing).
        path: String,
        /// Why.
        reason: String,
    },
    /// An operator failed on a block (its function returned an error or panicked, or the
    /// block did not have the columns it needs).
    #[error("{operator} failed on block {block}{}: {reason}", file.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default())]
    Operator {
        /// The operator, as `stats()` names it (`map_batches(my_crate::double)`).
        operator: String,
        /// The block's index in its operator's input.
        block: usize,
        /// The file the block was read from, if it was read from one.
        file: Option<String>,
        /// Why.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Blocks disagree on their columns where they must agree, or a column is missing.
    #[error("schema: {reason}")]
    Schema {
        /// Why.
        reason: String,
    },
    /// Rows could not be turned into (or made from) the typed values asked for.
    #[error("rows: {reason}")]
    Rows {
        /// Why.
        reason: String,
    },
    /// A wrong argument (an unknown function, a zero size).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The runtime could not run or return the work (no runtime, a lost object).
    #[error("runtime: {0}")]
    Runtime(String),
}
