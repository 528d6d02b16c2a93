use core::marker::PhantomData;
use shm_core::SharedState;

#[derive(SharedState)]
#[repr(C)]
struct Borrowed<'a> {
    value: u64,
    marker: PhantomData<&'a u8>,
}

fn main() {}
