use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Callbacks {
    on_tick: fn(u64) -> u64,
}

fn main() {}
