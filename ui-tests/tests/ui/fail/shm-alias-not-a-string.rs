use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable)]
struct Pose {
    #[shm(alias = status)]
    state: u32,
}

fn main() {}
