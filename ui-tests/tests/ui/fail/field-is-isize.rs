use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Queue {
    delta: isize,
}

fn main() {}
