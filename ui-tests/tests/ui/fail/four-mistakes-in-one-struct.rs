use shm_core::SharedState;

#[derive(SharedState)]
#[repr(C)]
struct Status {
    message: String,
    ready: bool,
    count: usize,
    owner: &'static u8,
}

fn main() {}
