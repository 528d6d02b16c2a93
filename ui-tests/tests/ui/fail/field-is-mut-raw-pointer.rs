use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Frame {
    data: *mut u8,
}

fn main() {}
