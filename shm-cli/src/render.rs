//! Presentation of a payload that `shm_core` decoded ([`Value`]): as JSON, on one line, as
//! rows by field path; and of the layout as a table.
//!
//! The layout comes from another process and only its encoding was validated: the decoder in
//! `shm_core` bounds-checks every access and caps the number of values, and the layout table
//! here caps its rows, so a hostile layout gives invalid values, never a panic or an endless
//! loop.

use crate::json::Json;
use shm_core::layout::{FieldBuf, KindBuf, LayoutBuf, Primitive, Value};
use std::fmt::Write;

/// Most rows of a layout table; a layout describing more is cut short.
const MAX_ROWS: usize = 1 << 20;

/// The value as JSON: numbers as numbers (128-bit integers as decimal strings, NaN and
/// infinities as strings), `ShmBool` as a boolean, `FixedStr` as a string, arrays and
/// `FixedVec`s as arrays, structs as objects; invalid bytes as `{"invalid": "why"}`.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Unsigned(v, Primitive::U128) => Json::Str(v.to_string()),
        Value::Unsigned(v, _) => Json::UInt(*v),
        Value::Signed(v, Primitive::I128) => Json::Str(v.to_string()),
        Value::Signed(v, _) => Json::Int(*v),
        Value::F32(f) => Json::Float32(*f),
        Value::F64(f) => Json::Float(*f),
        Value::Bool(b) => Json::Bool(*b),
        Value::Str(s) => Json::Str(s.clone()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| (name.clone(), to_json(v)))
                .collect(),
        ),
        Value::Invalid { reason } => Json::object().with("invalid", reason.as_str()),
        _ => Json::object().with("invalid", UNKNOWN_KIND),
    }
}

/// What a value of a kind this version does not know is shown as.
const UNKNOWN_KIND: &str = "a value kind this version of shm does not know";

/// The value on one line, as Rust would print it: `3`, `1.5`, `"text"`, `true`,
/// `[1, 2]`, `{ x: 1, y: 2 }`, `invalid(why)`.
pub fn inline(value: &Value) -> String {
    let mut out = String::new();
    write_inline(value, &mut out);
    out
}

fn write_inline(value: &Value, out: &mut String) {
    // Writing into a `String` cannot fail.
    let _ = match value {
        Value::Unsigned(v, _) => write!(out, "{v}"),
        Value::Signed(v, _) => write!(out, "{v}"),
        Value::F32(f) => write!(out, "{f:?}"),
        Value::F64(f) => write!(out, "{f:?}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Str(s) => write!(out, "{s:?}"),
        Value::Invalid { reason } => write!(out, "invalid({reason})"),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_inline(item, out);
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
                write_inline(v, out);
            }
            out.push_str(" }");
            Ok(())
        }
        _ => write!(out, "invalid({UNKNOWN_KIND})"),
    };
}

/// Whether the value is, or contains, invalid bytes (or a kind this version does not know).
pub fn contains_invalid(value: &Value) -> bool {
    match value {
        Value::List(items) => items.iter().any(contains_invalid),
        Value::Struct(fields) => fields.iter().any(|(_, v)| contains_invalid(v)),
        Value::Unsigned(..)
        | Value::Signed(..)
        | Value::F32(_)
        | Value::F64(_)
        | Value::Bool(_)
        | Value::Str(_) => false,
        _ => true,
    }
}

/// The value as `(path, value)` rows: struct fields (recursively, `a.b`) and elements of
/// arrays or vectors of structs (`a[2].b`) get rows of their own; other arrays and vectors
/// stay whole on one row. The root's path is empty.
pub fn rows(value: &Value) -> Vec<(String, &Value)> {
    let mut rows = Vec::new();
    collect_rows(value, String::new(), &mut rows);
    rows
}

