use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C, align(16))]
struct Sample {
    value: u64,
}

fn main() {}
