use shm_core::SharedState;
use std::marker::PhantomData;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Tagged {
    value: u64,
    marker: PhantomData<u64>,
}

fn main() {}
