use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Sample<T> {
    value: T,
}

fn main() {}
