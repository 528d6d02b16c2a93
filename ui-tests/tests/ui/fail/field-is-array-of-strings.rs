use shm_core::SharedState;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Names {
    names: [String; 4],
}

fn main() {}
