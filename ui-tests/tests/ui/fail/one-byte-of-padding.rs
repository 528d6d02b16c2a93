use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Pair {
    tag: u8,
    value: u16,
}

fn main() {}
