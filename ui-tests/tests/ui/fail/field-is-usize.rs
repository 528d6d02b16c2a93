use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Queue {
    len: usize,
}

fn main() {}
