// `#[mobula::main]` on `async fn main`: refs are awaited in it.
use mobula::prelude::*;

#[mobula::remote]
fn square(x: u64) -> u64 {
    x * x
}

#[mobula::main]
async fn main() -> anyhow::Result<()> {
    let _mobula = mobula::init(Config::default().num_cpus(1))?;
    let nine = square.remote(3).await?;
    assert_eq!(nine, 9);
    Ok(())
}
