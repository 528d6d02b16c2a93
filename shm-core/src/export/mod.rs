//! Declarations of a shareable type for other languages, generated from its Rust [`Layout`].
//!
//! The Rust type is the one source of truth: [`c_header`] gives C11/C++17 declarations checked by
//! static assertions, [`python`] a `ctypes` module (and a `numpy` dtype where numpy imports),
//! and [`json`] the descriptor under the versioned schema `docs/layout.schema.json`. Each is
//! built only from [`SharedState::LAYOUT`] and [`SharedState::LAYOUT_HASH`], so a program in
//! another language that uses them agrees with the Rust program byte for byte, or fails to
//! compile or import. [`write_all`] writes the three files, for a build script or a small
//! command.
//!
//! ```
//! use shm_core::SharedState;
//!
//! #[derive(SharedState, Clone, Copy)]
//! #[repr(C)]
//! pub struct Pose {
//!     pub x: f64,
//!     pub y: f64,
//! }
//!
//! let h = shm_core::export::c_header::<Pose>();
//! assert!(h.contains("typedef struct Pose {"));
//! assert!(h.contains("#define POSE_LAYOUT_HASH UINT64_C(0x"));
//! ```

mod c;
mod json;
mod python;

use crate::layout::{Kind, Layout};
use crate::SharedState;
use std::io;
use std::path::Path;

/// The C11 and C++17 header declaring `T` and every type it contains, with static assertions
/// on every size, alignment and field offset, and the macros `<NAME>_LAYOUT_HASH`,
/// `<NAME>_STABLE_NAME`, `<NAME>_SIZE`, `<NAME>_ALIGN`, `<NAME>_DESCRIPTOR_LEN`,
/// `<NAME>_DESCRIPTOR_BYTES` and `<NAME>_DESCRIPTOR` (the stored descriptor's bytes) that
/// `include/shm_state.h` checks a segment against. Under C++ it also specialises
/// `shm::layout_of<T>` for `include/shm_state.hpp`.
///
/// `NAME` is the type's name (its `#[shm(name)]` if given, else the Rust name) in upper snake
/// case: `RobotPose` gives `ROBOT_POSE_LAYOUT_HASH`.
///
/// # Panics
/// If `T` is not a struct (an array or primitive payload has no name to declare).
pub fn c_header<T: SharedState>() -> String {
    c::header(T::LAYOUT, T::LAYOUT_HASH, &descriptor_bytes(T::LAYOUT))
}

/// A Python module declaring `T` and every struct it contains as `ctypes.Structure`s that
/// assert their size and every field offset at import, the constants `LAYOUT_HASH`,
/// `STABLE_NAME`, `SIZE`, `ALIGN` and `DESCRIPTOR`, and, where numpy imports, an equivalent
/// structured `numpy.dtype` per struct (`<Name>_dtype`).
///
/// # Panics
/// If `T` is not a struct.
pub fn python<T: SharedState>() -> String {
    python::module(T::LAYOUT, T::LAYOUT_HASH, &descriptor_bytes(T::LAYOUT))
}

/// The descriptor of `T` as JSON, under the schema `shm-state/layout` version 1
/// (`docs/layout.schema.json`, described in `docs/languages.md`).
pub fn json<T: SharedState>() -> String {
    json::document(T::LAYOUT, T::LAYOUT_HASH, &descriptor_bytes(T::LAYOUT))
}

/// Writes [`c_header`], [`python`] and [`json`] of `T` to `dir/<basename>.h`,
/// `dir/<basename>.py` and `dir/<basename>.json`, creating `dir` if needed.
pub fn write_all<T: SharedState>(dir: impl AsRef<Path>, basename: &str) -> io::Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{basename}.h")), c_header::<T>())?;
    std::fs::write(dir.join(format!("{basename}.py")), python::<T>())?;
    std::fs::write(dir.join(format!("{basename}.json")), json::<T>())?;
    Ok(())
}

/// The descriptor's encoding as stored in segments: the only place the exports reach the
/// owned descriptor type.
fn descriptor_bytes(layout: &'static Layout) -> Vec<u8> {
    crate::LayoutBuf::from(layout).encode()
}

/// A type the exports declare by name: a struct, or a `FixedStr`/`FixedVec` instance.
struct Named {
    layout: &'static Layout,
    name: String,
}

/// Every named type reachable from `root`, each once, dependencies first, `root` last.
///
/// Two different structs with the same name (two versions of `Inner` in one type) get
/// distinct names: the second is `Inner_2`, and so on.
fn named_types(root: &'static Layout) -> Vec<Named> {
    let mut out = Vec::new();
    collect(root, &mut out);
    out
}

fn collect(l: &'static Layout, out: &mut Vec<Named>) {
    if out.iter().any(|n| n.layout == l) {
        return;
    }
    match l.kind {
        Kind::Struct { fields, .. } => {
            for f in fields {
                collect(f.layout, out);
            }
        }
        Kind::Array { element, .. } => {
            collect(element, out);
            return;
        }
        Kind::FixedVec { element, .. } => collect(element, out),
        Kind::FixedStr { .. } => {}
        _ => return,
    }
    let base = match l.kind {
        Kind::Struct { .. } => identifier(l.struct_name().unwrap_or("Struct")),
        Kind::FixedStr { capacity } => format!("ShmFixedStr{capacity}"),
        Kind::FixedVec { capacity, element } => {
            format!("ShmFixedVec_{}_{capacity}", fragment(element, out))
        }
        _ => unreachable!("only structs and helper types are named"),
    };
    let mut name = base.clone();
    let mut k = 2;
    while out.iter().any(|n| n.name == name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    out.push(Named { layout: l, name });
}

/// A name fragment for an element type, used to name `FixedVec` instances.
fn fragment(l: &'static Layout, named: &[Named]) -> String {
    match l.kind {
        Kind::Primitive(p) => p.rust_name().to_string(),
        Kind::Array { len, element } => format!("{}x{len}", fragment(element, named)),
        Kind::Bool => "bool".to_string(),
        _ => name_of(l, named).to_string(),
    }
}

/// The name [`named_types`] gave `l`.
fn name_of<'a>(l: &Layout, named: &'a [Named]) -> &'a str {
    named
        .iter()
        .find(|n| n.layout == l)
        .map(|n| n.name.as_str())
        .expect("every named type was collected")
}

/// `s` as a C and Python identifier: characters other than ASCII letters, digits and `_` become
/// `_`, and a leading digit gets a `_` before it.
fn identifier(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The name of the root struct, as exports use it.
///
/// # Panics
/// If `l` is not a struct.
fn root_name(l: &'static Layout, named: &[Named]) -> String {
    assert!(
        matches!(l.kind, Kind::Struct { .. }),
        "exports declare structs; wrap a `{l}` payload in a `#[derive(SharedState)]` struct"
    );
    name_of(l, named).to_string()
}

/// `RobotPose` -> `ROBOT_POSE`: the prefix of the generated macros.
fn upper_snake(name: &str) -> String {
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
fn quoted(s: &str) -> String {
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
}
