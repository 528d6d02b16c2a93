//! Compile-fail and compile-pass cases for `#[derive(SharedState)]`.
//!
//! Each file under `ui/fail/` makes one mistake and must fail to compile with the messages in
//! the `.stderr` file next to it; each file under `ui/pass/` must compile and run. Regenerate
//! the expected messages with `TRYBUILD=overwrite cargo test -p ui-tests` and read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
