use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Borrowed<'a> {
    value: &'a u64,
}

fn main() {}
