use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(appendable)]
enum Mode {
    Idle,
    Running,
}

fn main() {}
