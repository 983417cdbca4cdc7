//! Build A of the probe program (`tests/builds.rs` runs it as a driver): the shared probe
//! plus a function only this build has.

#[path = "probe.rs"]
mod probe;

/// Only in build A.
#[mobula::remote]
fn only_in_a(x: u64) -> u64 {
    x + 1
}

#[mobula::main]
fn main() -> anyhow::Result<()> {
    probe::main("a", || Ok(only_in_a.remote(41).get()?))
}
