use shm_core::SharedState;

type Index = usize;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Cursor {
    index: Index,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Editor {
    cursor: Cursor,
    lines: u64,
}

fn main() {}
