//! Running the `mobula` command, and reading what it printed.

use std::collections::HashMap;
use std::process::{Command, Output};

/// The `mobula` binary of this build.
pub const CLI: &str = env!("CARGO_BIN_EXE_mobula");

/// A home directory of this test process's own, so that what the CLI remembers there (the
/// cluster directory `mobula start` was given) stays out of the user's.
pub fn home() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mobula-test-home-{}", std::process::id()))
}

/// Runs `mobula ARGS...` to its end (with this process's own home).
pub fn mobula(args: &[&str]) -> Output {
    Command::new(CLI)
        .args(args)
        .env("HOME", home())
        .env_remove("MOBULA_DIR")
        .output()
        .expect("run mobula")
}

/// What a command printed, standard output then standard error.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `NAME=value` words of the driver's command `mobula start --head` printed.
pub fn join_variables(printed: &str) -> HashMap<String, String> {
    let line = printed
        .lines()
        .find(|l| l.contains("MOBULA_ADDRESS="))
        .expect("a driver's command");
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
