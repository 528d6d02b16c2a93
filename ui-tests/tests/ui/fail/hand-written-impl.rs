use shm_core::{Layout, SharedState};

#[derive(Clone, Copy)]
#[repr(C)]
struct Telemetry {
    tick: u64,
}

unsafe impl SharedState for Telemetry {
    const LAYOUT: &'static Layout = <u64 as SharedState>::LAYOUT;
}

fn main() {}
