use shm_core::SharedState;

trait Platform {
    type Word;
}

impl Platform for () {
    type Word = usize;
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Counter {
    hits: <() as Platform>::Word,
}

fn main() {}
