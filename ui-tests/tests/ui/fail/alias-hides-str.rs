use shm_core::SharedState;

type Text = str;

#[derive(SharedState)]
#[repr(C)]
struct Label {
    len: u64,
    text: Text,
}

fn main() {}
