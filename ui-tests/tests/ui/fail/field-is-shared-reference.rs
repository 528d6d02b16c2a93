use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Config {
    limit: &'static u64,
}

fn main() {}
