//! Decoding payload bytes field by field from a stored layout, and the layout as a table.
//!
//! The layout comes from another process and only its encoding was validated: sizes, offsets
//! and counts may disagree with each other or with the payload. Every access is bounds-checked
//! and the number of decoded values is capped, so a hostile layout gives `invalid` values,
//! never a panic or an endless loop.

use crate::json::Json;
use shm_core::layout::{FieldBuf, KindBuf, LayoutBuf, Primitive};
use std::fmt::Write;

/// Most values decoded from one payload; a layout describing more is cut short.
const MAX_VALUES: usize = 1 << 20;

/// One decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An unsigned integer (`u8` to `u128`).
    Unsigned(u128, Primitive),
    /// A signed integer (`i8` to `i128`).
    Signed(i128, Primitive),
    /// An `f32`.
    F32(f32),
    /// An `f64`.
    F64(f64),
    /// A valid `ShmBool`.
    Bool(bool),
    /// A valid `FixedStr`.
    Str(String),
    /// An array's elements, or a valid `FixedVec`'s first `len` elements.
    List(Vec<Value>),
    /// A struct's fields, in declaration order.
    Struct(Vec<(String, Value)>),
    /// Bytes that are not a valid value of their type, and why.
    Invalid(String),
}

impl Value {
    /// The value as JSON: numbers as numbers (128-bit integers as decimal strings, NaN and
    /// infinities as strings), `ShmBool` as a boolean, `FixedStr` as a string, arrays and
    /// `FixedVec`s as arrays, structs as objects; invalid bytes as `{"invalid": "why"}`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Unsigned(v, Primitive::U128) => Json::Str(v.to_string()),
            Value::Unsigned(v, _) => Json::UInt(*v),
            Value::Signed(v, Primitive::I128) => Json::Str(v.to_string()),
            Value::Signed(v, _) => Json::Int(*v),
            Value::F32(f) => Json::Float32(*f),
            Value::F64(f) => Json::Float(*f),
            Value::Bool(b) => Json::Bool(*b),
            Value::Str(s) => Json::Str(s.clone()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Struct(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(name, v)| (name.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Invalid(why) => Json::object().with("invalid", why.as_str()),
        }
    }

    /// The value on one line, as Rust would print it: `3`, `1.5`, `"text"`, `true`,
    /// `[1, 2]`, `{ x: 1, y: 2 }`, `invalid(why)`.
    pub fn inline(&self) -> String {
        let mut out = String::new();
        self.write_inline(&mut out);
        out
    }

    fn write_inline(&self, out: &mut String) {
        // Writing into a `String` cannot fail.
        let _ = match self {
            Value::Unsigned(v, _) => write!(out, "{v}"),
            Value::Signed(v, _) => write!(out, "{v}"),
            Value::F32(f) => write!(out, "{f:?}"),
            Value::F64(f) => write!(out, "{f:?}"),
            Value::Bool(b) => write!(out, "{b}"),
            Value::Str(s) => write!(out, "{s:?}"),
            Value::Invalid(why) => write!(out, "invalid({why})"),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_inline(out);
                }
                out.push(']');
                Ok(())
            }
            Value::Struct(fields) => {
                out.push_str("{ ");
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(name);
                    out.push_str(": ");
                    v.write_inline(out);
                }
                out.push_str(" }");
                Ok(())
            }
        };
    }

    /// The value as `(path, value)` rows: struct fields (recursively, `a.b`) and elements of
    /// arrays or vectors of structs (`a[2].b`) get rows of their own; other arrays and vectors
    /// stay whole on one row. The root's path is empty.
    pub fn rows(&self) -> Vec<(String, &Value)> {
        let mut rows = Vec::new();
        self.collect_rows(String::new(), &mut rows);
        rows
    }

    fn collect_rows<'a>(&'a self, path: String, rows: &mut Vec<(String, &'a Value)>) {
        match self {
            Value::Struct(fields) => {
                for (name, v) in fields {
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    v.collect_rows(p, rows);
                }
            }
            Value::List(items) if items.iter().any(|v| matches!(v, Value::Struct(_))) => {
                for (i, v) in items.iter().enumerate() {
                    v.collect_rows(format!("{path}[{i}]"), rows);
                }
            }
            _ => rows.push((path, self)),
        }
    }

    /// The part of this value at `path` (`a.b`, `a[2].b`, `a[1]`), if there is one.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut v = self;
        for segment in split_path(path)? {
            v = match (segment, v) {
                (PathSegment::Field(name), Value::Struct(fields)) => {
                    &fields.iter().find(|(n, _)| n == name)?.1
                }
                (PathSegment::Index(i), Value::List(items)) => items.get(i)?,
                _ => return None,
            };
        }
        Some(v)
    }
}

