//! The owned form of a [`Layout`], its byte encoding inside segments, and layout comparison.
//!
//! A segment stores its type's descriptor so that it describes itself: a program opening it
//! with the wrong type learns which field differs, and tools and other languages can decode the
//! segment without the Rust type. Decoding treats the bytes as hostile: every length, count and
//! nesting depth is bounded, and malformed input is an error, never a panic.

use crate::layout::{Kind, Layout, Primitive, FORMAT_VERSION};
use core::fmt;

/// Deepest nesting of arrays and structs a decoded descriptor may have.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (types) a decoded descriptor may have.
pub const MAX_NODES: usize = 65_536;
/// Longest name a decoded descriptor may hold, in bytes.
pub const MAX_NAME: usize = 1024;

/// An owned layout descriptor: what [`Layout`] says, decoded from a segment or converted from a
/// compiled-in `Layout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Size in bytes.
    pub size: u64,
    /// Alignment in bytes.
    pub align: u64,
    /// What the bytes are.
    pub kind: DescriptorKind,
}

/// What a [`Descriptor`] describes; mirrors [`Kind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescriptorKind {
    /// A fixed-width integer or float.
    Primitive(Primitive),
    /// `[element; len]`.
    Array {
        /// Number of elements.
        len: u64,
        /// One element.
        element: Box<Descriptor>,
    },
    /// A struct.
    Struct {
        /// The Rust name (informative, not hashed).
        name: String,
        /// The `#[shm(name)]` stable name, if any.
        stable_name: Option<String>,
        /// Fields in declaration order.
        fields: Vec<DescriptorField>,
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
        element: Box<Descriptor>,
    },
    /// `ShmBool`.
    Bool,
}

/// One field of a struct [`Descriptor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorField {
    /// The field's name.
    pub name: String,
    /// Byte offset in the struct.
    pub offset: u64,
    /// The field's type.
    pub layout: Descriptor,
}

/// A descriptor's bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed layout descriptor: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<&Layout> for Descriptor {
    fn from(l: &Layout) -> Self {
        let kind = match l.kind {
            Kind::Primitive(p) => DescriptorKind::Primitive(p),
            Kind::Array { len, element } => DescriptorKind::Array {
                len: len as u64,
                element: Box::new(element.into()),
            },
            Kind::Struct {
                name,
                stable_name,
                fields,
            } => DescriptorKind::Struct {
                name: name.to_string(),
                stable_name: stable_name.map(str::to_string),
                fields: fields
                    .iter()
                    .map(|f| DescriptorField {
                        name: f.name.to_string(),
                        offset: f.offset as u64,
                        layout: f.layout.into(),
                    })
                    .collect(),
            },
            Kind::FixedStr { capacity } => DescriptorKind::FixedStr {
                capacity: capacity as u64,
            },
            Kind::FixedVec { capacity, element } => DescriptorKind::FixedVec {
                capacity: capacity as u64,
                element: Box::new(element.into()),
            },
            Kind::Bool => DescriptorKind::Bool,
        };
        Descriptor {
            size: l.size as u64,
            align: l.align as u64,
            kind,
        }
    }
}

impl DescriptorKind {
    fn tag(&self) -> u8 {
        match self {
            DescriptorKind::Primitive(_) => 1,
            DescriptorKind::Array { .. } => 2,
            DescriptorKind::Struct { .. } => 3,
            DescriptorKind::FixedStr { .. } => 4,
            DescriptorKind::FixedVec { .. } => 5,
            DescriptorKind::Bool => 6,
        }
    }
}

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }
}

impl Descriptor {
    /// The struct's fields; empty for other kinds.
    pub fn fields(&self) -> &[DescriptorField] {
        match &self.kind {
            DescriptorKind::Struct { fields, .. } => fields,
            _ => &[],
        }
    }

    /// The layout hash, equal to [`crate::layout::layout_hash`] of the `Layout` this was built
    /// from (the same algorithm over the owned form).
    pub fn layout_hash(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.bytes(&FORMAT_VERSION.to_le_bytes());
        h.bytes(&[if cfg!(target_endian = "little") {
            b'L'
        } else {
            b'B'
        }]);
        self.hash_into(&mut h);
        h.0
    }

    fn hash_into(&self, h: &mut Fnv) {
        h.bytes(&[self.kind.tag()]);
        h.u64(self.size);
        h.u64(self.align);
        match &self.kind {
            DescriptorKind::Primitive(p) => h.bytes(&[p.tag()]),
            DescriptorKind::Array { len, element } => {
                h.u64(*len);
                element.hash_into(h);
            }
            DescriptorKind::Struct {
                stable_name,
                fields,
                ..
            } => {
                match stable_name {
                    Some(n) => {
                        h.bytes(&[1]);
                        h.str(n);
                    }
                    None => h.bytes(&[0]),
                }
                h.u64(fields.len() as u64);
                for f in fields {
                    h.str(&f.name);
                    h.u64(f.offset);
                    f.layout.hash_into(h);
                }
            }
            DescriptorKind::FixedStr { capacity } => h.u64(*capacity),
            DescriptorKind::FixedVec { capacity, element } => {
                h.u64(*capacity);
                element.hash_into(h);
            }
            DescriptorKind::Bool => {}
        }
    }

