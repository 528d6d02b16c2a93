use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(transparent)]
struct Telemetry {
    tick: u64,
}

fn main() {}
