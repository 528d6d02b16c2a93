use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C, packed)]
#[repr(packed)]
struct Header {
    len: u64,
}

fn main() {}
