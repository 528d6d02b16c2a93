use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Pair {
    value: u16,
    tag: u8,
}

fn main() {}
