use shm_core::SharedState;

#[derive(SharedState)]
#[repr(C)]
struct Telemetry {
    tick: u64,
}

fn main() {}
