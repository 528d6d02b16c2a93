use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Marker;

fn main() {}