    /// Encodes the descriptor as stored in segments (little-endian; see
    /// `docs/segment-format.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        fn put_str(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.push(self.kind.tag());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.align.to_le_bytes());
        match &self.kind {
            DescriptorKind::Primitive(p) => out.push(p.tag()),
            DescriptorKind::Array { len, element } => {
                out.extend_from_slice(&len.to_le_bytes());
                element.encode_into(out);
            }
            DescriptorKind::Struct {
                name,
                stable_name,
                fields,
            } => {
                put_str(out, name);
                match stable_name {
                    Some(n) => {
                        out.push(1);
                        put_str(out, n);
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
                for f in fields {
                    put_str(out, &f.name);
                    out.extend_from_slice(&f.offset.to_le_bytes());
                    f.layout.encode_into(out);
                }
            }
            DescriptorKind::FixedStr { capacity } => out.extend_from_slice(&capacity.to_le_bytes()),
            DescriptorKind::FixedVec { capacity, element } => {
                out.extend_from_slice(&capacity.to_le_bytes());
                element.encode_into(out);
            }
            DescriptorKind::Bool => {}
        }
    }

    /// Decodes a descriptor from untrusted bytes; the whole input must be consumed.
    pub fn decode(bytes: &[u8]) -> Result<Descriptor, DecodeError> {
        let mut d = Decoder {
            bytes,
            pos: 0,
            nodes: 0,
        };
        let out = d.node(0)?;
        if d.pos != bytes.len() {
            return Err(DecodeError("trailing bytes after the descriptor"));
        }
        Ok(out)
    }

    /// Where `self` (the layout stored in a segment) first differs from `program` (the layout
    /// compiled into this program), for a person; `None` when they hash the same.
    pub fn first_difference(&self, program: &Descriptor) -> Option<String> {
        if same_shape(self, program) {
            return None;
        }
        Some(diff_at("", 0, 0, self, program))
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    nodes: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(DecodeError("unexpected end of data"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        if len > MAX_NAME {
            return Err(DecodeError("name too long"));
        }
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("name is not utf-8"))
    }
    fn node(&mut self, depth: usize) -> Result<Descriptor, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError("nested too deeply"));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(DecodeError("too many types"));
        }
        let tag = self.u8()?;
        let size = self.u64()?;
        let align = self.u64()?;
        let kind = match tag {
            1 => DescriptorKind::Primitive(
                Primitive::from_tag(self.u8()?).ok_or(DecodeError("unknown primitive"))?,
            ),
            2 => {
                let len = self.u64()?;
                DescriptorKind::Array {
                    len,
                    element: Box::new(self.node(depth + 1)?),
                }
            }
            3 => {
                let name = self.str()?;
                let stable_name = match self.u8()? {
                    0 => None,
                    1 => Some(self.str()?),
                    _ => return Err(DecodeError("bad stable-name flag")),
                };
                let count = self.u32()? as usize;
                // Each field takes at least 4 + 8 + 17 bytes: a count larger than what is left
                // is malformed, and checking it first bounds the allocation.
                if count > (self.bytes.len() - self.pos) / 29 {
                    return Err(DecodeError("field count exceeds the data"));
                }
                let mut fields = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = self.str()?;
                    let offset = self.u64()?;
                    let layout = self.node(depth + 1)?;
                    fields.push(DescriptorField {
                        name,
                        offset,
                        layout,
                    });
                }
                DescriptorKind::Struct {
                    name,
                    stable_name,
                    fields,
                }
            }
            4 => DescriptorKind::FixedStr {
                capacity: self.u64()?,
            },
            5 => {
                let capacity = self.u64()?;
                DescriptorKind::FixedVec {
                    capacity,
                    element: Box::new(self.node(depth + 1)?),
                }
            }
            6 => DescriptorKind::Bool,
            _ => return Err(DecodeError("unknown kind tag")),
        };
        Ok(Descriptor { size, align, kind })
    }
}

/// Renders the type as Rust would spell it: `u32`, `[f64; 3]`, `Pose`, `FixedStr<16>`.
impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DescriptorKind::Primitive(p) => f.write_str(p.rust_name()),
            DescriptorKind::Array { len, element } => write!(f, "[{element}; {len}]"),
            DescriptorKind::Struct {
                name, stable_name, ..
            } => f.write_str(stable_name.as_deref().unwrap_or(name)),
            DescriptorKind::FixedStr { capacity } => write!(f, "FixedStr<{capacity}>"),
            DescriptorKind::FixedVec { capacity, element } => {
                write!(f, "FixedVec<{element}, {capacity}>")
            }
            DescriptorKind::Bool => f.write_str("ShmBool"),
        }
    }
}

