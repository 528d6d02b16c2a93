use shm_core::SharedState;

type Offset = isize;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Seek {
    delta: Offset,
}

fn main() {}
