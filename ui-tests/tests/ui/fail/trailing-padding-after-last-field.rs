use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Sample {
    value: u64,
    kind: u8,
}

fn main() {}
