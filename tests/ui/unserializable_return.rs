struct Handle {
    _fd: i32,
}

#[mobula::remote]
fn open() -> Handle {
    Handle { _fd: 3 }
}

fn main() {}
