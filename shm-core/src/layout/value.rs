//! [`Value`]: payload bytes decoded by a [`LayoutBuf`], for programs that have a segment's
//! stored layout but not its Rust type (other languages' bindings, tools).
//!
//! The one decoder of payload bytes by a stored layout. It treats both the layout and the
//! bytes as hostile: every offset and size is checked against the bytes and against the
//! enclosing type, nesting is bounded, and so is the number of values decoded (a layout whose
//! fields overlap could otherwise describe exponentially many). What cannot be decoded, from
//! helper types holding invalid bytes (a [`FixedStr`](crate::FixedStr) length over its
//! capacity or not UTF-8, a [`ShmBool`](crate::ShmBool) byte other than 0 or 1, a
//! [`FixedVec`](crate::FixedVec) length over its capacity) to a field placed past the bytes,
//! becomes a [`Value::Invalid`] in place of that field, never a panic:
//! [`LayoutBuf::decode_value_lossy`] keeps the rest of the value, as a tool shows it;
//! [`LayoutBuf::decode_value`] fails naming the first invalid field, as a binding raises it.

use super::{KindBuf, LayoutBuf, Primitive};
use crate::ValueError;
use core::fmt;

/// Deepest nesting of arrays and structs the decoder follows.
const MAX_DEPTH: usize = 64;

/// Values decoded from any payload, before the allowance of two per payload byte.
const MAX_VALUES: usize = 1 << 20;

/// A payload decoded by its layout: what a [`LayoutBuf`] says the bytes mean.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// An unsigned integer (`u8` to `u128`), and which primitive holds it.
    Unsigned(u128, Primitive),
    /// A signed integer (`i8` to `i128`), and which primitive holds it.
    Signed(i128, Primitive),
    /// An `f32`.
    F32(f32),
    /// An `f64`.
    F64(f64),
    /// A [`ShmBool`](crate::ShmBool).
    Bool(bool),
    /// A [`FixedStr`](crate::FixedStr): its valid length of UTF-8.
    Str(String),
    /// An array, or the valid elements of a [`FixedVec`](crate::FixedVec).
    List(Vec<Value>),
    /// A struct: its fields in declaration order, by name.
    Struct(Vec<(String, Value)>),
    /// Bytes that are not a value of their type, or a layout that does not fit the bytes.
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
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

impl Value {
    /// The first [`Value::Invalid`] in declaration order (depth first), with its path, or
    /// `None` if the whole value is valid.
    pub fn first_invalid(&self) -> Option<InvalidField> {
        self.find_invalid(&mut String::new())
    }

    fn find_invalid(&self, path: &mut String) -> Option<InvalidField> {
        let at = path.len();
        match self {
            Value::Invalid { reason } => Some(InvalidField {
                field: if path.is_empty() {
                    "(root)".to_string()
                } else {
                    path.clone()
                },
                reason: reason.clone(),
            }),
            Value::List(items) => items.iter().enumerate().find_map(|(i, v)| {
                path.truncate(at);
                path.push_str(&format!("[{i}]"));
                v.find_invalid(path)
            }),
            Value::Struct(fields) => fields.iter().find_map(|(name, v)| {
                path.truncate(at);
                if at > 0 {
                    path.push('.');
                }
                path.push_str(name);
                v.find_invalid(path)
            }),
            _ => None,
        }
    }
}

