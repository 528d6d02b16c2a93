use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Frame {
    data: *const u8,
}

fn main() {}
