// A blocking function cannot return a Stream; a generator does not take num_returns; the
// items of a generator must be named.

#[mobula::remote]
fn stream_from_blocking() -> impl futures::Stream<Item = u32> {
    futures::stream::iter(vec![1u32])
}

#[mobula::remote(num_returns = 2)]
fn generator_with_returns() -> impl Iterator<Item = (u32, u32)> {
    std::iter::once((1, 2))
}

#[mobula::remote]
fn unnamed_items() -> impl Iterator {
    std::iter::once(1u32)
}

fn main() {}
