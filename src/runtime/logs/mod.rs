//! Task and actor logs on a node: capturing what tasks print (`capture`), keeping it in the
//! node's bounded book (`book`, pure) and showing it on its driver's terminal (`ship`). The
//! public face, with the `println!` and `eprintln!` macros, is `crate::logs`.

pub(crate) mod book;
pub(crate) mod capture;
pub(crate) mod ship;

pub(crate) use ship::NodeLogs;
