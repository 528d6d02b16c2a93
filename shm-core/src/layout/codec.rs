//! The byte encoding of a [`LayoutBuf`], as segments store it (`docs/segment-format.md`,
//! "Layout descriptor").
//!
//! Decoding treats the bytes as hostile: every length, count and nesting depth is bounded, and
//! malformed input is an error, never a panic or an unbounded allocation.

use super::{tag, FieldBuf, KindBuf, LayoutBuf, Primitive};
use core::fmt;

/// Deepest nesting of arrays and structs a decoded descriptor may have.
const MAX_DEPTH: usize = 32;
/// Most nodes (types) a decoded descriptor may have.
const MAX_NODES: usize = 65_536;
/// Longest name a decoded descriptor may hold, in bytes.
const MAX_NAME: usize = 1024;

/// The bits of the marker byte each field of an appendable struct (tag 7) has after its offset.
mod mark {
    /// `#[shm(deprecated)]`.
    pub const DEPRECATED: u8 = 1;
    /// `#[shm(alias = "...")]`: the alias follows the marker byte, as a name.
    pub const ALIAS: u8 = 2;
}

impl LayoutBuf {
    /// Encodes the layout as segments store it (little-endian; see `docs/segment-format.md`).
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
            KindBuf::Primitive(p) => out.push(p.tag()),
            KindBuf::Array { len, element } => {
                out.extend_from_slice(&len.to_le_bytes());
                element.encode_into(out);
            }
            KindBuf::Struct {
                name,
                stable_name,
                fields,
                appendable,
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
                    // Only appendable structs (tag 7) carry field markers, so the encoding of
                    // every other struct is what it was before markers existed.
                    if *appendable {
                        let marks = (u8::from(f.deprecated) * mark::DEPRECATED)
                            | (u8::from(f.alias.is_some()) * mark::ALIAS);
                        out.push(marks);
                        if let Some(alias) = &f.alias {
                            put_str(out, alias);
                        }
                    }
                    f.layout.encode_into(out);
                }
            }
            KindBuf::FixedStr { capacity } => out.extend_from_slice(&capacity.to_le_bytes()),
            KindBuf::FixedVec { capacity, element } => {
                out.extend_from_slice(&capacity.to_le_bytes());
                element.encode_into(out);
            }
            KindBuf::Bool => {}
        }
    }

    /// Decodes a layout from untrusted bytes, as [`encode`](Self::encode) writes them; the whole
    /// input must be consumed. Nesting is limited to 32 levels and 65,536 types, names to
    /// 1,024 bytes of UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<LayoutBuf, DecodeError> {
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
}

/// A stored layout's bytes could not be decoded; says what is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed layout descriptor: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

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
    fn node(&mut self, depth: usize) -> Result<LayoutBuf, DecodeError> {
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
            tag::PRIMITIVE => KindBuf::Primitive(
                Primitive::from_tag(self.u8()?).ok_or(DecodeError("unknown primitive"))?,
            ),
            tag::ARRAY => {
                let len = self.u64()?;
                KindBuf::Array {
                    len,
                    element: Box::new(self.node(depth + 1)?),
                }
            }
            tag::STRUCT | tag::STRUCT_APPENDABLE => {
                let appendable = tag == tag::STRUCT_APPENDABLE;
                let name = self.str()?;
                let stable_name = match self.u8()? {
                    0 => None,
                    1 => Some(self.str()?),
                    _ => return Err(DecodeError("bad stable-name flag")),
                };
                let count = self.u32()? as usize;
                // Each field takes at least 4 + 8 + 17 bytes (one more for the marker byte of
                // an appendable struct): a count larger than what is left is malformed, and
                // checking it first bounds the allocation.
                let least = 29 + usize::from(appendable);
                if count > (self.bytes.len() - self.pos) / least {
                    return Err(DecodeError("field count exceeds the data"));
                }
                let mut fields = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = self.str()?;
                    let offset = self.u64()?;
                    let (mut alias, mut deprecated) = (None, false);
                    if appendable {
                        let marks = self.u8()?;
                        if marks & !(mark::DEPRECATED | mark::ALIAS) != 0 {
                            return Err(DecodeError("unknown field marker"));
                        }
                        deprecated = marks & mark::DEPRECATED != 0;
                        if marks & mark::ALIAS != 0 {
                            alias = Some(self.str()?);
                        }
                    }
                    let layout = self.node(depth + 1)?;
                    fields.push(FieldBuf {
                        name,
                        offset,
                        layout,
                        alias,
                        deprecated,
                    });
                }
                KindBuf::Struct {
                    name,
                    stable_name,
                    fields,
                    appendable,
                }
            }
            tag::FIXED_STR => KindBuf::FixedStr {
                capacity: self.u64()?,
            },
            tag::FIXED_VEC => {
                let capacity = self.u64()?;
                KindBuf::FixedVec {
                    capacity,
                    element: Box::new(self.node(depth + 1)?),
                }
            }
            tag::BOOL => KindBuf::Bool,
            _ => return Err(DecodeError("unknown kind tag")),
        };
        Ok(LayoutBuf { size, align, kind })
    }
}
