use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Point {
    xy: (f64, f64),
}

fn main() {}
