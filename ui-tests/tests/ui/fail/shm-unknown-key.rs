use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(rename = "Pose")]
struct Pose {
    x: f64,
}

fn main() {}
