use shm_core::SharedState;
use std::num::NonZeroU32;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Id {
    value: NonZeroU32,
}

fn main() {}