/// One step of a field path.
enum PathSegment<'a> {
    Field(&'a str),
    Index(usize),
}

/// `a.b[2].c` as steps; `None` if malformed.
fn split_path(path: &str) -> Option<Vec<PathSegment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() {
            return None;
        }
        out.push(PathSegment::Field(name));
        while let Some(body) = rest.strip_prefix('[') {
            let end = body.find(']')?;
            out.push(PathSegment::Index(body[..end].parse().ok()?));
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Decodes `bytes` (a payload) as `layout` describes.
pub fn decode(layout: &LayoutBuf, bytes: &[u8]) -> Value {
    let mut budget = MAX_VALUES;
    decode_at(layout, bytes, 0, &mut budget)
}

fn decode_at(layout: &LayoutBuf, bytes: &[u8], offset: u64, budget: &mut usize) -> Value {
    if *budget == 0 {
        return Value::Invalid("too many values to show".into());
    }
    *budget -= 1;
    let Some(end) = offset.checked_add(layout.size) else {
        return Value::Invalid("offset out of range".into());
    };
    if end > bytes.len() as u64 {
        return Value::Invalid(format!(
            "bytes {offset}..{end} are past the payload's {} bytes",
            bytes.len()
        ));
    }
    // In range of a slice, so both fit in usize.
    let here = &bytes[offset as usize..end as usize];
    match &layout.kind {
        KindBuf::Primitive(p) => primitive(*p, here),
        KindBuf::Bool => match here.first() {
            Some(0) => Value::Bool(false),
            Some(1) => Value::Bool(true),
            Some(b) => Value::Invalid(format!("byte {b:#04x}")),
            None => Value::Invalid("ShmBool of size 0".into()),
        },
        KindBuf::FixedStr { capacity } => fixed_str(here, *capacity),
        KindBuf::Array { len, element } => list(element, *len, bytes, offset, budget),
        KindBuf::FixedVec { capacity, element } => {
            let Some(len) = read_u64(here) else {
                return Value::Invalid("FixedVec smaller than its length field".into());
            };
            if len > *capacity {
                return Value::Invalid(format!("length {len} > capacity {capacity}"));
            }
            let items_at = offset + round_up(8, element.align.clamp(1, 8));
            list(element, len, bytes, items_at, budget)
        }
        KindBuf::Struct { fields, .. } => Value::Struct(
            fields
                .iter()
                .map(|f| {
                    let v = match offset.checked_add(f.offset) {
                        Some(at) => decode_at(&f.layout, bytes, at, budget),
                        None => Value::Invalid("offset out of range".into()),
                    };
                    (f.name.clone(), v)
                })
                .collect(),
        ),
        _ => Value::Invalid("a kind this version of shm does not know".into()),
    }
}

fn list(element: &LayoutBuf, len: u64, bytes: &[u8], offset: u64, budget: &mut usize) -> Value {
    let Some(total) = element.size.checked_mul(len) else {
        return Value::Invalid("array size overflows".into());
    };
    let in_range = offset
        .checked_add(total)
        .is_some_and(|end| end <= bytes.len() as u64);
    if !in_range {
        return Value::Invalid(format!("{len} elements do not fit in the payload"));
    }
    if len > *budget as u64 {
        *budget = 0;
        return Value::Invalid(format!("{len} elements are too many to show"));
    }
    Value::List(
        (0..len)
            .map(|i| decode_at(element, bytes, offset + i * element.size, budget))
            .collect(),
    )
}

fn fixed_str(here: &[u8], capacity: u64) -> Value {
    let (Some(len_bytes), Some(text)) = (here.get(..4), here.get(4..)) else {
        return Value::Invalid("FixedStr smaller than its length field".into());
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(len_bytes);
    let len = u64::from(u32::from_ne_bytes(len));
    if len > capacity || len > text.len() as u64 {
        return Value::Invalid(format!("length {len} > capacity {capacity}"));
    }
    match std::str::from_utf8(&text[..len as usize]) {
        Ok(s) => Value::Str(s.to_string()),
        Err(e) => Value::Invalid(format!(
            "not UTF-8 at byte {}: {}",
            e.valid_up_to(),
            hex(&text[..len as usize])
        )),
    }
}

fn read_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(..8)?.try_into().ok()?))
}

