use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(u8)]
enum Mode {
    Idle,
    Running,
}

fn main() {}