fn collect_rows<'a>(value: &'a Value, path: String, rows: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Struct(fields) => {
            for (name, v) in fields {
                let p = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                collect_rows(v, p, rows);
            }
        }
        Value::List(items) if items.iter().any(|v| matches!(v, Value::Struct(_))) => {
            for (i, v) in items.iter().enumerate() {
                collect_rows(v, format!("{path}[{i}]"), rows);
            }
        }
        _ => rows.push((path, value)),
    }
}

/// The part of `value` at `path` (`a.b`, `a[2].b`, `a[1]`), if there is one.
pub fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = value;
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
    /// The field's markers in an `#[shm(appendable)]` struct: `deprecated`, `alias of
    /// "old"`; empty otherwise.
    pub notes: String,
}

/// Every field of `layout`, depth first: each struct field gets a row, then its own fields.
/// Fields of struct elements of arrays and vectors are listed once, for element 0 (`a[0].b`).
pub fn layout_rows(layout: &LayoutBuf) -> Vec<LayoutRow> {
    let mut rows = Vec::new();
    collect_layout_rows(layout, "", 0, &mut rows, 0);
    rows
}

/// A field's markers as the NOTES column shows them: `appendable` for a nested appendable
/// struct, `deprecated`, `alias of "old"`.
fn notes(alias: Option<&str>, deprecated: bool, field: &LayoutBuf) -> String {
    let mut notes = Vec::new();
    if field.is_appendable() {
        notes.push("appendable".to_string());
    }
    if deprecated {
        notes.push("deprecated".to_string());
    }
    if let Some(a) = alias {
        notes.push(format!("alias of {a:?}"));
    }
    notes.join(", ")
}

fn collect_layout_rows(
    layout: &LayoutBuf,
    path: &str,
    base: u64,
    rows: &mut Vec<LayoutRow>,
    depth: usize,
) {
    // Decoded layouts nest at most 32 levels; this bound only keeps a bug from recursing away.
    if depth > 64 || rows.len() > MAX_ROWS {
        return;
    }
    for f in layout.fields() {
        let FieldBuf {
            name,
            offset,
            layout: field,
            alias,
            deprecated,
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
            notes: notes(alias.as_deref(), *deprecated, field),
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

    #[test]
    fn paths_select_nested_fields_and_elements() {
        let v = Value::Struct(vec![(
            "a".into(),
            Value::List(vec![Value::Struct(vec![("b".into(), Value::Bool(true))])]),
        )]);
        assert_eq!(get(&v, "a[0].b"), Some(&Value::Bool(true)));
        assert_eq!(get(&v, "a[1].b"), None);
        assert_eq!(get(&v, "a..b"), None);
        let rows: Vec<String> = rows(&v).into_iter().map(|(p, _)| p).collect();
        assert_eq!(rows, ["a[0].b"]);
    }

    #[test]
    fn wide_integers_are_json_strings_and_floats_keep_their_width() {
        let v = Value::Struct(vec![
            ("big".into(), Value::Unsigned(u128::MAX, Primitive::U128)),
            ("small".into(), Value::Unsigned(7, Primitive::U64)),
            ("neg".into(), Value::Signed(-1, Primitive::I128)),
            ("f".into(), Value::F32(0.1)),
            ("d".into(), Value::F64(0.1)),
            (
                "bad".into(),
                Value::Invalid {
                    reason: "why".into(),
                },
            ),
        ]);
        assert_eq!(
            to_json(&v).compact(),
            r#"{"big":"340282366920938463463374607431768211455","small":7,"neg":"-1","f":0.1,"d":0.1,"bad":{"invalid":"why"}}"#
        );
        assert_eq!(
            inline(&v),
            "{ big: 340282366920938463463374607431768211455, small: 7, neg: -1, f: 0.1, d: 0.1, bad: invalid(why) }"
        );
        assert!(contains_invalid(&v));
        assert!(!contains_invalid(&Value::List(vec![Value::Bool(true)])));
    }
}
