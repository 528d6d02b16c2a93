#![no_implicit_prelude]

type Count = usize;

#[derive(::shm_core::SharedState, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(C)]
struct Queue {
    len: Count,
}

fn main() {}
