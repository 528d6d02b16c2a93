use shm_core::SharedState;
use std::mem::size_of;

// User types named like the items the derive refers to: generated code must not pick them up.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Layout {
    size: u64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Field {
    name: u32,
    offset: u32,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct T {
    layout: Layout,
    field: Field,
}

/// A module that shadows `core` where the derive expands.
#[allow(dead_code)]
mod core {}

fn main() {
    assert_eq!(T::LAYOUT.size, size_of::<T>());
    assert_eq!(T::LAYOUT.fields()[0].layout, Layout::LAYOUT);
    assert_eq!(T::LAYOUT.fields()[1].layout.fields()[1].name, "offset");
}
