//! The layout hash: what changes it, what does not, that it is a compile-time constant, and that
//! it is exactly the documented FNV-1a encoding of the descriptor.
#![allow(missing_docs)]

use shm_core::layout::{Kind, Primitive};
use shm_core::{FixedStr, FixedVec, Layout, SharedState, ShmBool, LAYOUT_ENCODING_VERSION};

const fn layout_hash(l: &Layout) -> u64 {
    l.layout_hash()
}

/// The reference struct every variant below is compared with.
mod base {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

/// Same fields, same types, same order; only the Rust name of the struct differs.
mod renamed_struct {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct RobotPose {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

/// The same struct name and fields as `base`, in another module: a path never enters the hash.
mod moved {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

mod reordered {
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

mod renamed_field {
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

mod status_i32 {
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

mod status_f32 {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: f32,
        pub flags: u32,
    }
}

mod pos_len_4 {
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

/// Same size and field offsets as `base`, but `pos` holds six `f32` instead of three `f64`.
mod pos_f32x6 {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f32; 6],
        pub status: u32,
        pub flags: u32,
    }
}

mod added_field {
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

mod named {
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

    /// The same stable name on a struct with another Rust name.
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Telemetry")]
    pub struct RenamedInRust {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "TelemetryV2")]
    pub struct OtherName {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

/// `Outer` holding an `Inner`; the `inner_*` modules change only `Inner`.
mod nested {
    use shm_core::SharedState;

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
        pub many: [Inner; 2],
    }
}

mod inner_retyped {
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
        pub many: [Inner; 2],
    }
}

mod inner_renamed_field {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Inner {
        pub x: u32,
        pub z: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Inner,
        pub many: [Inner; 2],
    }
}

/// `Inner` renamed in Rust only: the outer hash must not move.
mod inner_renamed_struct {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Point {
        pub x: u32,
        pub y: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub inner: Point,
        pub many: [Point; 2],
    }
}

/// `Inner` inlined: the same bytes and field names at the top level, but a different tree.
mod flattened {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Outer {
        pub id: u64,
        pub x: u32,
        pub y: u32,
        pub many: [u32; 4],
    }
}

/// Field names whose concatenations are equal: `ab` + `c` and `a` + `bc`.
mod split_names {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct AbC {
        pub ab: u32,
        pub c: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct ABc {
        pub a: u32,
        pub bc: u32,
    }
}

/// A struct of one `u32`, and structs that wrap one.
mod wrappers {
    use shm_core::SharedState;

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct One {
        pub v: u32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct WrapsOne {
        pub v: One,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct WrapsArray {
        pub v: [u32; 1],
    }
}

/// A struct using every kind of layout: the second pinned value covers their encodings.
mod every_kind {
    use shm_core::{FixedStr, FixedVec, SharedState, ShmBool};

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Joint {
        pub id: u16,
        pub enabled: ShmBool,
        pub mode: i8,
        pub angle: f32,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C, align(16))]
    #[shm(name = "Robot")]
    pub struct Robot {
        pub tick: u64,
        pub offset: i64,
        pub joints: [Joint; 2],
        pub grid: [[i16; 2]; 2],
        pub name: FixedStr<12>,
        pub samples: FixedVec<f64, 2>,
        pub armed: ShmBool,
        pub _pad: [u8; 15],
    }
}

fn hash<T: SharedState>() -> u64 {
    T::LAYOUT_HASH
}

#[test]
fn renaming_or_moving_the_struct_keeps_the_hash() {
    assert_eq!(
        hash::<base::Telemetry>(),
        hash::<renamed_struct::RobotPose>()
    );
    assert_eq!(hash::<base::Telemetry>(), hash::<moved::Telemetry>());
    // The descriptors differ only in the Rust name, which exports use and the hash does not.
    assert_ne!(base::Telemetry::LAYOUT, renamed_struct::RobotPose::LAYOUT);
    assert_eq!(
        hash::<named::Telemetry>(),
        hash::<named::RenamedInRust>(),
        "with a stable name, the Rust name still does not count"
    );
    assert_eq!(
        hash::<nested::Outer>(),
        hash::<inner_renamed_struct::Outer>(),
        "renaming a nested struct does not change the outer hash"
    );
}

#[test]
fn reordering_renaming_or_adding_a_field_changes_the_hash() {
    let base = hash::<base::Telemetry>();
    assert_ne!(base, hash::<reordered::Telemetry>());
    assert_ne!(base, hash::<renamed_field::Telemetry>());
    assert_ne!(base, hash::<added_field::Telemetry>());
}

#[test]
fn retyping_a_field_changes_the_hash_u32_i32_f32_all_distinct() {
    let u = hash::<base::Telemetry>();
    let i = hash::<status_i32::Telemetry>();
    let f = hash::<status_f32::Telemetry>();
    assert_ne!(u, i);
    assert_ne!(u, f);
    assert_ne!(i, f);
    // Same size and offsets, different element type.
    assert_ne!(u, hash::<pos_f32x6::Telemetry>());
}

#[test]
fn changing_an_array_length_changes_the_hash() {
    assert_ne!(hash::<base::Telemetry>(), hash::<pos_len_4::Telemetry>());
    assert_ne!(hash::<[u8; 3]>(), hash::<[u8; 4]>());
    assert_ne!(hash::<[u32; 0]>(), hash::<[u32; 1]>());
    assert_ne!(hash::<FixedStr<8>>(), hash::<FixedStr<9>>());
    assert_ne!(hash::<FixedVec<u16, 4>>(), hash::<FixedVec<u16, 5>>());
}

#[test]
fn changing_a_nested_struct_changes_the_outer_hash() {
    let base = hash::<nested::Outer>();
    assert_ne!(base, hash::<inner_retyped::Outer>());
    assert_ne!(base, hash::<inner_renamed_field::Outer>());
    assert_ne!(
        base,
        hash::<flattened::Outer>(),
        "nesting is part of the layout"
    );
    // The inner hashes themselves differ too.
    assert_ne!(hash::<nested::Inner>(), hash::<inner_retyped::Inner>());
    assert_ne!(
        hash::<nested::Inner>(),
        hash::<inner_renamed_field::Inner>()
    );
    assert_eq!(
        hash::<nested::Inner>(),
        hash::<inner_renamed_struct::Point>()
    );
}

#[test]
fn adding_or_changing_a_stable_name_changes_the_hash() {
    let unnamed = hash::<base::Telemetry>();
    let named = hash::<named::Telemetry>();
    let other = hash::<named::OtherName>();
    assert_ne!(unnamed, named, "adding #[shm(name)]");
    assert_ne!(named, other, "changing #[shm(name)]");
    assert_ne!(unnamed, other);
}

#[test]
fn field_names_are_length_prefixed() {
    assert_ne!(hash::<split_names::AbC>(), hash::<split_names::ABc>());
}

#[test]
fn wrapping_a_type_changes_the_hash() {
    let distinct = [
        ("u32", hash::<u32>()),
        ("[u32; 1]", hash::<[u32; 1]>()),
        ("[[u32; 1]; 1]", hash::<[[u32; 1]; 1]>()),
        ("One", hash::<wrappers::One>()),
        ("[One; 1]", hash::<[wrappers::One; 1]>()),
        ("WrapsOne", hash::<wrappers::WrapsOne>()),
        ("WrapsArray", hash::<wrappers::WrapsArray>()),
        ("FixedVec<u32, 1>", hash::<FixedVec<u32, 1>>()),
        ("Telemetry", hash::<base::Telemetry>()),
        ("[Telemetry; 1]", hash::<[base::Telemetry; 1]>()),
        ("[Telemetry; 2]", hash::<[base::Telemetry; 2]>()),
        (
            "FixedVec<Telemetry, 1>",
            hash::<FixedVec<base::Telemetry, 1>>(),
        ),
        // Same sizes, different shapes.
        ("[u32; 6]", hash::<[u32; 6]>()),
        ("[[u32; 2]; 3]", hash::<[[u32; 2]; 3]>()),
        ("[[u32; 3]; 2]", hash::<[[u32; 3]; 2]>()),
        // Same bytes, different kinds.
        ("u8", hash::<u8>()),
        ("ShmBool", hash::<ShmBool>()),
        ("[u8; 8]", hash::<[u8; 8]>()),
        ("FixedStr<4>", hash::<FixedStr<4>>()),
        ("FixedVec<u8, 0>", hash::<FixedVec<u8, 0>>()),
        ("[ShmBool; 8]", hash::<[ShmBool; 8]>()),
    ];
    assert_all_distinct(&distinct);
}

#[test]
fn primitive_hashes_are_all_distinct() {
    let primitives = [
        ("u8", hash::<u8>()),
        ("u16", hash::<u16>()),
        ("u32", hash::<u32>()),
        ("u64", hash::<u64>()),
        ("u128", hash::<u128>()),
        ("i8", hash::<i8>()),
        ("i16", hash::<i16>()),
        ("i32", hash::<i32>()),
        ("i64", hash::<i64>()),
        ("i128", hash::<i128>()),
        ("f32", hash::<f32>()),
        ("f64", hash::<f64>()),
        ("ShmBool", hash::<ShmBool>()),
    ];
    assert_all_distinct(&primitives);
    // Directly through the function, for the three 4-byte types.
    assert_ne!(layout_hash(u32::LAYOUT), layout_hash(i32::LAYOUT));
    assert_ne!(layout_hash(u32::LAYOUT), layout_hash(f32::LAYOUT));
    assert_ne!(layout_hash(i32::LAYOUT), layout_hash(f32::LAYOUT));
}

#[test]
fn layout_hash_constant_function_and_method_agree() {
    fn check<T: SharedState>() {
        assert_eq!(T::LAYOUT_HASH, layout_hash(T::LAYOUT));
    }
    check::<u32>();
    check::<[f64; 3]>();
    check::<ShmBool>();
    check::<FixedStr<16>>();
    check::<FixedVec<i16, 3>>();
    check::<base::Telemetry>();
    check::<nested::Outer>();
    check::<every_kind::Robot>();
}

// The hash is a constant: usable in const items, array lengths, const assertions and patterns.
const TELEMETRY_HASH: u64 = base::Telemetry::LAYOUT_HASH;
const HASH_BYTES: [u8; 8] = base::Telemetry::LAYOUT_HASH.to_le_bytes();
const _: () = assert!(base::Telemetry::LAYOUT_HASH != reordered::Telemetry::LAYOUT_HASH);
const _: () = assert!(base::Telemetry::LAYOUT_HASH == renamed_struct::RobotPose::LAYOUT_HASH);
const _: () = assert!(layout_hash(u32::LAYOUT) != layout_hash(i32::LAYOUT));

fn name_of(hash: u64) -> &'static str {
    match hash {
        base::Telemetry::LAYOUT_HASH => "Telemetry",
        named::Telemetry::LAYOUT_HASH => "Telemetry (named)",
        nested::Outer::LAYOUT_HASH => "Outer",
        _ => "unknown",
    }
}

#[test]
fn hash_is_usable_as_a_constant() {
    let table = [0u8; (base::Telemetry::LAYOUT_HASH % 61) as usize + 1];
    assert_eq!(table.len() as u64, TELEMETRY_HASH % 61 + 1);
    assert_eq!(u64::from_le_bytes(HASH_BYTES), TELEMETRY_HASH);
    assert_eq!(name_of(hash::<base::Telemetry>()), "Telemetry");
    assert_eq!(name_of(hash::<renamed_struct::RobotPose>()), "Telemetry");
    assert_eq!(name_of(hash::<named::Telemetry>()), "Telemetry (named)");
    assert_eq!(name_of(hash::<nested::Outer>()), "Outer");
    assert_eq!(name_of(hash::<reordered::Telemetry>()), "unknown");
}

// Pinned values. The hash is stored in every segment and compared by every reader, including C
// and Python readers built from an export, so it must never change by accident (a new segment
// format version leaves it alone). A deliberate change to the algorithm or to the descriptor
// encoding must bump `LAYOUT_ENCODING_VERSION` and then update these values. They hold for little-endian targets where `u64` and `f64` are 8-byte
// aligned (endianness and alignments enter the hash).
#[cfg(all(target_endian = "little", target_pointer_width = "64"))]
#[test]
fn golden_hashes_never_change() {
    assert_eq!(
        LAYOUT_ENCODING_VERSION, 1,
        "update the pinned values with the version"
    );
    assert_eq!(base::Telemetry::LAYOUT_HASH, 0x1420_5eba_fadb_41f6);
    assert_eq!(every_kind::Robot::LAYOUT_HASH, 0x7db3_7518_0049_995f);
}

/// An independent implementation of the encoding documented in `docs/segment-format.md`, so
/// the documentation and the code cannot drift apart.
fn reference_hash(layout: &Layout) -> u64 {
    /// The kind tags, as documented.
    fn kind_tag(k: &Kind) -> u8 {
        match k {
            Kind::Primitive(_) => 1,
            Kind::Array { .. } => 2,
            Kind::Struct { .. } => 3,
            Kind::FixedStr { .. } => 4,
            Kind::FixedVec { .. } => 5,
            Kind::Bool => 6,
            _ => panic!("kind {k:?} not covered by the reference encoding"),
        }
    }
    /// The primitive tags, as documented.
    fn primitive_tag(p: Primitive) -> u8 {
        use Primitive::*;
        let order = [U8, U16, U32, U64, U128, I8, I16, I32, I64, I128, F32, F64];
        1 + order
            .iter()
            .position(|&q| q == p)
            .expect("documented primitive") as u8
    }
    fn encode(out: &mut Vec<u8>, l: &Layout) {
        out.push(kind_tag(&l.kind));
        out.extend((l.size as u64).to_le_bytes());
        out.extend((l.align as u64).to_le_bytes());
        match l.kind {
            Kind::Primitive(p) => out.push(primitive_tag(p)),
            Kind::Array { len, element } => {
                out.extend((len as u64).to_le_bytes());
                encode(out, element);
            }
            Kind::Struct {
                stable_name,
                fields,
                ..
            } => {
                match stable_name {
                    Some(name) => {
                        out.push(1);
                        out.extend((name.len() as u64).to_le_bytes());
                        out.extend(name.as_bytes());
                    }
                    None => out.push(0),
                }
                out.extend((fields.len() as u64).to_le_bytes());
                for f in fields {
                    out.extend((f.name.len() as u64).to_le_bytes());
                    out.extend(f.name.as_bytes());
                    out.extend((f.offset as u64).to_le_bytes());
                    encode(out, f.layout);
                }
            }
            Kind::FixedStr { capacity } => out.extend((capacity as u64).to_le_bytes()),
            Kind::FixedVec { capacity, element } => {
                out.extend((capacity as u64).to_le_bytes());
                encode(out, element);
            }
            Kind::Bool => {}
            _ => panic!("kind {:?} not covered by the reference encoding", l.kind),
        }
    }
    let mut bytes = LAYOUT_ENCODING_VERSION.to_le_bytes().to_vec();
    bytes.push(if cfg!(target_endian = "little") {
        b'L'
    } else {
        b'B'
    });
    encode(&mut bytes, layout);
    // FNV-1a, 64 bits.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn hash_is_fnv1a_of_the_documented_encoding() {
    fn check<T: SharedState>() {
        assert_eq!(T::LAYOUT_HASH, reference_hash(T::LAYOUT), "{}", T::LAYOUT);
    }
    check::<u8>();
    check::<u32>();
    check::<i128>();
    check::<f64>();
    check::<ShmBool>();
    check::<[u16; 7]>();
    check::<[[f32; 3]; 2]>();
    check::<FixedStr<0>>();
    check::<FixedStr<16>>();
    check::<FixedVec<u64, 3>>();
    check::<base::Telemetry>();
    check::<named::Telemetry>();
    check::<nested::Outer>();
    check::<every_kind::Robot>();
}

#[test]
fn primitive_hash_matches_hand_computed_bytes() {
    // u32: version 1 (u32 LE), endianness, kind tag 1, size 4, align 4 (u64 LE), primitive tag 3.
    let mut bytes = vec![1, 0, 0, 0];
    bytes.push(if cfg!(target_endian = "little") {
        b'L'
    } else {
        b'B'
    });
    bytes.push(1);
    bytes.extend(4u64.to_le_bytes());
    bytes.extend(4u64.to_le_bytes());
    bytes.push(3);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    assert_eq!(u32::LAYOUT_HASH, h);
}

fn assert_all_distinct(hashes: &[(&str, u64)]) {
    for (i, (a, ha)) in hashes.iter().enumerate() {
        for (b, hb) in &hashes[i + 1..] {
            assert_ne!(ha, hb, "`{a}` and `{b}` have the same layout hash");
        }
    }
}
