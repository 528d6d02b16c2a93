//! The layout descriptor: it matches what the compiler laid out, it prints as Rust spells the
//! type, and `first_difference` names the first field two descriptors disagree on.
#![allow(missing_docs)]

use core::mem::{align_of, offset_of, size_of, size_of_val};
use core::ptr::addr_of;
use shm_core::layout::{FieldBuf, Kind, KindBuf, Primitive};
use shm_core::{FixedStr, FixedVec, Layout, LayoutBuf, SharedState, ShmBool};

/// Where the layout a segment stores (`segment`) first differs from this program's.
fn first_difference(segment: &Layout, program: &Layout) -> Option<String> {
    LayoutBuf::from(segment).first_difference(&LayoutBuf::from(program))
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
pub struct Vec3 {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
pub struct Joint {
    pub id: u32,
    pub enabled: ShmBool,
    pub _pad: [u8; 3],
    pub angle: f32,
    pub limits: [f32; 2],
}

#[derive(SharedState, Clone, Copy)]
#[repr(C, align(16))]
#[shm(name = "RobotState")]
pub struct Robot {
    pub tick: u64,
    pub pose: Vec3,
    pub frames: [[Vec3; 1]; 2],
    pub waypoints: FixedVec<Vec3, 2>,
    pub samples: FixedVec<u16, 4>,
    pub matrix: [[f32; 3]; 2],
    pub joints: [Joint; 3],
    pub label: FixedStr<12>,
    pub armed: ShmBool,
    pub _pad: [u8; 3],
}

fn sample_robot() -> Robot {
    let v = Vec3 {
        x: 1.0,
        y: 2.0,
        z: 3.0,
    };
    let joint = Joint {
        id: 7,
        enabled: ShmBool::TRUE,
        _pad: [0; 3],
        angle: 0.5,
        limits: [-1.0, 1.0],
    };
    Robot {
        tick: 1,
        pose: v,
        frames: [[v]; 2],
        waypoints: FixedVec::from_slice(&[v]).unwrap(),
        samples: FixedVec::from_slice(&[1, 2]).unwrap(),
        matrix: [[0.0; 3]; 2],
        joints: [joint; 3],
        label: FixedStr::try_from("arm").unwrap(),
        armed: ShmBool::FALSE,
        _pad: [0; 3],
    }
}

/// Checks a struct's `LAYOUT` against the compiler: size, alignment, and per field (listed in
/// declaration order with its type) name, `offset_of!`, `size_of`, `align_of` and the field
/// type's own `LAYOUT`, so nested structs are checked by checking them too.
macro_rules! assert_struct_layout {
    ($t:ty { $($field:ident : $ft:ty),* $(,)? }) => {{
        // Fails to compile if a listed type is not the field's type.
        $(let _: fn(&$t) -> &$ft = |v| &v.$field;)*
        let layout = <$t as SharedState>::LAYOUT;
        assert_eq!(layout.size, size_of::<$t>(), "size of {}", stringify!($t));
        assert_eq!(layout.align, align_of::<$t>(), "align of {}", stringify!($t));
        let expected: &[(&str, usize, usize, usize, &Layout)] = &[$((
            stringify!($field),
            offset_of!($t, $field),
            size_of::<$ft>(),
            align_of::<$ft>(),
            <$ft as SharedState>::LAYOUT,
        )),*];
        let names: Vec<&str> = layout.fields().iter().map(|f| f.name).collect();
        let expected_names: Vec<&str> = expected.iter().map(|e| e.0).collect();
        assert_eq!(names, expected_names, "fields of {}", stringify!($t));
        for (f, &(name, offset, size, align, field_layout)) in layout.fields().iter().zip(expected) {
            assert_eq!(f.offset, offset, "offset of {}.{name}", stringify!($t));
            assert_eq!(f.layout.size, size, "size of {}.{name}", stringify!($t));
            assert_eq!(f.layout.align, align, "align of {}.{name}", stringify!($t));
            assert_eq!(f.layout, field_layout, "layout of {}.{name}", stringify!($t));
        }
    }};
}

#[test]
fn struct_layouts_match_the_compiler() {
    assert_struct_layout!(Vec3 {
        x: f64,
        y: f64,
        z: f64
    });
    assert_struct_layout!(Joint {
        id: u32,
        enabled: ShmBool,
        _pad: [u8; 3],
        angle: f32,
        limits: [f32; 2],
    });
    assert_struct_layout!(Robot {
        tick: u64,
        pose: Vec3,
        frames: [[Vec3; 1]; 2],
        waypoints: FixedVec<Vec3, 2>,
        samples: FixedVec<u16, 4>,
        matrix: [[f32; 3]; 2],
        joints: [Joint; 3],
        label: FixedStr<12>,
        armed: ShmBool,
        _pad: [u8; 3],
    });
    assert_eq!(Robot::LAYOUT.size, 256);
    assert_eq!(Robot::LAYOUT.align, 16);
}

#[test]
fn non_struct_layouts_match_the_compiler() {
    fn check<T: SharedState>() {
        let l = T::LAYOUT;
        let name = core::any::type_name::<T>();
        assert_eq!(l.size, size_of::<T>(), "size of {name}");
        assert_eq!(l.align, align_of::<T>(), "align of {name}");
        assert!(l.fields().is_empty(), "{name} has no fields");
        assert_eq!(l.struct_name(), None, "{name} is not a struct");
    }
    check::<u8>();
    check::<u16>();
    check::<u32>();
    check::<u64>();
    check::<u128>();
    check::<i8>();
    check::<i16>();
    check::<i32>();
    check::<i64>();
    check::<i128>();
    check::<f32>();
    check::<f64>();
    check::<ShmBool>();
    check::<[u8; 0]>();
    check::<[f64; 3]>();
    check::<[[f32; 3]; 2]>();
    check::<[Vec3; 4]>();
    check::<[[Joint; 2]; 3]>();
    check::<FixedStr<0>>();
    check::<FixedStr<16>>();
    check::<FixedVec<u8, 3>>();
    check::<FixedVec<u16, 4>>();
    check::<FixedVec<Vec3, 2>>();
    check::<FixedVec<[Joint; 2], 2>>();
}

#[test]
fn kinds_describe_arrays_and_helpers() {
    let l = <[[f32; 3]; 2]>::LAYOUT;
    let Kind::Array { len: 2, element } = l.kind else {
        panic!("{:?}", l.kind)
    };
    let Kind::Array { len: 3, element } = element.kind else {
        panic!("{:?}", element.kind)
    };
    assert_eq!(element.kind, Kind::Primitive(Primitive::F32));

    assert_eq!(<FixedStr<12>>::LAYOUT.kind, Kind::FixedStr { capacity: 12 });
    assert_eq!(
        <FixedVec<Vec3, 2>>::LAYOUT.kind,
        Kind::FixedVec {
            capacity: 2,
            element: Vec3::LAYOUT
        }
    );
    assert_eq!(ShmBool::LAYOUT.kind, Kind::Bool);

    let Kind::Struct {
        name,
        stable_name,
        fields,
        appendable: false,
    } = Robot::LAYOUT.kind
    else {
        panic!("{:?}", Robot::LAYOUT.kind)
    };
    assert_eq!(name, "Robot");
    assert_eq!(stable_name, Some("RobotState"));
    assert_eq!(fields.len(), 10);
    assert_eq!(
        Vec3::LAYOUT.kind,
        Kind::Struct {
            name: "Vec3",
            stable_name: None,
            fields: Vec3::LAYOUT.fields(),
            appendable: false,
        }
    );
}

/// Checks the invariants every descriptor of a derived type has, recursively: arrays are their
/// elements back to back, helpers have their documented layout, struct fields are aligned,
/// in offset order and leave no gap.
fn assert_consistent(path: &str, l: &Layout) {
    assert!(l.align.is_power_of_two(), "{path}: align {}", l.align);
    assert_eq!(l.size % l.align, 0, "{path}: size is a multiple of align");
    match l.kind {
        Kind::Primitive(p) => {
            // `u32` is 32 bits, `f64` 64 bits: the width is in the name.
            let bits: usize = p.rust_name()[1..].parse().unwrap();
            assert_eq!(l.size * 8, bits, "{path}: size of `{}`", p.rust_name());
            assert!(l.align <= l.size, "{path}: align of `{}`", p.rust_name());
        }
        Kind::Array { len, element } => {
            assert_eq!(l.size, len * element.size, "{path}: array size");
            assert_eq!(l.align, element.align, "{path}: array align");
            assert_consistent(&format!("{path}[..]"), element);
        }
        Kind::Struct { fields, .. } => {
            let mut end = 0;
            for f in fields {
                let sub = format!("{path}.{}", f.name);
                assert_eq!(f.offset, end, "{sub}: starts where the previous field ends");
                assert_eq!(f.offset % f.layout.align, 0, "{sub}: aligned");
                assert!(l.align >= f.layout.align, "{sub}: struct align covers it");
                end = f.offset + f.layout.size;
                assert_consistent(&sub, f.layout);
            }
            assert_eq!(end, l.size, "{path}: the fields fill the struct");
        }
        Kind::FixedStr { capacity } => {
            assert_eq!(l.size, 4 + capacity, "{path}: u32 length + bytes");
            assert_eq!(l.align, 1, "{path}");
        }
        Kind::FixedVec { capacity, element } => {
            assert_eq!(
                l.size,
                8 + capacity * element.size,
                "{path}: u64 length + elements"
            );
            assert_eq!(l.align, element.align, "{path}");
            assert_consistent(&format!("{path}[..]"), element);
        }
        Kind::Bool => assert_eq!((l.size, l.align), (1, 1), "{path}"),
        _ => panic!("{path}: unexpected kind {:?}", l.kind),
    }
}

#[test]
fn descriptors_are_consistent_all_the_way_down() {
    assert_consistent("Robot", Robot::LAYOUT);
    for p in [
        u8::LAYOUT,
        u16::LAYOUT,
        u128::LAYOUT,
        i64::LAYOUT,
        f32::LAYOUT,
        f64::LAYOUT,
    ] {
        assert_consistent(&p.to_string(), p);
    }
    assert_consistent("[[Joint; 2]; 3]", <[[Joint; 2]; 3]>::LAYOUT);
    assert_consistent("FixedVec<[Joint; 2], 2>", <FixedVec<[Joint; 2], 2>>::LAYOUT);
}

/// The absolute offset and layout of `path` (`joints[2].limits[1]`) inside `layout`, found by
/// walking the descriptor only.
fn locate(layout: &'static Layout, path: &str) -> (usize, &'static Layout) {
    let mut at = 0;
    let mut l = layout;
    for part in path.split('.') {
        let (name, indices) = part.split_at(part.find('[').unwrap_or(part.len()));
        let field = l
            .fields()
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field `{name}` in `{l}`"));
        at += field.offset;
        l = field.layout;
        for index in indices.split_terminator(']') {
            let i: usize = index.trim_start_matches('[').parse().unwrap();
            match l.kind {
                Kind::Array { len, element } => {
                    assert!(i < len);
                    at += i * element.size;
                    l = element;
                }
                _ => panic!("`{l}` is not an array"),
            }
        }
    }
    (at, l)
}

/// Compares the descriptor's idea of where `$value.$path` lives with its real address.
macro_rules! assert_located {
    ($value:ident, $($path:tt)+) => {{
        let path = stringify!($($path)+).replace(' ', "");
        let (offset, leaf) = locate(Robot::LAYOUT, &path);
        let real = addr_of!($value.$($path)+) as usize - addr_of!($value) as usize;
        assert_eq!(offset, real, "offset of `{path}`");
        assert_eq!(leaf.size, size_of_val(&$value.$($path)+), "size of `{path}`");
    }};
}

#[test]
fn nested_offsets_match_real_addresses() {
    let r = sample_robot();
    assert_located!(r, tick);
    assert_located!(r, pose);
    assert_located!(r, pose.z);
    assert_located!(r, frames[1]);
    assert_located!(r, frames[1][0].y);
    assert_located!(r, waypoints);
    assert_located!(r, samples);
    assert_located!(r, matrix[0][2]);
    assert_located!(r, matrix[1][0]);
    assert_located!(r, joints[0].id);
    assert_located!(r, joints[2].enabled);
    assert_located!(r, joints[2].angle);
    assert_located!(r, joints[1].limits[1]);
    assert_located!(r, label);
    assert_located!(r, armed);
    assert_located!(r, _pad[2]);
    // FixedVec keeps its fields private: its elements start after the 8-byte length.
    let (at, waypoints) = locate(Robot::LAYOUT, "waypoints");
    assert_eq!(at, offset_of!(Robot, waypoints));
    assert_eq!(waypoints.size, 8 + 2 * size_of::<Vec3>());
    assert_eq!(r.waypoints.as_slice().unwrap()[0].z, 3.0);
}

#[test]
fn layouts_display_as_rust_spells_them() {
    let cases: &[(&Layout, &str)] = &[
        (u8::LAYOUT, "u8"),
        (u32::LAYOUT, "u32"),
        (i128::LAYOUT, "i128"),
        (f32::LAYOUT, "f32"),
        (f64::LAYOUT, "f64"),
        (<[f64; 3]>::LAYOUT, "[f64; 3]"),
        (<[[f32; 3]; 2]>::LAYOUT, "[[f32; 3]; 2]"),
        (<[u8; 0]>::LAYOUT, "[u8; 0]"),
        (<FixedStr<16>>::LAYOUT, "FixedStr<16>"),
        (<FixedVec<u16, 4>>::LAYOUT, "FixedVec<u16, 4>"),
        (<FixedVec<Vec3, 2>>::LAYOUT, "FixedVec<Vec3, 2>"),
        (<[FixedStr<8>; 2]>::LAYOUT, "[FixedStr<8>; 2]"),
        (ShmBool::LAYOUT, "ShmBool"),
        (Vec3::LAYOUT, "Vec3"),
        (<[Joint; 3]>::LAYOUT, "[Joint; 3]"),
        // The stable name, when there is one, is the type's name everywhere.
        (Robot::LAYOUT, "RobotState"),
        (<[Robot; 2]>::LAYOUT, "[RobotState; 2]"),
    ];
    for (layout, expected) in cases {
        assert_eq!(layout.to_string(), *expected);
    }
    assert_eq!(Robot::LAYOUT.struct_name(), Some("RobotState"));
    assert_eq!(Joint::LAYOUT.struct_name(), Some("Joint"));
}

/// What a segment written by an older build holds (the `seg` modules) and what this program
/// was compiled with (the `prog` modules): same Rust names, one change each.
mod seg {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Inner {
        pub x: u32,
        pub y: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Inner,
        pub many: [[Inner; 2]; 2],
    }
}

mod prog_pos_f32 {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f32; 3],
        pub _pad: [u8; 4],
        pub status: u32,
        pub flags: u32,
    }
}

