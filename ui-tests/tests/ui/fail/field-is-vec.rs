use shm_core::SharedState;

#[derive(SharedState, Clone)]
#[repr(C)]
struct Samples {
    values: Vec<f64>,
}

fn main() {}
