use shm_core::SharedState;

type Count = usize;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Queue {
    len: Count,
}

fn main() {}
