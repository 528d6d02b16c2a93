use shm_core::SharedState;
use std::cell::UnsafeCell;

#[derive(SharedState)]
#[repr(C)]
struct Counter {
    hits: UnsafeCell<u64>,
}

fn main() {}
