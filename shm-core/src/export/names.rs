//! The names exports give types, and the spellings they share between C and Python.

use crate::layout::{KindBuf, LayoutBuf};

/// C and C++ keywords that are valid Rust names. A field named so gets a trailing `_` in C;
/// a type named so gets a numbered name (`int_2`); see [`c_reserved`].
pub(super) const C_KEYWORDS: &[&str] = &[
    "auto",
    "case",
    "catch",
    "char",
    "class",
    "default",
    "delete",
    "double",
    "explicit",
    "float",
    "friend",
    "goto",
    "inline",
    "int",
    "long",
    "namespace",
    "new",
    "operator",
    "private",
    "protected",
    "public",
    "register",
    "restrict",
    "short",
    "signed",
    "sizeof",
    "switch",
    "template",
    "this",
    "throw",
    "typedef",
    "typename",
    "union",
    "unsigned",
    "using",
    "virtual",
    "void",
    "volatile",
    "bool",
    "signed",
    "export",
    "noexcept",
    "nullptr",
    "alignas",
    "alignof",
    "decltype",
    "mutable",
    "typeid",
    "and",
    "or",
    "not",
    "xor",
];

/// Macros of the headers the C header includes, and of GNU C, that are valid Rust names and
/// not upper case with a `_` (those are all taken, see [`c_reserved`]).
const C_MACROS: &[&str] = &["NULL", "offsetof", "linux", "unix", "i386"];

/// Whether `name`, its trailing `_`s aside, already means something to a C or C++ compiler
/// reading the header: a keyword, a macro of `<stdint.h>`, `<stddef.h>` or GNU C, or a
/// macro-shaped name (upper case with a `_`: `INT8_MAX`, `UINT64_C`, the header's own
/// `SHM_ALIGNAS` and `POSE_SIZE`). Testing the name without its trailing `_`s keeps renaming
/// by appending `_` one-to-one.
pub(super) fn c_reserved(name: &str) -> bool {
    let s = name.trim_end_matches('_');
    C_KEYWORDS.contains(&s)
        || C_MACROS.contains(&s)
        || (s.contains('_')
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
}

/// Names a type cannot take because the generated files already use them: Python keywords
/// that are valid Rust names, and what the C prelude and the Python module declare.
const TAKEN: &[&str] = &[
    "False",
    "None",
    "True",
    "assert",
    "def",
    "del",
    "elif",
    "except",
    "finally",
    "from",
    "global",
    "import",
    "is",
    "lambda",
    "nonlocal",
    "pass",
    "raise",
    "with",
    "yield",
    "ShmBool",
    "int8_t",
    "int16_t",
    "int32_t",
    "int64_t",
    "uint8_t",
    "uint16_t",
    "uint32_t",
    "uint64_t",
    "size_t",
    "ptrdiff_t",
    "ctypes",
    "sys",
    "int128",
    "LAYOUT_HASH",
    "STABLE_NAME",
    "SIZE",
    "ALIGN",
    "DESCRIPTOR",
    "_check",
    "_FixedStr",
    "_FixedVec",
    "_np",
];

/// A type the exports declare by name: a struct, or a `FixedStr`/`FixedVec` instance.
pub(super) struct Named<'a> {
    /// Its layout.
    pub layout: &'a LayoutBuf,
    /// Its name in C and Python.
    pub name: String,
}

/// Every named type reachable from `root`, each once, dependencies first, `root` last.
///
/// Two different structs with the same name (two versions of `Inner` in one type) get
/// distinct names: the second is `Inner_2`, and so on; so does a struct whose name the
/// generated files already use (a C keyword or macro, `ShmBool`, `ctypes`, ...).
pub(super) fn named_types(root: &LayoutBuf) -> Vec<Named<'_>> {
    let mut out = Vec::new();
    collect(root, &mut out);
    out
}

fn collect<'a>(l: &'a LayoutBuf, out: &mut Vec<Named<'a>>) {
    if out.iter().any(|n| n.layout == l) {
        return;
    }
    match &l.kind {
        KindBuf::Struct { fields, .. } => {
            for f in fields {
                collect(&f.layout, out);
            }
        }
        KindBuf::Array { element, .. } => {
            collect(element, out);
            return;
        }
        KindBuf::FixedVec { element, .. } => collect(element, out),
        KindBuf::FixedStr { .. } => {}
        _ => return,
    }
    let base = match &l.kind {
        KindBuf::Struct { .. } => identifier(l.struct_name().unwrap_or("Struct")),
        KindBuf::FixedStr { capacity } => format!("ShmFixedStr{capacity}"),
        KindBuf::FixedVec { capacity, element } => {
            format!("ShmFixedVec_{}_{capacity}", fragment(element, out))
        }
        _ => unreachable!("only structs and helper types are named"),
    };
    // Numbered names (`int_2`) are never keywords or macros, however they look.
    let taken = |name: &str| {
        out.iter().any(|n| n.name == name)
            || (name == base && (c_reserved(name) || TAKEN.contains(&name)))
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    out.push(Named { layout: l, name });
}

/// A name fragment for an element type, used to name `FixedVec` instances.
fn fragment(l: &LayoutBuf, named: &[Named]) -> String {
    match &l.kind {
        KindBuf::Primitive(p) => p.rust_name().to_string(),
        KindBuf::Array { len, element } => format!("{}x{len}", fragment(element, named)),
        KindBuf::Bool => "bool".to_string(),
        _ => name_of(l, named).to_string(),
    }
}

/// The name [`named_types`] gave `l`.
pub(super) fn name_of<'a>(l: &LayoutBuf, named: &'a [Named]) -> &'a str {
    named
        .iter()
        .find(|n| n.layout == l)
        .map(|n| n.name.as_str())
        .expect("every named type was collected")
}

/// `s` as a C and Python identifier: characters other than ASCII letters, digits and `_` become
/// `_`, and a leading digit gets a `_` before it.
pub(super) fn identifier(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Whether `s` is an ASCII identifier: a letter or `_`, then letters, digits and `_`, and not
/// `_` alone.
pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars.next();
    first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s != "_"
}

/// The name of the root struct, as exports use it.
///
/// # Panics
/// If `l` is not a struct.
pub(super) fn root_name(l: &LayoutBuf, named: &[Named]) -> String {
    assert!(
        matches!(l.kind, KindBuf::Struct { .. }),
        "exports declare structs; wrap a `{l}` payload in a `#[derive(SharedState)]` struct"
    );
    name_of(l, named).to_string()
}

/// `RobotPose` -> `ROBOT_POSE`: the prefix of the generated macros.
pub(super) fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `s` as a double-quoted C and Python string literal: printable ASCII as is, quotes and
/// backslashes escaped, every other byte as a three-digit octal escape (valid in both).
pub(super) fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_snake_splits_words() {
        assert_eq!(upper_snake("RobotPose"), "ROBOT_POSE");
        assert_eq!(upper_snake("Telemetry"), "TELEMETRY");
        assert_eq!(upper_snake("Pose3d"), "POSE3D");
        assert_eq!(upper_snake("ABC"), "ABC");
    }

    #[test]
    fn identifiers_are_sanitized() {
        assert_eq!(identifier("a.b"), "a_b");
        assert_eq!(identifier("3d"), "_3d");
    }

    #[test]
    fn identifiers_are_recognized() {
        for ok in ["a", "_pad", "Pose3d", "r_2"] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "_", "3d", "a.b", "a b", "a*/", "caf\u{e9}", "a\"b"] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
    }
}
