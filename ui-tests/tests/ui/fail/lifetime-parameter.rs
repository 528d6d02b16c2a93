use shm_core::SharedState;

#[derive(Clone, Copy)]
struct Label<'a> {
    text: &'a str,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Tagged<'a> {
    id: u64,
    label: Label<'a>,
}

fn main() {}