/// Describes how `seg` (at absolute offset `seg_at` in the segment's type) differs from `prog`
/// (at `prog_at` in this program's type, the same place); the two must differ. A segment's
/// descriptor comes from another process, so offsets are added without trusting them not to
/// overflow.
fn diff_at(path: &str, seg_at: u64, prog_at: u64, seg: &Descriptor, prog: &Descriptor) -> String {
    match (&seg.kind, &prog.kind) {
        (
            DescriptorKind::Struct {
                fields: sf,
                stable_name: sn,
                ..
            },
            DescriptorKind::Struct {
                fields: pf,
                stable_name: pn,
                ..
            },
        ) => {
            for (s, p) in sf.iter().zip(pf) {
                let (s_at, p_at) = (
                    seg_at.saturating_add(s.offset),
                    prog_at.saturating_add(p.offset),
                );
                if s.name != p.name {
                    return format!(
                        "the segment has field `{}: {}` at offset {s_at} where this program has `{}: {}` at offset {p_at}",
                        join(path, &s.name),
                        s.layout,
                        join(path, &p.name),
                        p.layout
                    );
                }
                let sub = join(path, &s.name);
                if s.offset != p.offset {
                    return mismatch(&sub, s_at, p_at, &s.layout, &p.layout);
                }
                if !same_shape(&s.layout, &p.layout) {
                    return diff_at(&sub, s_at, p_at, &s.layout, &p.layout);
                }
            }
            if sf.len() != pf.len() {
                let (extra, at) = if sf.len() > pf.len() {
                    (&sf[pf.len()], seg_at)
                } else {
                    (&pf[sf.len()], prog_at)
                };
                return format!(
                    "{} has {} fields in the segment but {} in this program; the first extra one is `{}: {}` at offset {}",
                    what(path),
                    sf.len(),
                    pf.len(),
                    join(path, &extra.name),
                    extra.layout,
                    at.saturating_add(extra.offset)
                );
            }
            if sn != pn {
                return format!(
                    "{} has {} in the segment but {} in this program",
                    what(path),
                    shm_name(sn.as_deref()),
                    shm_name(pn.as_deref())
                );
            }
        }
        // Same length, different elements that may print alike: look into the first element.
        (
            DescriptorKind::Array {
                len: sl,
                element: se,
            },
            DescriptorKind::Array {
                len: pl,
                element: pe,
            },
        ) if sl == pl && holds_struct(se) && holds_struct(pe) && !same_shape(se, pe) => {
            return diff_at(&format!("{path}[0]"), seg_at, prog_at, se, pe);
        }
        (
            DescriptorKind::FixedVec {
                capacity: sc,
                element: se,
            },
            DescriptorKind::FixedVec {
                capacity: pc,
                element: pe,
            },
        ) if sc == pc && holds_struct(se) && holds_struct(pe) && !same_shape(se, pe) => {
            // The elements start after the 8-byte length.
            let (s_at, p_at) = (seg_at.saturating_add(8), prog_at.saturating_add(8));
            return diff_at(&format!("{path}[0]"), s_at, p_at, se, pe);
        }
        _ => {}
    }
    mismatch(path, seg_at, prog_at, seg, prog)
}

/// Names the type and offset of `path` on both sides.
fn mismatch(path: &str, seg_at: u64, prog_at: u64, seg: &Descriptor, prog: &Descriptor) -> String {
    // Different types that print alike are told apart by size and alignment.
    let sized = !same_shape(seg, prog) && seg.to_string() == prog.to_string();
    let (s, p) = (shown(seg, sized), shown(prog, sized));
    if path.is_empty() {
        format!("the type is {s} in the segment but {p} in this program")
    } else {
        format!(
            "{} is {s} at offset {seg_at} in the segment but {p} at offset {prog_at} in this program",
            what(path)
        )
    }
}

fn shown(l: &Descriptor, sized: bool) -> String {
    if sized {
        format!("`{l}` (size {}, align {})", l.size, l.align)
    } else {
        format!("`{l}`")
    }
}

/// Equal in everything the hash covers (Rust struct names aside).
fn same_shape(a: &Descriptor, b: &Descriptor) -> bool {
    a.layout_hash() == b.layout_hash()
}

/// Whether the layout is a struct or an array or `FixedVec` of them: a type whose printed name
/// may hide a difference.
fn holds_struct(l: &Descriptor) -> bool {
    match &l.kind {
        DescriptorKind::Struct { .. } => true,
        DescriptorKind::Array { element, .. } | DescriptorKind::FixedVec { element, .. } => {
            holds_struct(element)
        }
        _ => false,
    }
}

fn what(path: &str) -> String {
    if path.is_empty() {
        "the type".to_string()
    } else if path.starts_with('[') {
        format!("element `{path}`")
    } else {
        format!("field `{path}`")
    }
}

fn shm_name(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("`#[shm(name = {n:?})]`"),
        None => "no `#[shm(name)]`".to_string(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
