//! The layout model: what a shareable type looks like in memory, and its layout hash.
//!
//! Every [`SharedState`](crate::SharedState) type carries a `const` [`Layout`]: its kind, size and
//! alignment and, for structs, every field's name, offset and layout, recursively. Two programs
//! agree on a segment's bytes exactly when their layouts are equal, so the layout is hashed into
//! [`SharedState::LAYOUT_HASH`](crate::SharedState::LAYOUT_HASH) and stored in every segment.
//!
//! [`LayoutBuf`] is to [`Layout`] what `PathBuf` is to `Path`: the owned form, decoded from the
//! descriptor a segment stores (see [`Reader::stored_layout`](crate::Reader::stored_layout) and
//! [`RawReader`](crate::RawReader)), so that a program can read a segment's description without
//! having its Rust type. The module's files each do one job: `hash.rs` the layout hash,
//! `buf.rs` the owned form, `check.rs` whether its numbers agree, `codec.rs` its byte encoding,
//! `diff.rs` the comparison that names the first differing field.

mod buf;
mod check;
mod codec;
mod compat;
mod diff;
mod hash;
mod value;

pub use buf::{FieldBuf, KindBuf, LayoutBuf};
pub use codec::DecodeError;
pub use compat::Compat;
pub use value::{InvalidField, Value};

use core::fmt;

/// The tags that identify a layout's kind in the layout hash and in the stored descriptor.
pub(crate) mod tag {
    /// [`Kind::Primitive`](super::Kind::Primitive).
    pub const PRIMITIVE: u8 = 1;
    /// [`Kind::Array`](super::Kind::Array).
    pub const ARRAY: u8 = 2;
    /// [`Kind::Struct`](super::Kind::Struct) without `#[shm(appendable)]`.
    pub const STRUCT: u8 = 3;
    /// [`Kind::Struct`](super::Kind::Struct) with `#[shm(appendable)]`: in the hash as the
    /// kind's tag, and in the stored descriptor, where its fields also carry their markers.
    pub const STRUCT_APPENDABLE: u8 = 7;
    /// [`Kind::FixedStr`](super::Kind::FixedStr).
    pub const FIXED_STR: u8 = 4;
    /// [`Kind::FixedVec`](super::Kind::FixedVec).
    pub const FIXED_VEC: u8 = 5;
    /// [`Kind::Bool`](super::Kind::Bool).
    pub const BOOL: u8 = 6;
}

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
    pub(crate) const fn tag(self) -> u8 {
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
    pub(crate) const fn from_tag(tag: u8) -> Option<Primitive> {
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
        /// `#[shm(appendable)]`: later versions of the type may add fields at its end (see
        /// [`LayoutBuf::compatibility`]). It enters the hash.
        appendable: bool,
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

/// Gives the kind enum `$kind` (borrowed or owned: they have the same variants) its `tag()`.
macro_rules! kind_tags {
    ($kind:ident) => {
        impl $kind {
            /// The tag that identifies this kind in the hash and in stored descriptors.
            pub(crate) const fn tag(&self) -> u8 {
                match self {
                    $kind::Primitive(_) => tag::PRIMITIVE,
                    $kind::Array { .. } => tag::ARRAY,
                    $kind::Struct {
                        appendable: true, ..
                    } => tag::STRUCT_APPENDABLE,
                    $kind::Struct { .. } => tag::STRUCT,
                    $kind::FixedStr { .. } => tag::FIXED_STR,
                    $kind::FixedVec { .. } => tag::FIXED_VEC,
                    $kind::Bool => tag::BOOL,
                }
            }
        }
    };
}

kind_tags!(Kind);
kind_tags!(KindBuf);

/// One field of a struct [`Layout`].
///
/// Only the derive builds fields: the struct is `#[non_exhaustive]`, its fields are read-only
/// to other crates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Field {
    /// The field's name.
    pub name: &'static str,
    /// Byte offset from the start of the struct.
    pub offset: usize,
    /// The field's type.
    pub layout: &'static Layout,
    /// `#[shm(alias = "...")]`: the name the field had in an earlier version of an appendable
    /// type. Not in the hash.
    pub alias: Option<&'static str>,
    /// `#[shm(deprecated)]`: the field stays in the type but is no longer written (writers
    /// that adopt a segment's layout zero it). Not in the hash.
    pub deprecated: bool,
}

/// The memory layout of a shareable type: everything two programs must agree on to share it.
///
/// Only [`SharedState`](crate::SharedState) types have one (`T::LAYOUT`): the struct is
/// `#[non_exhaustive]`, so other crates read its fields but cannot build a layout that no type
/// has. For the layout stored in a segment, see [`LayoutBuf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Layout {
    /// Size in bytes (`core::mem::size_of`).
    pub size: usize,
    /// Alignment in bytes (`core::mem::align_of`).
    pub align: usize,
    /// What the bytes are.
    pub kind: Kind,
}

impl Layout {
    /// The layout of a primitive type `T` of kind `p`.
    pub(crate) const fn primitive<T>(p: Primitive) -> Layout {
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

    /// Whether the layout is a struct marked `#[shm(appendable)]`.
    pub const fn is_appendable(&self) -> bool {
        matches!(
            self.kind,
            Kind::Struct {
                appendable: true,
                ..
            }
        )
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

    /// The layout hash: FNV-1a-64 over the format version, the byte order and this layout,
    /// recursively, as `docs/segment-format.md` specifies. A struct's Rust name, module paths
    /// and `TypeId`s never enter it, so renaming or moving a struct keeps its hash while any
    /// change to what is in memory changes it. What
    /// [`SharedState::LAYOUT_HASH`](crate::SharedState::LAYOUT_HASH) is made of.
    pub const fn layout_hash(&self) -> u64 {
        hash::of_layout(self)
    }
}

/// Renders the type as Rust would spell it: `u32`, `[f64; 3]`, `Pose`, `FixedStr<16>` (a
/// struct by its `#[shm(name)]` if it has one), exactly as its [`LayoutBuf`] does.
impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&LayoutBuf::from(self), f)
    }
}
