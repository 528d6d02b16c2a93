use shm_core::SharedState;

#[derive(SharedState)]
#[repr(C)]
struct Counter {
    hits: core::cell::UnsafeCell<u8>,
}

fn main() {}
