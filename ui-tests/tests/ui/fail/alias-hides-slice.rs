use shm_core::SharedState;

type Bytes = [u8];

#[derive(SharedState)]
#[repr(C)]
struct Message {
    len: u64,
    bytes: Bytes,
}

fn main() {}
