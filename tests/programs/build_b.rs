//! Build B of the probe program (`tests/builds.rs` runs it as a driver): the shared probe
//! plus a function only this build has, so its registry differs from build A's.

#[path = "probe.rs"]
mod probe;

/// Only in build B.
#[mobula::remote]
fn only_in_b(x: u64) -> u64 {
    x * 2
}

#[mobula::main]
fn main() -> anyhow::Result<()> {
    probe::main("b", || Ok(only_in_b.remote(21).get()?))
}
