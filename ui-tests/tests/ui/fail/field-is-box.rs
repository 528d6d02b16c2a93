use shm_core::SharedState;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Frame {
    pixels: Box<[u8; 64]>,
}

fn main() {}
