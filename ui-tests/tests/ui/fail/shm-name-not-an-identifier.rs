use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "robot-pose")]
struct Pose {
    x: f64,
}

fn main() {}
