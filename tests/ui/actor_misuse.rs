#[mobula::actor]
struct NoConstructor {
    x: u8,
}

#[mobula::actor]
impl NoConstructor {
    fn get(&self) -> u8 {
        self.x
    }
}

#[mobula::actor]
struct Consumed;

#[mobula::actor]
impl Consumed {
    fn new() -> Self {
        Consumed
    }

    fn finish(self) -> u8 {
        0
    }
}

#[mobula::actor(max_restart = 1)]
struct Misspelled;

fn main() {}