impl LayoutBuf {
    /// Decodes the payload bytes `bytes` as this layout describes them, or fails naming the
    /// first invalid field: [`decode_value_lossy`](Self::decode_value_lossy) and
    /// [`Value::first_invalid`].
    ///
    /// `bytes` must hold at least [`size`](LayoutBuf::size) bytes.
    pub fn decode_value(&self, bytes: &[u8]) -> Result<Value, InvalidField> {
        let value = self.decode_value_lossy(bytes);
        match value.first_invalid() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// Decodes the payload bytes `bytes` as this layout describes them, each part that cannot
    /// be decoded a [`Value::Invalid`] saying why, as `String::from_utf8_lossy` marks the
    /// bytes it cannot decode: a helper type holding invalid bytes, a part the layout places
    /// past `bytes` or gives the wrong size for its kind, nesting deeper than 64 levels.
    ///
    /// At most 2<sup>20</sup> values plus two per byte of `bytes` are decoded (more than a
    /// layout whose fields do not overlap describes, unless it nests very deeply); the parts
    /// past that bound are invalid too, so that a hostile layout cannot make this allocate
    /// without bound.
    pub fn decode_value_lossy(&self, bytes: &[u8]) -> Value {
        let mut budget = MAX_VALUES.saturating_add(bytes.len().saturating_mul(2));
        decode(self, bytes, 0, &mut budget)
    }
}

/// A [`Value::Invalid`] for `reason`.
fn invalid(reason: impl fmt::Display) -> Value {
    Value::Invalid {
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
fn list(element: &LayoutBuf, count: u64, bytes: &[u8], depth: usize, budget: &mut usize) -> Value {
    if count > 0 && element.size == 0 {
        return invalid("array elements of size 0");
    }
    let total = element.size.checked_mul(count);
    if total.is_none_or(|t| t > bytes.len() as u64) {
        return invalid(format_args!("{count} elements do not fit in the bytes"));
    }
    if count > *budget as u64 {
        *budget = 0;
        return invalid(format_args!(
            "{count} elements are too many values to decode"
        ));
    }
    // `count` fits in the bytes and in the budget, so in a `usize` and in memory.
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        out.push(match window(bytes, i * element.size, element.size) {
            Some(el) => decode(element, el, depth + 1, budget),
            None => invalid("the element does not fit in the bytes"),
        });
    }
    Value::List(out)
}

fn decode(l: &LayoutBuf, bytes: &[u8], depth: usize, budget: &mut usize) -> Value {
    if *budget == 0 {
        return invalid("too many values to decode");
    }
    *budget -= 1;
    if depth > MAX_DEPTH {
        return invalid(format_args!("nested deeper than {MAX_DEPTH} levels"));
    }
    let Some(bytes) = window(bytes, 0, l.size) else {
        return invalid(format_args!(
            "its size {} does not fit in the {} bytes",
            l.size,
            bytes.len()
        ));
    };
    match &l.kind {
        KindBuf::Primitive(p) => primitive(*p, bytes),
        KindBuf::Bool => match bytes {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            [b] => invalid(ValueError::InvalidBool(*b)),
            _ => invalid("a boolean must be 1 byte"),
        },
        KindBuf::FixedStr { capacity } => fixed_str(bytes, *capacity),
        KindBuf::FixedVec { capacity, element } => {
            let Some((len, items)) = bytes.split_first_chunk::<8>() else {
                return invalid("a vector shorter than its length");
            };
            let len = u64::from_ne_bytes(*len);
            if len > *capacity {
                return invalid(ValueError::LengthOverCapacity {
                    len,
                    capacity: usize::try_from(*capacity).unwrap_or(usize::MAX),
                });
            }
            list(element, len, items, depth, budget)
        }
        KindBuf::Array { len, element } => list(element, *len, bytes, depth, budget),
        KindBuf::Struct { fields, .. } => Value::Struct(
            fields
                .iter()
                .map(|f| {
                    let v = match window(bytes, f.offset, f.layout.size) {
                        Some(b) => decode(&f.layout, b, depth + 1, budget),
                        None => invalid(format_args!(
                            "offset {} and size {} fall outside the struct",
                            f.offset, f.layout.size
                        )),
                    };
                    (f.name.clone(), v)
                })
                .collect(),
        ),
    }
}

fn fixed_str(bytes: &[u8], capacity: u64) -> Value {
    let Some((len, text)) = bytes.split_first_chunk::<4>() else {
        return invalid("a string shorter than its length");
    };
    let len = u32::from_ne_bytes(*len);
    if u64::from(len) > capacity || len as usize > text.len() {
        return invalid(ValueError::LengthOverCapacity {
            len: len.into(),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
        });
    }
    match core::str::from_utf8(&text[..len as usize]) {
        Ok(s) => Value::Str(s.to_string()),
        Err(e) => invalid(ValueError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        }),
    }
}

fn primitive(p: Primitive, bytes: &[u8]) -> Value {
    macro_rules! read {
        ($t:ty, $variant:ident, $wide:ty) => {
            match <[u8; size_of::<$t>()]>::try_from(bytes) {
                Ok(b) => Value::$variant(<$wide>::from(<$t>::from_ne_bytes(b)), p),
                Err(_) => invalid(format_args!(
                    "a `{}` must be {} bytes",
                    p.rust_name(),
                    size_of::<$t>()
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
        Primitive::F32 => match <[u8; 4]>::try_from(bytes) {
            Ok(b) => Value::F32(f32::from_ne_bytes(b)),
            Err(_) => invalid("a `f32` must be 4 bytes"),
        },
        Primitive::F64 => match <[u8; 8]>::try_from(bytes) {
            Ok(b) => Value::F64(f64::from_ne_bytes(b)),
            Err(_) => invalid("a `f64` must be 8 bytes"),
        },
    }
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
