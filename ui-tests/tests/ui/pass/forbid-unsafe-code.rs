//! The derive works in a crate that forbids unsafe code: its `unsafe impl` is code an external
//! macro generated, which the `unsafe_code` lint does not check.
#![forbid(unsafe_code)]

use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Counter {
    hits: u64,
}

fn main() {
    assert_eq!(Counter::LAYOUT.size, 8);
}
