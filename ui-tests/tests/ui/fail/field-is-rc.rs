use shm_core::SharedState;
use std::rc::Rc;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Status {
    count: Rc<u64>,
}

fn main() {}
