//! A small JSON value that keeps object keys in insertion order, and its writer.
//!
//! Written by hand rather than with a serializer so that struct fields come out in declaration
//! order and 128-bit integers stay exact, with no dependency.

use std::fmt::{self, Write};

/// A JSON value. Objects keep their keys in the order they were added.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// An integer, written exactly.
    Int(i128),
    /// An unsigned integer, written exactly.
    UInt(u128),
    /// A float (non-finite floats are written as the strings `"NaN"`, `"inf"`, `"-inf"`).
    Float(f64),
    /// A single-precision float, written with the shortest digits that read back as the same
    /// `f32`.
    Float32(f32),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn object() -> Json {
        Json::Object(Vec::new())
    }

    /// Adds `key: value` to an object (does nothing on other values), and returns it.
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        if let Json::Object(fields) = &mut self {
            fields.push((key.to_string(), value.into()));
        }
        self
    }

    /// Adds `key: value` to an object (does nothing on other values).
    pub fn push(&mut self, key: &str, value: impl Into<Json>) {
        if let Json::Object(fields) = self {
            fields.push((key.to_string(), value.into()));
        }
    }

    /// The value as compact JSON on one line.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// The value as JSON indented by two spaces per level.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(2), 0);
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>, level: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => push_fmt(out, format_args!("{i}")),
            Json::UInt(u) => push_fmt(out, format_args!("{u}")),
            Json::Float(f) => write_float(out, *f, format_args!("{f:?}")),
            Json::Float32(f) => write_float(out, f64::from(*f), format_args!("{f:?}")),
            Json::Str(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent, level + 1);
                    item.write(out, indent, level + 1);
                }
                if !items.is_empty() {
                    newline(out, indent, level);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent, level + 1);
                    write_string(out, key);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    value.write(out, indent, level + 1);
                }
                if !fields.is_empty() {
                    newline(out, indent, level);
                }
                out.push('}');
            }
        }
    }
}

fn push_fmt(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing into a `String` cannot fail.
    let _ = out.write_fmt(args);
}

fn newline(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(step) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', step * level));
    }
}

/// Writes a float: `shortest` (its `{:?}` form, the shortest digits that read back to the same
/// value, always valid JSON for finite values: `1.0`, `0.1`, `1e16`), or a string for NaN and
/// infinities, which JSON has no numbers for.
fn write_float(out: &mut String, f: f64, shortest: fmt::Arguments<'_>) {
    if f.is_nan() {
        out.push_str("\"NaN\"");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "\"inf\"" } else { "\"-inf\"" });
    } else {
        push_fmt(out, shortest);
    }
}

/// Writes `s` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                push_fmt(out, format_args!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

macro_rules! json_from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(v: $t) -> Json {
                Json::UInt(v.into())
            }
        }
    )*};
}
json_from_unsigned!(u8, u16, u32, u64);

impl From<usize> for Json {
    fn from(v: usize) -> Json {
        Json::UInt(v as u128)
    }
}

impl From<i64> for Json {
    fn from(v: i64) -> Json {
        Json::Int(v.into())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Json {
        v.map_or(Json::Null, Into::into)
    }
}

impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Json {
        Json::Array(v)
    }
}

#[cfg(test)]
mod tests {
    use super::Json;

    #[test]
    fn objects_keep_key_order_and_strings_are_escaped() {
        let j = Json::object()
            .with("z", 1u32)
            .with("a", "q\"\n\u{1}")
            .with("f", Json::Float(2.0))
            .with("n", Json::Float(f64::NAN))
            .with("big", Json::UInt(u128::MAX));
        assert_eq!(
            j.compact(),
            r#"{"z":1,"a":"q\"\n\u0001","f":2.0,"n":"NaN","big":340282366920938463463374607431768211455}"#
        );
    }

    #[test]
    fn pretty_output_indents_by_two() {
        let j = Json::object().with("a", Json::Array(vec![Json::Null]));
        assert_eq!(j.pretty(), "{\n  \"a\": [\n    null\n  ]\n}");
    }
}
