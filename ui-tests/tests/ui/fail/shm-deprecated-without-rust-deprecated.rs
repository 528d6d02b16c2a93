use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable)]
struct Pose {
    #[shm(deprecated)]
    heading: f32,
    speed: f32,
}

fn main() {}
