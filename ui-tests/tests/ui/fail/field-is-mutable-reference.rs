use shm_core::SharedState;

#[derive(SharedState)]
#[repr(C)]
struct Config {
    limit: &'static mut u64,
}

fn main() {}
