use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable)]
struct Pose {
    #[deprecated]
    #[shm(deprecated = "use speed")]
    heading: f32,
}

fn main() {}
