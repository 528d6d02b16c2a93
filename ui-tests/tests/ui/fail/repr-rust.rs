use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(Rust)]
struct Telemetry {
    tick: u64,
}

fn main() {}
