use shm_core::SharedState;

type Handle = *const u8;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Frame {
    data: Handle,
}

fn main() {}
