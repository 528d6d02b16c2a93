use shm_core::SharedState;

trait Handler {
    fn handle(&self);
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Dispatch {
    handler: &'static dyn Handler,
}

fn main() {}
