//! Task and actor logs, as Ray's: what a task or an actor prints with
//! [`mobula::println!`](crate::println) or [`mobula::eprintln!`](crate::eprintln), or logs
//! with `tracing`, is captured with its task or actor id, shown on the terminal of the
//! driver it works for with a prefix naming the function or class, the id and the node, and
//! kept on its node for `mobula logs <id>` and [`state::list_logs`](crate::state::list_logs).
//!
//! ```no_run
//! #[mobula::remote]
//! fn train(step: u32) -> u32 {
//!     mobula::println!("step {step}");  // (train task=... node=...) step 3
//!     tracing::info!(step, "done");     // (train task=... node=...) INFO ...: done step=3
//!     step
//! }
//! ```
//!
//! A plain `println!` cannot be told apart from other threads' output in stable Rust; it
//! still prints on the terminal of the process that runs it, without a prefix.
//!
//! This module is the public face; the machinery is the runtime's (`runtime::logs`: capture,
//! the node's bounded book, the outbox) and the cluster's (`cluster::logs`: lines sent to a
//! driver on another node).

pub use crate::base::log_line::{LogLine, LogStream};
pub use crate::runtime::logs::book::{MAX_BYTES, MAX_LINE, MAX_LINES};
pub use crate::runtime::logs::capture::{TaskLogLayer, layer, print_line};

/// Prints a line as `println!` does; inside a task or an actor call, the line is captured
/// as the task's or actor's (see [the module](crate::logs)).
#[macro_export]
macro_rules! println {
    () => {
        $crate::logs::print_line($crate::logs::LogStream::Stdout, ::core::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::logs::print_line($crate::logs::LogStream::Stdout, ::core::format_args!($($arg)*))
    };
}

/// Prints a line as `eprintln!` does; inside a task or an actor call, the line is captured
/// as the task's or actor's (see [the module](crate::logs)).
#[macro_export]
macro_rules! eprintln {
    () => {
        $crate::logs::print_line($crate::logs::LogStream::Stderr, ::core::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::logs::print_line($crate::logs::LogStream::Stderr, ::core::format_args!($($arg)*))
    };
}
