// A deployment's methods take &self; a batched method takes a Vec; one #[http] method; the
// options are named.

#[mobula::deployment(num_replicas = 2, replicas_max = 3)]
struct BadOption;

#[mobula::deployment]
struct Counter {
    n: u64,
}

#[mobula::deployment]
impl Counter {
    fn new() -> Self {
        Counter { n: 0 }
    }

    fn bump(&mut self) -> u64 {
        self.n += 1;
        self.n
    }
}

#[mobula::deployment]
struct Batched;

#[mobula::deployment]
impl Batched {
    fn new() -> Self {
        Batched
    }

    #[batch(max_batch_size = 4)]
    async fn score(&self, x: u32) -> Vec<u32> {
        vec![x]
    }
}

#[mobula::deployment]
struct NoConstructor;

#[mobula::deployment]
impl NoConstructor {
    fn hello(&self) -> u32 {
        1
    }
}

fn main() {}
