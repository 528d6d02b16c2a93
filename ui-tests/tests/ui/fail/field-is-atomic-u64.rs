use shm_core::SharedState;
use std::sync::atomic::AtomicU64;

#[derive(SharedState)]
#[repr(C)]
struct Counter {
    hits: AtomicU64,
}

fn main() {}
