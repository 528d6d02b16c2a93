//! [`LayoutBuf`], the owned form of a [`Layout`].

use super::{Kind, Layout, Primitive};
use core::fmt;

/// An owned layout: what a [`Layout`] says, decoded from the descriptor a segment stores or
/// converted from a compiled-in `Layout` (`LayoutBuf::from(T::LAYOUT)`).
///
/// As `PathBuf` is to `Path`. Sizes, offsets and counts are `u64` because a stored layout
/// comes from another process and is only as trustworthy as that process: a decoded
/// `LayoutBuf` is well-formed (see [`LayoutBuf::decode`]) but its numbers are not checked
/// against each other.
///
/// `LayoutBuf` and [`FieldBuf`] are plain data, deliberately exhaustive: a tool or a test may
/// build one to describe a type it has no Rust definition for. [`KindBuf`] is
/// `#[non_exhaustive]`, as new kinds may be added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutBuf {
    /// Size in bytes.
    pub size: u64,
    /// Alignment in bytes.
    pub align: u64,
    /// What the bytes are.
    pub kind: KindBuf,
}

/// What a [`LayoutBuf`] describes; mirrors [`Kind`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindBuf {
    /// A fixed-width integer or float.
    Primitive(Primitive),
    /// `[element; len]`.
    Array {
        /// Number of elements.
        len: u64,
        /// One element.
        element: Box<LayoutBuf>,
    },
    /// A struct.
    Struct {
        /// The Rust name (informative, not hashed).
        name: String,
        /// The `#[shm(name)]` stable name, if any.
        stable_name: Option<String>,
        /// Fields in declaration order.
        fields: Vec<FieldBuf>,
        /// `#[shm(appendable)]` (hashed).
        appendable: bool,
    },
    /// `FixedStr<capacity>`.
    FixedStr {
        /// Capacity in bytes.
        capacity: u64,
    },
    /// `FixedVec<element, capacity>`.
    FixedVec {
        /// Capacity in elements.
        capacity: u64,
        /// One element.
        element: Box<LayoutBuf>,
    },
    /// `ShmBool`.
    Bool,
}

/// One field of a struct [`LayoutBuf`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldBuf {
    /// The field's name.
    pub name: String,
    /// Byte offset in the struct.
    pub offset: u64,
    /// The field's type.
    pub layout: LayoutBuf,
    /// `#[shm(alias = "...")]`: the field's earlier name (appendable structs only; not hashed).
    pub alias: Option<String>,
    /// `#[shm(deprecated)]` (appendable structs only; not hashed).
    pub deprecated: bool,
}

impl From<&Layout> for LayoutBuf {
    fn from(l: &Layout) -> Self {
        let kind = match l.kind {
            Kind::Primitive(p) => KindBuf::Primitive(p),
            Kind::Array { len, element } => KindBuf::Array {
                len: len as u64,
                element: Box::new(element.into()),
            },
            Kind::Struct {
                name,
                stable_name,
                fields,
                appendable,
            } => KindBuf::Struct {
                name: name.to_string(),
                stable_name: stable_name.map(str::to_string),
                fields: fields
                    .iter()
                    .map(|f| FieldBuf {
                        name: f.name.to_string(),
                        offset: f.offset as u64,
                        layout: f.layout.into(),
                        alias: f.alias.map(str::to_string),
                        deprecated: f.deprecated,
                    })
                    .collect(),
                appendable,
            },
            Kind::FixedStr { capacity } => KindBuf::FixedStr {
                capacity: capacity as u64,
            },
            Kind::FixedVec { capacity, element } => KindBuf::FixedVec {
                capacity: capacity as u64,
                element: Box::new(element.into()),
            },
            Kind::Bool => KindBuf::Bool,
        };
        LayoutBuf {
            size: l.size as u64,
            align: l.align as u64,
            kind,
        }
    }
}

/// Renders the type as Rust would spell it: `u32`, `[f64; 3]`, `Pose`, `FixedStr<16>`.
impl fmt::Display for LayoutBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            KindBuf::Primitive(p) => f.write_str(p.rust_name()),
            KindBuf::Array { len, element } => write!(f, "[{element}; {len}]"),
            KindBuf::Struct {
                name, stable_name, ..
            } => f.write_str(stable_name.as_deref().unwrap_or(name)),
            KindBuf::FixedStr { capacity } => write!(f, "FixedStr<{capacity}>"),
            KindBuf::FixedVec { capacity, element } => {
                write!(f, "FixedVec<{element}, {capacity}>")
            }
            KindBuf::Bool => f.write_str("ShmBool"),
        }
    }
}

impl LayoutBuf {
    /// The struct's fields; empty for other kinds.
    pub fn fields(&self) -> &[FieldBuf] {
        match &self.kind {
            KindBuf::Struct { fields, .. } => fields,
            _ => &[],
        }
    }

    /// Whether the layout is a struct marked `#[shm(appendable)]`.
    pub fn is_appendable(&self) -> bool {
        matches!(
            self.kind,
            KindBuf::Struct {
                appendable: true,
                ..
            }
        )
    }

    /// The struct's name (its `#[shm(name)]` if it has one, else its Rust name), or `None` for
    /// other kinds.
    pub fn struct_name(&self) -> Option<&str> {
        match &self.kind {
            KindBuf::Struct {
                name, stable_name, ..
            } => Some(stable_name.as_deref().unwrap_or(name)),
            _ => None,
        }
    }

    /// The layout hash, equal to [`Layout::layout_hash`] of the `Layout` this was built from.
    pub fn layout_hash(&self) -> u64 {
        super::hash::of_layout_buf(self)
    }
}
