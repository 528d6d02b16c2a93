use shm_core::SharedState;
use std::cell::RefCell;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Counter {
    hits: RefCell<u64>,
}

fn main() {}
