use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C, packed)]
struct Telemetry {
    tick: u64,
}

fn main() {}
