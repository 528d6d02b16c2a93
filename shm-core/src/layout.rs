//! The layout descriptor of a shareable type and the layout hash computed from it.
//!
//! Every [`SharedState`](crate::SharedState) type carries a `const` [`Layout`]: its kind, size and
//! alignment and, for structs, every field's name, offset and layout, recursively. Two programs
//! agree on a segment's bytes exactly when their descriptors are equal, so the descriptor is
//! hashed into [`SharedState::LAYOUT_HASH`](crate::SharedState::LAYOUT_HASH), stored in every
//! segment, and exported to other languages.

use core::fmt;

/// Version of the layout hash algorithm and of the segment format.
///
/// It enters every [`layout_hash`], so a deliberate change to the hash algorithm or to the
/// descriptor encoding must bump it.
pub const FORMAT_VERSION: u32 = 1;

/// Primitive (leaf) types a layout can be built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Primitive {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `u128`
    U128,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `i128`
    I128,
    /// `f32`, IEEE 754 binary32
    F32,
    /// `f64`, IEEE 754 binary64
    F64,
}

impl Primitive {
    /// The Rust spelling of the type, e.g. `"u32"`.
    pub const fn rust_name(self) -> &'static str {
        match self {
            Primitive::U8 => "u8",
            Primitive::U16 => "u16",
            Primitive::U32 => "u32",
            Primitive::U64 => "u64",
            Primitive::U128 => "u128",
            Primitive::I8 => "i8",
            Primitive::I16 => "i16",
            Primitive::I32 => "i32",
            Primitive::I64 => "i64",
            Primitive::I128 => "i128",
            Primitive::F32 => "f32",
            Primitive::F64 => "f64",
        }
    }

    /// The tag that identifies this primitive in the hash and in serialized descriptors.
    pub const fn tag(self) -> u8 {
        match self {
            Primitive::U8 => 1,
            Primitive::U16 => 2,
            Primitive::U32 => 3,
            Primitive::U64 => 4,
            Primitive::U128 => 5,
            Primitive::I8 => 6,
            Primitive::I16 => 7,
            Primitive::I32 => 8,
            Primitive::I64 => 9,
            Primitive::I128 => 10,
            Primitive::F32 => 11,
            Primitive::F64 => 12,
        }
    }

    /// The primitive with the given [`tag`](Self::tag), if any.
    pub const fn from_tag(tag: u8) -> Option<Primitive> {
        Some(match tag {
            1 => Primitive::U8,
            2 => Primitive::U16,
            3 => Primitive::U32,
            4 => Primitive::U64,
            5 => Primitive::U128,
            6 => Primitive::I8,
            7 => Primitive::I16,
            8 => Primitive::I32,
            9 => Primitive::I64,
            10 => Primitive::I128,
            11 => Primitive::F32,
            12 => Primitive::F64,
            _ => return None,
        })
    }
}

/// What a [`Layout`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A fixed-width integer or float.
    Primitive(Primitive),
    /// `[element; len]`: `len` elements laid out back to back, no padding between them.
    Array {
        /// Number of elements.
        len: usize,
        /// Layout of one element.
        element: &'static Layout,
    },
    /// A `#[repr(C)]` struct that derives `SharedState`.
    Struct {
        /// The name of the Rust struct, used by exports; it does not enter the hash.
        name: &'static str,
        /// The `#[shm(name = "...")]` stable name, if given; it enters the hash.
        stable_name: Option<&'static str>,
        /// Fields in declaration order (which, for `repr(C)`, is offset order).
        fields: &'static [Field],
    },
    /// [`FixedStr<N>`](crate::FixedStr): a 4-byte native-endian `u32` length, then `capacity`
    /// bytes of UTF-8.
    FixedStr {
        /// Capacity in bytes.
        capacity: usize,
    },
    /// [`FixedVec<T, N>`](crate::FixedVec): an 8-byte native-endian `u64` length, then
    /// `capacity` elements.
    FixedVec {
        /// Capacity in elements.
        capacity: usize,
        /// Layout of one element.
        element: &'static Layout,
    },
    /// [`ShmBool`](crate::ShmBool): one byte, `0` is false, `1` is true, anything else invalid.
    Bool,
}

impl Kind {
    /// The tag that identifies this kind in the hash and in serialized descriptors.
    pub const fn tag(&self) -> u8 {
        match self {
            Kind::Primitive(_) => 1,
            Kind::Array { .. } => 2,
            Kind::Struct { .. } => 3,
            Kind::FixedStr { .. } => 4,
            Kind::FixedVec { .. } => 5,
            Kind::Bool => 6,
        }
    }
}

/// One field of a struct [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field's name.
    pub name: &'static str,
    /// Byte offset from the start of the struct.
    pub offset: usize,
    /// The field's type.
    pub layout: &'static Layout,
}

/// The memory layout of a shareable type: everything two programs must agree on to share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Size in bytes (`core::mem::size_of`).
    pub size: usize,
    /// Alignment in bytes (`core::mem::align_of`).
    pub align: usize,
    /// What the bytes are.
    pub kind: Kind,
}

impl Layout {
    /// Placeholder layout the derive emits next to a compile error; never part of a program.
    #[doc(hidden)]
    pub const UNCHECKED: Layout = Layout {
        size: 0,
        align: 1,
        kind: Kind::Struct {
            name: "",
            stable_name: None,
            fields: &[],
        },
    };

