use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Key {
    pressed: char,
}

fn main() {}
