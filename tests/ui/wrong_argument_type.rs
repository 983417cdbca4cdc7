#[mobula::remote]
fn square(i: u64) -> u64 {
    i * i
}

fn main() {
    let _ = square.remote("five");
}
