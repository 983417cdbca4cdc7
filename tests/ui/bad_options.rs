#[mobula::remote(num_cpu = 2)]
fn misspelled() {}

#[mobula::remote(num_cpus = -1)]
fn negative() {}

#[mobula::remote(retry_exceptions = "yes")]
fn not_a_bool() {}

fn main() {}