    /// The layout of a primitive type `T` of kind `p`.
    pub const fn primitive<T>(p: Primitive) -> Layout {
        Layout {
            size: core::mem::size_of::<T>(),
            align: core::mem::align_of::<T>(),
            kind: Kind::Primitive(p),
        }
    }

    /// The fields of a struct layout; empty for every other kind.
    pub const fn fields(&self) -> &'static [Field] {
        match self.kind {
            Kind::Struct { fields, .. } => fields,
            _ => &[],
        }
    }

    /// The struct's name (its `#[shm(name)]` if given, else its Rust name), or `None` for
    /// other kinds.
    pub const fn struct_name(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Struct {
                stable_name: Some(n),
                ..
            } => Some(n),
            Kind::Struct { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The layout hash of this descriptor; see [`layout_hash`].
    pub const fn hash(&'static self) -> u64 {
        layout_hash(self)
    }
}

/// Renders the type as Rust would spell it: `u32`, `[f64; 3]`, `Pose`, `FixedStr<16>`.
impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Primitive(p) => f.write_str(p.rust_name()),
            Kind::Array { len, element } => write!(f, "[{element}; {len}]"),
            Kind::Struct { .. } => f.write_str(self.struct_name().unwrap_or("?")),
            Kind::FixedStr { capacity } => write!(f, "FixedStr<{capacity}>"),
            Kind::FixedVec { capacity, element } => write!(f, "FixedVec<{element}, {capacity}>"),
            Kind::Bool => f.write_str("ShmBool"),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Byte that records the target's endianness in the hash.
const ENDIAN_TAG: u8 = if cfg!(target_endian = "little") {
    b'L'
} else {
    b'B'
};

const fn fnv_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

const fn fnv_u64(h: u64, v: u64) -> u64 {
    fnv_bytes(h, &v.to_le_bytes())
}

const fn fnv_str(h: u64, s: &str) -> u64 {
    fnv_bytes(fnv_u64(h, s.len() as u64), s.as_bytes())
}

const fn fnv_layout(mut h: u64, l: &Layout) -> u64 {
    h = fnv_bytes(h, &[l.kind.tag()]);
    h = fnv_u64(h, l.size as u64);
    h = fnv_u64(h, l.align as u64);
    match l.kind {
        Kind::Primitive(p) => fnv_bytes(h, &[p.tag()]),
        Kind::Array { len, element } => fnv_layout(fnv_u64(h, len as u64), element),
        Kind::Struct {
            stable_name,
            fields,
            ..
        } => {
            h = match stable_name {
                Some(name) => fnv_str(fnv_bytes(h, &[1]), name),
                None => fnv_bytes(h, &[0]),
            };
            h = fnv_u64(h, fields.len() as u64);
            let mut i = 0;
            while i < fields.len() {
                h = fnv_str(h, fields[i].name);
                h = fnv_u64(h, fields[i].offset as u64);
                h = fnv_layout(h, fields[i].layout);
                i += 1;
            }
            h
        }
        Kind::FixedStr { capacity } => fnv_u64(h, capacity as u64),
        Kind::FixedVec { capacity, element } => fnv_layout(fnv_u64(h, capacity as u64), element),
        Kind::Bool => h,
    }
}

/// FNV-1a-64 over the format version, the endianness and the descriptor, recursively.
///
/// Encoded, in order: [`FORMAT_VERSION`] (u32, little-endian), one endianness byte, then per
/// layout its kind tag, size and alignment (u64 LE each) and kind-specific data: a primitive's
/// tag; an array's length and element; a struct's stable name (present flag, then
/// length-prefixed bytes), field count and per field its length-prefixed name, offset and
/// layout. The Rust name of a struct, module paths and `TypeId`s never enter it, so renaming
/// or moving a struct keeps its hash while any change to what is in memory changes it.
pub const fn layout_hash(layout: &Layout) -> u64 {
    let mut h = fnv_bytes(FNV_OFFSET, &FORMAT_VERSION.to_le_bytes());
    h = fnv_bytes(h, &[ENDIAN_TAG]);
    fnv_layout(h, layout)
}

/// Finds the first place where two layouts differ, described for a person.
///
/// `segment` is the layout stored in a segment, `program` the one compiled into this program.
/// Returns `None` when they are equal in everything [`layout_hash`] covers (so two structs that
/// differ only in their Rust names are equal). Otherwise the text names the first field that
/// differs by its path from the top of the type (`pos`, `inner.x`, `items[0].id`), with byte
/// offsets counted from the start of the type:
///
/// - a retyped field: "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]` at
///   offset 8 in this program";
/// - a renamed or reordered field: "the segment has field `status: u32` at offset 32 where this
///   program has `state: u32` at offset 32";
/// - an added or removed field: "the type has 4 fields in the segment but 5 in this program;
///   the first extra one is `extra: u64` at offset 40";
/// - a changed stable name: "the type has `#[shm(name = \"Pose\")]` in the segment but no
///   `#[shm(name)]` in this program".
///
/// Where the two types would print the same (two versions of a struct called `Inner`), the
/// search goes into the struct, or into the first element of an array or
/// [`FixedVec`](crate::FixedVec) of structs, and sizes and alignments are added when even
/// that does not tell them apart.
pub fn first_difference(segment: &Layout, program: &Layout) -> Option<String> {
    crate::descriptor::Descriptor::from(segment)
        .first_difference(&crate::descriptor::Descriptor::from(program))
}
