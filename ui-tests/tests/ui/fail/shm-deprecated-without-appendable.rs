use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Pose {
    #[deprecated]
    #[shm(deprecated)]
    heading: f32,
}

fn main() {}
