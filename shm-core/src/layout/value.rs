//! [`Value`]: payload bytes decoded by a [`LayoutBuf`], for programs that have a segment's
//! stored layout but not its Rust type (other languages' bindings, tools).
//!
//! Decoding treats both the layout and the bytes as hostile: every offset and size is checked
//! against the bytes and against the enclosing type, nesting is bounded, and helper types
//! holding invalid bytes (a [`FixedStr`](crate::FixedStr) length over its capacity or not
//! UTF-8, a [`ShmBool`](crate::ShmBool) byte other than 0 or 1, a
//! [`FixedVec`](crate::FixedVec) length over its capacity) are an error naming the field,
//! never a panic.

use super::{FieldBuf, KindBuf, LayoutBuf, Primitive};
use crate::ValueError;
use core::fmt;

/// Deepest nesting of arrays and structs [`LayoutBuf::decode_value`] follows.
const MAX_DEPTH: usize = 64;

/// A payload decoded by its layout: what a [`LayoutBuf`] says the bytes mean.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// An unsigned integer (`u8` to `u128`).
    Unsigned(u128),
    /// A signed integer (`i8` to `i128`).
    Signed(i128),
    /// A float (`f32`, widened exactly, or `f64`).
    Float(f64),
    /// A [`ShmBool`](crate::ShmBool).
    Bool(bool),
    /// A [`FixedStr`](crate::FixedStr): its valid length of UTF-8.
    Str(String),
    /// An array, or the valid elements of a [`FixedVec`](crate::FixedVec).
    List(Vec<Value>),
    /// A struct: its fields in declaration order, by name.
    Struct(Vec<(String, Value)>),
}

/// Payload bytes that do not form a value of their layout, or a layout that does not fit the
/// bytes; names the field (`joints[1].ok`, or `(root)` for the whole value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidField {
    /// The path to the field: names joined by `.`, array indices in brackets.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}` is invalid: {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidField {}

impl LayoutBuf {
    /// Decodes the payload bytes `bytes` as this layout describes them.
    ///
    /// `bytes` must hold at least [`size`](LayoutBuf::size) bytes. Fails, naming the field,
    /// when a helper type holds invalid bytes or the layout does not fit the bytes (an offset
    /// or size past the end, a primitive of the wrong size, nesting deeper than 64).
    pub fn decode_value(&self, bytes: &[u8]) -> Result<Value, InvalidField> {
        let mut path = String::new();
        decode(self, bytes, &mut path, 0)
    }
}

/// Builds the error for the field at `path`.
fn invalid(path: &str, reason: impl fmt::Display) -> InvalidField {
    InvalidField {
        field: if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        },
        reason: reason.to_string(),
    }
}

