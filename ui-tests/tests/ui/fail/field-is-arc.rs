use shm_core::SharedState;
use std::sync::Arc;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Status {
    count: Arc<u64>,
}

fn main() {}
