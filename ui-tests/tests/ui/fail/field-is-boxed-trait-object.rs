use shm_core::SharedState;

trait Handler {
    fn handle(&self);
}

#[derive(SharedState)]
#[repr(C)]
struct Dispatch {
    handler: Box<dyn Handler>,
}

fn main() {}
