use std::rc::Rc;

#[mobula::remote]
fn count(items: Rc<Vec<u8>>) -> usize {
    items.len()
}

fn main() {}
