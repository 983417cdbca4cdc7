//! The compile errors `#[mobula::remote]` gives for misuse, checked with trybuild. The
//! expected messages live beside each case in tests/ui/*.stderr; tests/ui-pass holds
//! programs that must compile and run (an `async fn main` under `#[mobula::main]`).

#[test]
fn misuse_gives_readable_compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui-pass/*.rs");
}
