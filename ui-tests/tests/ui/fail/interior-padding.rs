use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Sample {
    kind: u8,
    value: u64,
}

fn main() {}
