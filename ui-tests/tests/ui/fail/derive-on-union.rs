use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
union Value {
    int: u64,
    float: f64,
}

fn main() {}
