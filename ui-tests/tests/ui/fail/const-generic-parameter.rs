use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Samples<const N: usize> {
    values: [f64; N],
}

fn main() {}
