use core::mem::{offset_of, size_of};
use shm_core::layout::{Kind, Primitive};
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Integers {
    a: u128,
    b: i128,
    c: u64,
    d: i64,
    e: u32,
    f: i32,
    g: u16,
    h: i16,
    i: u8,
    j: i8,
    _pad: [u8; 2],
}

fn main() {
    let layout = Integers::LAYOUT;
    assert_eq!(layout.size, size_of::<Integers>());
    let expected = [
        ("a", Primitive::U128, 16, offset_of!(Integers, a)),
        ("b", Primitive::I128, 16, offset_of!(Integers, b)),
        ("c", Primitive::U64, 8, offset_of!(Integers, c)),
        ("d", Primitive::I64, 8, offset_of!(Integers, d)),
        ("e", Primitive::U32, 4, offset_of!(Integers, e)),
        ("f", Primitive::I32, 4, offset_of!(Integers, f)),
        ("g", Primitive::U16, 2, offset_of!(Integers, g)),
        ("h", Primitive::I16, 2, offset_of!(Integers, h)),
        ("i", Primitive::U8, 1, offset_of!(Integers, i)),
        ("j", Primitive::I8, 1, offset_of!(Integers, j)),
    ];
    for (field, (name, primitive, size, offset)) in layout.fields().iter().zip(expected) {
        assert_eq!(field.name, name);
        assert_eq!(field.layout.kind, Kind::Primitive(primitive));
        assert_eq!(field.layout.size, size);
        assert_eq!(field.offset, offset);
        assert_eq!(field.layout.to_string(), primitive.rust_name());
    }
}
