use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Pose {
    #[shm(appendable)]
    x: f64,
}

fn main() {}
