#[mobula::remote]
fn push(v: &mut Vec<u8>) {
    v.push(1);
}

fn main() {}