/// The `len` bytes at `offset` in `bytes`, if they are there.
fn window(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// Decodes `count` elements of `element` laid out back to back from the start of `bytes`.
fn list(
    element: &LayoutBuf,
    count: u64,
    bytes: &[u8],
    path: &mut String,
    depth: usize,
) -> Result<Value, InvalidField> {
    if count > 0 && element.size == 0 {
        return Err(invalid(path, "array elements of size 0"));
    }
    let total = element.size.checked_mul(count);
    if total.is_none_or(|t| t > bytes.len() as u64) {
        return Err(invalid(path, "the elements do not fit in the bytes"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let at = path.len();
        path.push_str(&format!("[{i}]"));
        let el = window(bytes, i * element.size, element.size)
            .ok_or_else(|| invalid(path, "the element does not fit in the bytes"))?;
        out.push(decode(element, el, path, depth + 1)?);
        path.truncate(at);
    }
    Ok(Value::List(out))
}

fn decode(
    l: &LayoutBuf,
    bytes: &[u8],
    path: &mut String,
    depth: usize,
) -> Result<Value, InvalidField> {
    if depth > MAX_DEPTH {
        return Err(invalid(path, "nested deeper than 64 levels"));
    }
    let bytes = window(bytes, 0, l.size).ok_or_else(|| {
        invalid(
            path,
            format_args!("its size {} does not fit in the bytes", l.size),
        )
    })?;
    match &l.kind {
        KindBuf::Primitive(p) => primitive(*p, bytes, path),
        KindBuf::Bool => match bytes {
            [0] => Ok(Value::Bool(false)),
            [1] => Ok(Value::Bool(true)),
            [b] => Err(invalid(path, ValueError::InvalidBool(*b))),
            _ => Err(invalid(path, "a boolean must be 1 byte")),
        },
        KindBuf::FixedStr { capacity } => {
            let (len, rest) = bytes
                .split_first_chunk::<4>()
                .ok_or_else(|| invalid(path, "a string shorter than its length"))?;
            let len = u32::from_ne_bytes(*len);
            if u64::from(len) > *capacity || len as usize > rest.len() {
                return Err(invalid(
                    path,
                    ValueError::LengthOverCapacity {
                        len: len.into(),
                        capacity: usize::try_from(*capacity).unwrap_or(usize::MAX),
                    },
                ));
            }
            match core::str::from_utf8(&rest[..len as usize]) {
                Ok(s) => Ok(Value::Str(s.to_string())),
                Err(e) => Err(invalid(
                    path,
                    ValueError::InvalidUtf8 {
                        valid_up_to: e.valid_up_to(),
                    },
                )),
            }
        }
        KindBuf::FixedVec { capacity, element } => {
            let (len, _) = bytes
                .split_first_chunk::<8>()
                .ok_or_else(|| invalid(path, "a vector shorter than its length"))?;
            let len = u64::from_ne_bytes(*len);
            if len > *capacity {
                return Err(invalid(
                    path,
                    ValueError::LengthOverCapacity {
                        len,
                        capacity: usize::try_from(*capacity).unwrap_or(usize::MAX),
                    },
                ));
            }
            list(element, len, &bytes[8..], path, depth)
        }
        KindBuf::Array { len, element } => list(element, *len, bytes, path, depth),
        KindBuf::Struct { fields, .. } => {
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                out.push((f.name.clone(), field(f, bytes, path, depth)?));
            }
            Ok(Value::Struct(out))
        }
    }
}

/// Decodes the field `f` of the struct whose bytes are `bytes`.
fn field(
    f: &FieldBuf,
    bytes: &[u8],
    path: &mut String,
    depth: usize,
) -> Result<Value, InvalidField> {
    let at = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(&f.name);
    let b = window(bytes, f.offset, f.layout.size).ok_or_else(|| {
        invalid(
            path,
            format_args!(
                "offset {} and size {} fall outside the struct",
                f.offset, f.layout.size
            ),
        )
    })?;
    let v = decode(&f.layout, b, path, depth + 1)?;
    path.truncate(at);
    Ok(v)
}

fn primitive(p: Primitive, bytes: &[u8], path: &str) -> Result<Value, InvalidField> {
    macro_rules! read {
        ($t:ty, $variant:ident, $wide:ty) => {
            match <[u8; size_of::<$t>()]>::try_from(bytes) {
                Ok(b) => Ok(Value::$variant(<$t>::from_ne_bytes(b) as $wide)),
                Err(_) => Err(invalid(
                    path,
                    format_args!("a `{}` must be {} bytes", p.rust_name(), size_of::<$t>()),
                )),
            }
        };
    }
    match p {
        Primitive::U8 => read!(u8, Unsigned, u128),
        Primitive::U16 => read!(u16, Unsigned, u128),
        Primitive::U32 => read!(u32, Unsigned, u128),
        Primitive::U64 => read!(u64, Unsigned, u128),
        Primitive::U128 => read!(u128, Unsigned, u128),
        Primitive::I8 => read!(i8, Signed, i128),
        Primitive::I16 => read!(i16, Signed, i128),
        Primitive::I32 => read!(i32, Signed, i128),
        Primitive::I64 => read!(i64, Signed, i128),
        Primitive::I128 => read!(i128, Signed, i128),
        Primitive::F32 => read!(f32, Float, f64),
        Primitive::F64 => read!(f64, Float, f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedStr, FixedVec, SharedState, ShmBool};

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    struct Inner {
        a: i16,
        ok: ShmBool,
        _pad: [u8; 13],
        big: u128,
    }

    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    struct Outer {
        x: f32,
        label: FixedStr<4>,
        grid: [[u8; 2]; 2],
        inner: [Inner; 1],
        items: FixedVec<u16, 3>,
        _pad: [u8; 2],
    }

    fn sample() -> Outer {
        Outer {
            x: 1.5,
            label: FixedStr::try_from("hé").unwrap(),
            grid: [[1, 2], [3, 4]],
            inner: [Inner {
                a: -7,
                ok: ShmBool::TRUE,
                _pad: [0; 13],
                big: u128::MAX - 1,
            }],
            items: FixedVec::from_slice(&[9, 8]).unwrap(),
            _pad: [0; 2],
        }
    }

    fn bytes_of(v: &Outer) -> Vec<u8> {
        // SAFETY: `v` is a live `Outer` of `size_of::<Outer>()` bytes; `Outer: SharedState`
        // proves it has no padding, so every byte is initialized.
        unsafe { core::slice::from_raw_parts((v as *const Outer).cast::<u8>(), size_of::<Outer>()) }
            .to_vec()
    }

    #[test]
    fn every_kind_decodes_by_its_layout() {
        let l = LayoutBuf::from(Outer::LAYOUT);
        let v = l.decode_value(&bytes_of(&sample())).unwrap();
        let Value::Struct(fields) = v else {
            panic!("not a struct")
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("x"), Value::Float(1.5));
        assert_eq!(get("label"), Value::Str("hé".into()));
        let u = |n| Value::Unsigned(n);
        assert_eq!(
            get("grid"),
            Value::List(vec![
                Value::List(vec![u(1), u(2)]),
                Value::List(vec![u(3), u(4)])
            ])
        );
        assert_eq!(get("items"), Value::List(vec![u(9), u(8)]));
        let Value::List(inner) = get("inner") else {
            panic!()
        };
        let Value::Struct(inner) = &inner[0] else {
            panic!()
        };
        assert_eq!(inner[0], ("a".into(), Value::Signed(-7)));
        assert_eq!(inner[1], ("ok".into(), Value::Bool(true)));
        assert_eq!(inner[3], ("big".into(), Value::Unsigned(u128::MAX - 1)));
    }

    #[test]
    fn invalid_helper_bytes_name_the_field() {
        let l = LayoutBuf::from(Outer::LAYOUT);
        let ok = bytes_of(&sample());
        let off = |n: &str| l.fields().iter().find(|f| f.name == n).unwrap().offset as usize;
        let mut b = ok.clone();
        b[off("inner") + 2] = 7;
        let e = l.decode_value(&b).unwrap_err();
        assert_eq!(e.field, "inner[0].ok");
        assert!(e.to_string().contains("boolean byte is 7"), "{e}");
        let mut b = ok.clone();
        b[off("label")] = 5;
        assert_eq!(l.decode_value(&b).unwrap_err().field, "label");
        let mut b = ok.clone();
        b[off("label") + 4] = 0xff;
        assert!(l.decode_value(&b).unwrap_err().reason.contains("utf-8"));
        let mut b = ok;
        b[off("items")] = 4;
        assert_eq!(l.decode_value(&b).unwrap_err().field, "items");
    }

    #[test]
    fn hostile_layouts_are_errors_not_panics() {
        let l = LayoutBuf::from(Outer::LAYOUT);
        let b = bytes_of(&sample());
        assert_eq!(l.decode_value(&b[..10]).unwrap_err().field, "(root)");
        let mut bad = l.clone();
        if let KindBuf::Struct { fields, .. } = &mut bad.kind {
            fields[1].offset = u64::MAX - 2;
        }
        assert_eq!(bad.decode_value(&b).unwrap_err().field, "label");
        let huge = LayoutBuf {
            size: 8,
            align: 8,
            kind: KindBuf::Array {
                len: u64::MAX,
                element: Box::new(LayoutBuf {
                    size: 0,
                    align: 1,
                    kind: KindBuf::Primitive(Primitive::U8),
                }),
            },
        };
        assert!(huge.decode_value(&b).is_err());
    }
}
