//! `shm_state`, the Python module: opens any shared-state segment or stream and decodes it by the layout
//! the segment stores, reads into the ctypes structures `shm_core::export::python` generates,
//! waits for updates and writes segments that Rust, C and C++ programs read.
//!
//! Python has no atomic loads, so it never touches the shared mapping: every read is a
//! consistent snapshot the Rust runtime copies out with its own seqlock protocol, into memory
//! Python owns: a new object, a buffer native code decodes, or the caller's own buffer
//! (`read_into`, through the buffer protocol).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod buffer;
mod convert;
mod info;
mod reader;
mod stream;
mod waitset;
mod writer;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use shm_core::{Error, LayoutBuf};

create_exception!(
    shm_state,
    ShmError,
    PyException,
    "A shared-segment operation failed; the message is the Rust runtime's."
);
create_exception!(
    shm_state,
    NotFoundError,
    ShmError,
    "No segment has this name."
);
create_exception!(
    shm_state,
    AlreadyExistsError,
    ShmError,
    "A segment with this name exists already."
);
create_exception!(
    shm_state,
    LayoutMismatchError,
    ShmError,
    "The segment holds another type; the message names the first differing field."
);
create_exception!(
    shm_state,
    WriterBusyError,
    ShmError,
    "Another live process holds the segment's writer lease."
);
create_exception!(
    shm_state,
    WriterDiedError,
    ShmError,
    "The writer died mid-write and no consistent value is available."
);
create_exception!(
    shm_state,
    ShmTimeoutError,
    ShmError,
    "A read or a wait for an update timed out."
);
create_exception!(
    shm_state,
    LaggedError,
    ShmError,
    "A stream reader fell behind: its `missed` attribute is the exact number of messages the writer overwrote before it got to them; the next receive returns the oldest message still there."
);
create_exception!(
    shm_state,
    InvalidFieldError,
    PyValueError,
    "A field holds bytes that are not a valid value (names the field), or a value does not fit its field."
);

/// The Python exception for a runtime error.
pub(crate) fn to_py(e: Error) -> PyErr {
    let message = match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    match e {
        Error::NotFound { .. } => NotFoundError::new_err(message),
        Error::AlreadyExists { .. } => AlreadyExistsError::new_err(message),
        Error::LayoutMismatch { .. } => LayoutMismatchError::new_err(message),
        Error::WriterBusy { .. } => WriterBusyError::new_err(message),
        Error::WriterDied => WriterDiedError::new_err(message),
        Error::Timeout => ShmTimeoutError::new_err(message),
        Error::InvalidValue(_) => InvalidFieldError::new_err(message),
        _ => ShmError::new_err(message),
    }
}

/// How the segment's layout (`found`, of hash `found_hash`) relates to `expected`, by the rule
/// of "Compatibility" in docs/segment-format.md: equal hashes, or two versions of one
/// `#[shm(appendable)]` type. Otherwise a `LayoutMismatch` error worded as the Rust readers
/// word it.
pub(crate) fn check_layout(
    found: &LayoutBuf,
    found_hash: u64,
    expected: &LayoutBuf,
) -> PyResult<shm_core::Compat> {
    let hash = expected.layout_hash();
    if found_hash == hash {
        return Ok(shm_core::Compat::Exact);
    }
    let first_difference = if found.layout_hash() == hash {
        "the stored layout matches this program's but the layout hash does not (corrupt header)"
            .to_string()
    } else {
        match found.compatibility(expected) {
            Ok(compat) => return Ok(compat),
            Err(why) => why,
        }
    };
    Err(to_py(Error::LayoutMismatch {
        expected: hash,
        found: found_hash,
        first_difference,
    }))
}

/// Removes the named segment; processes that have it open keep using it.
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    shm_core::remove(name).map_err(to_py)
}

/// The names of the lanes of the multi-producer stream or queue `name`, lane 0 first: each an
/// ordinary stream or queue segment that `StreamReader` reads.
#[pyfunction]
fn lanes(name: &str) -> PyResult<Vec<String>> {
    shm_core::Options::new()
        .lanes_info(name)
        .map(|l| l.lane_names())
        .map_err(to_py)
}

/// The layout hash of a layout given as `Reader` and `Writer` take it (descriptor bytes,
/// JSON text, or a generated module).
#[pyfunction]
fn layout_hash(layout: &Bound<'_, PyAny>) -> PyResult<u64> {
    Ok(convert::layout_arg(layout)?.layout_hash())
}

/// The Python module `shm_state`.
#[pymodule]
fn shm_state(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<reader::Reader>()?;
    m.add_class::<writer::Writer>()?;
    m.add_class::<stream::StreamReader>()?;
    m.add_class::<info::SegmentInfo>()?;
    m.add_class::<info::WriterInfo>()?;
    m.add_class::<waitset::WaitSet>()?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(lanes, m)?)?;
    m.add_function(wrap_pyfunction!(layout_hash, m)?)?;
    m.add("ShmError", py.get_type::<ShmError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("AlreadyExistsError", py.get_type::<AlreadyExistsError>())?;
    m.add("LayoutMismatchError", py.get_type::<LayoutMismatchError>())?;
    m.add("WriterBusyError", py.get_type::<WriterBusyError>())?;
    m.add("WriterDiedError", py.get_type::<WriterDiedError>())?;
    m.add("ShmTimeoutError", py.get_type::<ShmTimeoutError>())?;
    m.add("InvalidFieldError", py.get_type::<InvalidFieldError>())?;
    m.add("LaggedError", py.get_type::<LaggedError>())?;
    m.add("FORMAT_VERSION", shm_core::FORMAT_VERSION)?;
    waitset::add_aio(m)?;
    Ok(())
}
