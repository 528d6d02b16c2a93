//! Declarations of a shareable type for other languages, generated from its layout.
//!
//! The Rust type is the one source of truth: [`c_header`] gives C11/C++17 declarations checked by
//! static assertions, [`python`] a `ctypes` module (and a `numpy` dtype where numpy imports),
//! and [`json`] the descriptor under the versioned schema `docs/layout.schema.json`. Each is
//! built only from the type's layout, so a program in another language that uses them agrees
//! with the Rust program byte for byte, or fails to compile or import. [`write_all`] writes
//! the three files, for a build script or a small command.
//!
//! [`c_header_of`], [`python_of`] and [`json_of`] generate the same text from a [`LayoutBuf`],
//! such as the one a segment stores ([`RawReader::layout`](crate::RawReader::layout)), for a
//! program that has the segment but not the Rust type. A stored layout is only as trustworthy
//! as the process that wrote it, so they first check that it is one the derive could have
//! produced (see [`c_header_of`]) and refuse it otherwise, rather than emit text that does not
//! compile or import.
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
//! let stored = shm_core::LayoutBuf::from(Pose::LAYOUT);
//! assert_eq!(shm_core::export::c_header_of(&stored).unwrap(), h);
//! ```

mod c;
mod json;
mod names;
mod python;
mod valid;

use crate::layout::LayoutBuf;
use crate::{Error, SharedState};
use names::{name_of, named_types, quoted, root_name, upper_snake, Named};
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
    c::header(&LayoutBuf::from(T::LAYOUT))
}

/// [`c_header`] from a layout rather than a Rust type: the same text for
/// `LayoutBuf::from(T::LAYOUT)`.
///
/// Fails with [`Error::InvalidLayout`], saying what is wrong, unless the layout is one the
/// derive could have produced on this machine: it passes [`LayoutBuf::check`]; its root is a
/// struct; every struct has fields, and they cover it with no padding between or after them;
/// struct names, stable names and field names are ASCII identifiers, unique within their
/// struct; primitives have this machine's alignment; nesting is at most 64 levels deep.
pub fn c_header_of(layout: &LayoutBuf) -> Result<String, Error> {
    valid::exportable(layout)?;
    Ok(c::header(layout))
}

/// A Python module declaring `T` and every struct it contains as `ctypes.Structure`s that
/// assert their size and every field offset at import, the constants `LAYOUT_HASH`,
/// `STABLE_NAME`, `SIZE`, `ALIGN` and `DESCRIPTOR`, and, where numpy imports, an equivalent
/// structured `numpy.dtype` per struct (`<Name>_dtype`).
///
/// # Panics
/// If `T` is not a struct.
pub fn python<T: SharedState>() -> String {
    python::module(&LayoutBuf::from(T::LAYOUT))
}

/// [`python`] from a layout rather than a Rust type; refuses the layouts [`c_header_of`]
/// refuses, with the same error.
pub fn python_of(layout: &LayoutBuf) -> Result<String, Error> {
    valid::exportable(layout)?;
    Ok(python::module(layout))
}

/// The descriptor of `T` as JSON, under the schema `shm-state/layout` version 1
/// (`docs/layout.schema.json`, described in `docs/languages.md`).
pub fn json<T: SharedState>() -> String {
    json::document(&LayoutBuf::from(T::LAYOUT))
}

/// [`json`] from a layout rather than a Rust type; refuses the layouts [`c_header_of`]
/// refuses, with the same error, so that the three exports of a layout exist together or not
/// at all.
pub fn json_of(layout: &LayoutBuf) -> Result<String, Error> {
    valid::exportable(layout)?;
    Ok(json::document(layout))
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
