use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Flags {
    armed: bool,
}

fn main() {}
