// Refs where the function takes a Vec of values: the error names mobula::gather.
use mobula::prelude::*;

#[mobula::remote]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

fn main() {
    let refs: Vec<ObjectRef<u64>> = Vec::new();
    let _ = total.remote(refs);
}
