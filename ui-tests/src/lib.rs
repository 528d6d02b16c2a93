//! Compile-fail and compile-pass cases for `#[derive(SharedState)]`; see `tests/`.
