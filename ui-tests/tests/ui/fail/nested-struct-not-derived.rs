use shm_core::SharedState;

#[derive(Clone, Copy)]
#[repr(C)]
struct Position {
    x: f64,
    y: f64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Robot {
    position: Position,
}

fn main() {}
