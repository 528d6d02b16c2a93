use shm_core::SharedState;
use std::cell::Cell;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Counter {
    hits: Cell<u64>,
}

fn main() {}
