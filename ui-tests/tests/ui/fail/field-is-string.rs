use shm_core::SharedState;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Status {
    message: String,
}

fn main() {}
