use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Flags {
    armed: bool,
}

// Uses of the refused type add no errors of their own.
const HASH: u64 = Flags::LAYOUT_HASH;

fn layout_of<T: SharedState>() -> &'static shm_core::Layout {
    T::LAYOUT
}

fn main() {
    let _ = HASH;
    let _ = layout_of::<Flags>();
}
