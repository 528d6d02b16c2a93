use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
struct Telemetry {
    tick: u64,
}

fn main() {}
