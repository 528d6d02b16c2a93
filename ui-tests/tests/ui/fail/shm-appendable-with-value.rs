use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable = true)]
struct Pose {
    x: f64,
}

fn main() {}
