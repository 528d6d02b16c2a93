use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(u8)]
struct Telemetry {
    tick: u64,
}

fn main() {}