fn primitive(p: Primitive, b: &[u8]) -> Value {
    fn arr<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
        b.get(..N)?.try_into().ok()
    }
    let v = match p {
        Primitive::U8 => arr::<1>(b).map(|a| Value::Unsigned(u8::from_ne_bytes(a).into(), p)),
        Primitive::U16 => arr(b).map(|a| Value::Unsigned(u16::from_ne_bytes(a).into(), p)),
        Primitive::U32 => arr(b).map(|a| Value::Unsigned(u32::from_ne_bytes(a).into(), p)),
        Primitive::U64 => arr(b).map(|a| Value::Unsigned(u64::from_ne_bytes(a).into(), p)),
        Primitive::U128 => arr(b).map(|a| Value::Unsigned(u128::from_ne_bytes(a), p)),
        Primitive::I8 => arr::<1>(b).map(|a| Value::Signed(i8::from_ne_bytes(a).into(), p)),
        Primitive::I16 => arr(b).map(|a| Value::Signed(i16::from_ne_bytes(a).into(), p)),
        Primitive::I32 => arr(b).map(|a| Value::Signed(i32::from_ne_bytes(a).into(), p)),
        Primitive::I64 => arr(b).map(|a| Value::Signed(i64::from_ne_bytes(a).into(), p)),
        Primitive::I128 => arr(b).map(|a| Value::Signed(i128::from_ne_bytes(a), p)),
        Primitive::F32 => arr(b).map(|a| Value::F32(f32::from_ne_bytes(a))),
        Primitive::F64 => arr(b).map(|a| Value::F64(f64::from_ne_bytes(a))),
        _ => return Value::Invalid("a primitive this version of shm does not know".into()),
    };
    v.unwrap_or_else(|| Value::Invalid(format!("{} of size {}", p.rust_name(), b.len())))
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// `bytes` as lowercase hex pairs separated by spaces.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One row of the layout table.
#[derive(Clone, Debug, PartialEq)]
pub struct LayoutRow {
    /// Field path from the root: `pose.pos`, `wheels[0].rpm`.
    pub path: String,
    /// The field's type as Rust spells it.
    pub ty: String,
    /// Byte offset from the start of the payload.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Every field of `layout`, depth first: each struct field gets a row, then its own fields.
/// Fields of struct elements of arrays and vectors are listed once, for element 0 (`a[0].b`).
pub fn layout_rows(layout: &LayoutBuf) -> Vec<LayoutRow> {
    let mut rows = Vec::new();
    collect_layout_rows(layout, "", 0, &mut rows, 0);
    rows
}

fn collect_layout_rows(
    layout: &LayoutBuf,
    path: &str,
    base: u64,
    rows: &mut Vec<LayoutRow>,
    depth: usize,
) {
    // Decoded layouts nest at most 32 levels; this bound only keeps a bug from recursing away.
    if depth > 64 || rows.len() > MAX_VALUES {
        return;
    }
    for f in layout.fields() {
        let FieldBuf {
            name,
            offset,
            layout: field,
        } = f;
        let path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let at = base.saturating_add(*offset);
        rows.push(LayoutRow {
            path: path.clone(),
            ty: field.to_string(),
            offset: at,
            size: field.size,
        });
        let element = match &field.kind {
            KindBuf::Struct { .. } => {
                collect_layout_rows(field, &path, at, rows, depth + 1);
                continue;
            }
            KindBuf::Array { element, .. } => Some((element, at)),
            KindBuf::FixedVec { element, .. } => Some((
                element,
                at.saturating_add(round_up(8, element.align.clamp(1, 8))),
            )),
            _ => None,
        };
        if let Some((element, at)) = element {
            if matches!(element.kind, KindBuf::Struct { .. }) {
                collect_layout_rows(element, &format!("{path}[0]"), at, rows, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prim(p: Primitive, size: u64) -> LayoutBuf {
        LayoutBuf {
            size,
            align: size.min(8),
            kind: KindBuf::Primitive(p),
        }
    }

    fn field(name: &str, offset: u64, layout: LayoutBuf) -> FieldBuf {
        FieldBuf {
            name: name.into(),
            offset,
            layout,
        }
    }

    #[test]
    fn invalid_strings_bools_and_vectors_are_values_not_panics() {
        let layout = LayoutBuf {
            size: 32,
            align: 8,
            kind: KindBuf::Struct {
                name: "T".into(),
                stable_name: None,
                fields: vec![
                    field(
                        "s",
                        0,
                        LayoutBuf {
                            size: 8,
                            align: 1,
                            kind: KindBuf::FixedStr { capacity: 4 },
                        },
                    ),
                    field(
                        "b",
                        8,
                        LayoutBuf {
                            size: 1,
                            align: 1,
                            kind: KindBuf::Bool,
                        },
                    ),
                    field(
                        "v",
                        16,
                        LayoutBuf {
                            size: 16,
                            align: 8,
                            kind: KindBuf::FixedVec {
                                capacity: 2,
                                element: Box::new(prim(Primitive::U32, 4)),
                            },
                        },
                    ),
                ],
            },
        };
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&9u32.to_ne_bytes());
        bytes[8] = 7;
        bytes[16..24].copy_from_slice(&3u64.to_ne_bytes());
        let v = decode(&layout, &bytes);
        assert_eq!(
            v.get("s"),
            Some(&Value::Invalid("length 9 > capacity 4".into()))
        );
        assert_eq!(v.get("b"), Some(&Value::Invalid("byte 0x07".into())));
        assert_eq!(
            v.get("v"),
            Some(&Value::Invalid("length 3 > capacity 2".into()))
        );
        bytes[..4].copy_from_slice(&2u32.to_ne_bytes());
        bytes[4..6].copy_from_slice(&[0xff, 0xfe]);
        let v = decode(&layout, &bytes);
        assert_eq!(
            v.get("s"),
            Some(&Value::Invalid("not UTF-8 at byte 0: ff fe".into()))
        );
    }

    #[test]
    fn a_layout_larger_than_the_payload_gives_invalid_values() {
        let layout = LayoutBuf {
            size: 8,
            align: 8,
            kind: KindBuf::Array {
                len: u64::MAX,
                element: Box::new(prim(Primitive::U8, 0)),
            },
        };
        assert!(matches!(decode(&layout, &[0; 8]), Value::Invalid(_)));
    }

    #[test]
    fn paths_select_nested_fields_and_elements() {
        let v = Value::Struct(vec![(
            "a".into(),
            Value::List(vec![Value::Struct(vec![("b".into(), Value::Bool(true))])]),
        )]);
        assert_eq!(v.get("a[0].b"), Some(&Value::Bool(true)));
        assert_eq!(v.get("a[1].b"), None);
        assert_eq!(v.get("a..b"), None);
        let rows: Vec<String> = v.rows().into_iter().map(|(p, _)| p).collect();
        assert_eq!(rows, ["a[0].b"]);
    }
}
