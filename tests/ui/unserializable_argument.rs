/// A file handle cannot travel to another node: it is not a value.
#[mobula::remote]
fn size(file: std::fs::File) -> u64 {
    file.metadata().map(|m| m.len()).unwrap_or(0)
}

fn main() {}
