use shm_core::SharedState;

macro_rules! handle {
    () => { *const u8 };
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Frame {
    data: handle!(),
}

fn main() {}
