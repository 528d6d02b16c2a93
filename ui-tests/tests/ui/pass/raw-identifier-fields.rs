use core::mem::offset_of;
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Message {
    r#type: u32,
    r#struct: u32,
}

fn main() {
    let fields = Message::LAYOUT.fields();
    // Layouts and exports use the field's name, not its Rust spelling.
    assert_eq!(fields[0].name, "type");
    assert_eq!(fields[1].name, "struct");
    assert_eq!(fields[1].offset, offset_of!(Message, r#struct));
}
