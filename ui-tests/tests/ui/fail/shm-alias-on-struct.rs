use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable, alias = "OldPose")]
struct Pose {
    x: f64,
}

fn main() {}