mod prog_pos_len_4 {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 4],
        pub status: u32,
        pub flags: u32,
    }
}

mod prog_status_i32 {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: i32,
        pub flags: u32,
    }
}

mod prog_renamed {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub state: u32,
        pub flags: u32,
    }
}

mod prog_reordered {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub flags: u32,
        pub status: u32,
    }
}

mod prog_added {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
        pub extra: u64,
    }
}

mod prog_named {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Telemetry")]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "TelemetryV2")]
    pub struct Renamed {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

/// The same fields as `seg::Telemetry` under another Rust name: no difference.
mod prog_rust_renamed {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Sample {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

mod prog_inner_retyped {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Inner {
        pub x: i32,
        pub y: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Inner,
        pub many: [[Inner; 2]; 2],
    }
}

/// Changes only the `Inner` inside the nested array; `inner` keeps the old type.
mod prog_array_element_renamed {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Inner {
        pub x: u32,
        pub w: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: crate::seg::Inner,
        pub many: [[Inner; 2]; 2],
    }
}

mod prog_inner_added {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Inner {
        pub x: u32,
        pub y: u32,
        pub z: u32,
        pub _pad: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Inner,
        pub many: [[Inner; 2]; 2],
    }
}

/// `Inner` with the same fields, more alignment: prints the same, differs in size or align.
mod prog_inner_aligned {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C, align(8))]
    pub struct Inner {
        pub x: u32,
        pub y: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Inner,
        pub many: [[Inner; 2]; 2],
    }
}

/// A `FixedVec` of a struct whose field was retyped.
mod vec_seg {
    use shm_core::{FixedVec, SharedState};

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: f32,
        pub y: f32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Path {
        pub id: u64,
        pub points: FixedVec<Point, 4>,
    }
}

mod vec_prog {
    use shm_core::{FixedVec, SharedState};

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: f32,
        pub y: i32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Path {
        pub id: u64,
        pub points: FixedVec<Point, 4>,
    }
}

fn diff<S: SharedState, P: SharedState>() -> Option<String> {
    first_difference(S::LAYOUT, P::LAYOUT)
}

#[test]
fn equal_layouts_have_no_difference() {
    assert_eq!(diff::<seg::Telemetry, seg::Telemetry>(), None);
    assert_eq!(diff::<seg::Outer, seg::Outer>(), None);
    assert_eq!(diff::<Robot, Robot>(), None);
    assert_eq!(diff::<u32, u32>(), None);
    assert_eq!(diff::<[f64; 3], [f64; 3]>(), None);
    // The Rust name is not part of what two programs must agree on.
    assert_eq!(diff::<seg::Telemetry, prog_rust_renamed::Sample>(), None);
}

#[test]
fn retyped_field_names_the_field_and_both_types() {
    assert_eq!(
        diff::<seg::Telemetry, prog_pos_f32::Telemetry>().unwrap(),
        "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]` at offset 8 in this program"
    );
    assert_eq!(
        diff::<seg::Telemetry, prog_status_i32::Telemetry>().unwrap(),
        "field `status` is `u32` at offset 32 in the segment but `i32` at offset 32 in this program"
    );
    assert_eq!(
        diff::<seg::Telemetry, prog_pos_len_4::Telemetry>().unwrap(),
        "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f64; 4]` at offset 8 in this program"
    );
}

#[test]
fn renamed_or_reordered_field_names_both_fields() {
    assert_eq!(
        diff::<seg::Telemetry, prog_renamed::Telemetry>().unwrap(),
        "the segment has field `status: u32` at offset 32 where this program has `state: u32` at offset 32"
    );
    assert_eq!(
        diff::<seg::Telemetry, prog_reordered::Telemetry>().unwrap(),
        "the segment has field `status: u32` at offset 32 where this program has `flags: u32` at offset 32"
    );
}

#[test]
fn added_or_removed_field_names_the_first_extra_field() {
    assert_eq!(
        diff::<seg::Telemetry, prog_added::Telemetry>().unwrap(),
        "the type has 4 fields in the segment but 5 in this program; the first extra one is `extra: u64` at offset 40"
    );
    assert_eq!(
        diff::<prog_added::Telemetry, seg::Telemetry>().unwrap(),
        "the type has 5 fields in the segment but 4 in this program; the first extra one is `extra: u64` at offset 40"
    );
}

#[test]
fn stable_name_change_is_named() {
    assert_eq!(
        diff::<seg::Telemetry, prog_named::Telemetry>().unwrap(),
        "the type has no `#[shm(name)]` in the segment but `#[shm(name = \"Telemetry\")]` in this program"
    );
    assert_eq!(
        diff::<prog_named::Telemetry, prog_named::Renamed>().unwrap(),
        "the type has `#[shm(name = \"Telemetry\")]` in the segment but `#[shm(name = \"TelemetryV2\")]` in this program"
    );
}

#[test]
fn nested_change_names_the_path_with_absolute_offsets() {
    assert_eq!(
        diff::<seg::Outer, prog_inner_retyped::Outer>().unwrap(),
        "field `inner.x` is `u32` at offset 8 in the segment but `i32` at offset 8 in this program"
    );
    // `many` starts at 16; its first element's second field is at 20.
    assert_eq!(
        diff::<seg::Outer, prog_array_element_renamed::Outer>().unwrap(),
        "the segment has field `many[0][0].y: u32` at offset 20 where this program has `many[0][0].w: u32` at offset 20"
    );
    assert_eq!(
        diff::<seg::Outer, prog_inner_added::Outer>().unwrap(),
        "field `inner` has 2 fields in the segment but 4 in this program; the first extra one is `inner.z: u32` at offset 16"
    );
    // The elements of a `FixedVec` start after its 8-byte length: 8 + 8 + 4.
    assert_eq!(
        diff::<vec_seg::Path, vec_prog::Path>().unwrap(),
        "field `points[0].y` is `f32` at offset 20 in the segment but `i32` at offset 20 in this program"
    );
}

#[test]
fn types_that_print_alike_are_told_apart_by_size_and_align() {
    assert_eq!(
        diff::<seg::Outer, prog_inner_aligned::Outer>().unwrap(),
        "field `inner` is `Inner` (size 8, align 4) at offset 8 in the segment but `Inner` (size 8, align 8) at offset 8 in this program"
    );
}

#[test]
fn top_level_difference_names_the_type() {
    assert_eq!(
        diff::<u32, i32>().unwrap(),
        "the type is `u32` in the segment but `i32` in this program"
    );
    assert_eq!(
        diff::<[f64; 3], [f32; 6]>().unwrap(),
        "the type is `[f64; 3]` in the segment but `[f32; 6]` in this program"
    );
    assert_eq!(
        diff::<seg::Telemetry, [u8; 40]>().unwrap(),
        "the type is `Telemetry` in the segment but `[u8; 40]` in this program"
    );
    assert_eq!(
        diff::<[seg::Inner; 2], [prog_inner_retyped::Inner; 2]>().unwrap(),
        "element `[0].x` is `u32` at offset 0 in the segment but `i32` at offset 0 in this program"
    );
}

#[test]
fn any_two_different_layouts_have_a_difference() {
    let layouts: &[&Layout] = &[
        u32::LAYOUT,
        i32::LAYOUT,
        f32::LAYOUT,
        ShmBool::LAYOUT,
        <[f64; 3]>::LAYOUT,
        <FixedStr<4>>::LAYOUT,
        <FixedVec<u16, 4>>::LAYOUT,
        seg::Telemetry::LAYOUT,
        prog_pos_f32::Telemetry::LAYOUT,
        prog_pos_len_4::Telemetry::LAYOUT,
        prog_status_i32::Telemetry::LAYOUT,
        prog_renamed::Telemetry::LAYOUT,
        prog_reordered::Telemetry::LAYOUT,
        prog_added::Telemetry::LAYOUT,
        prog_named::Telemetry::LAYOUT,
        prog_named::Renamed::LAYOUT,
        seg::Outer::LAYOUT,
        prog_inner_retyped::Outer::LAYOUT,
        prog_array_element_renamed::Outer::LAYOUT,
        prog_inner_added::Outer::LAYOUT,
        prog_inner_aligned::Outer::LAYOUT,
        vec_seg::Path::LAYOUT,
        vec_prog::Path::LAYOUT,
        Robot::LAYOUT,
    ];
    for (i, a) in layouts.iter().enumerate() {
        for (j, b) in layouts.iter().enumerate() {
            let d = first_difference(a, b);
            if i == j {
                assert_eq!(d, None);
            } else {
                let d = d.unwrap_or_else(|| panic!("no difference between `{a}` and `{b}`"));
                assert!(!d.is_empty());
                assert!(d.starts_with(char::is_lowercase), "{d}");
                assert!(!d.ends_with('.'), "{d}");
            }
        }
    }
}

/// A segment's descriptor is read from memory another process wrote, so it need not come from
/// any derive: it may place a field elsewhere, or hold absurd offsets.
#[test]
fn hand_built_segment_layouts_are_compared_without_overflow() {
    fn two_u32(b_offset: u64, size: u64) -> LayoutBuf {
        let field = |name: &str, offset| FieldBuf {
            name: name.to_string(),
            offset,
            layout: LayoutBuf::from(u32::LAYOUT),
            alias: None,
            deprecated: false,
        };
        LayoutBuf {
            size,
            align: 4,
            kind: KindBuf::Struct {
                name: "Pair".to_string(),
                stable_name: None,
                fields: vec![field("a", 0), field("b", b_offset)],
                appendable: false,
            },
        }
    }
    let diff = |a: &LayoutBuf, b: &LayoutBuf| a.first_difference(b);

    assert_eq!(diff(&two_u32(4, 8), &two_u32(4, 8)), None);
    assert_eq!(
        diff(&two_u32(8, 12), &two_u32(4, 8)).unwrap(),
        "field `b` is `u32` at offset 8 in the segment but `u32` at offset 4 in this program"
    );
    let absurd = diff(&two_u32(u64::MAX, 8), &two_u32(4, 8)).unwrap();
    assert!(
        absurd.starts_with("field `b` is `u32` at offset 18446744073709551615"),
        "{absurd}"
    );

    // Nested under an absurd offset: the sums saturate instead of overflowing.
    let outer = |inner: LayoutBuf, at: u64| LayoutBuf {
        size: 8,
        align: 4,
        kind: KindBuf::Struct {
            name: "Outer".to_string(),
            stable_name: None,
            fields: vec![FieldBuf {
                name: "pair".to_string(),
                offset: at,
                layout: inner,
                alias: None,
                deprecated: false,
            }],
            appendable: false,
        },
    };
    let d = diff(
        &outer(two_u32(u64::MAX, 8), u64::MAX),
        &outer(two_u32(4, 8), u64::MAX),
    )
    .unwrap();
    assert!(d.starts_with("field `pair.b` is `u32`"), "{d}");
}
