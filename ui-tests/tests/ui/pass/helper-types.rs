use core::mem::{offset_of, size_of};
use shm_core::layout::Kind;
use shm_core::{FixedStr, FixedVec, SharedState, ShmBool};

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Status {
    errors: FixedVec<u32, 4>,
    message: FixedStr<16>,
    ready: ShmBool,
    _pad: [u8; 3],
}

fn main() {
    let layout = Status::LAYOUT;
    assert_eq!(layout.size, size_of::<Status>());
    let fields = layout.fields();
    assert_eq!(fields[1].offset, offset_of!(Status, message));
    assert_eq!(fields[2].offset, offset_of!(Status, ready));
    assert!(matches!(
        fields[0].layout.kind,
        Kind::FixedVec { capacity: 4, .. }
    ));
    assert_eq!(fields[1].layout.kind, Kind::FixedStr { capacity: 16 });
    assert_eq!(fields[2].layout.kind, Kind::Bool);

    let status = Status {
        errors: FixedVec::from_slice(&[7, 9]).unwrap(),
        message: FixedStr::try_from("calibrating").unwrap(),
        ready: ShmBool::new(true),
        _pad: [0; 3],
    };
    let copy = status;
    assert_eq!(copy.errors.as_slice(), Ok(&[7, 9][..]));
    assert_eq!(copy.message.as_str(), Ok("calibrating"));
    assert_eq!(copy.ready.get(), Ok(true));
}
