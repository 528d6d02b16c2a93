use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
enum Status {
    Idle,
    Running,
}

fn main() {}
