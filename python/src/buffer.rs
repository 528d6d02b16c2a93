//! The memory of a Python object that a read fills: any object exporting a writable,
//! C-contiguous buffer (a ctypes structure, a `bytearray`, a numpy array, a `memoryview`),
//! borrowed through the buffer protocol for the duration of one call, and where releasing the
//! GIL pays.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::mem::MaybeUninit;

/// Largest copy made with the GIL held; longer ones, and every wait, release it. Releasing and
/// retaking the GIL costs about 60 ns of CPU (`python/bench.py`, BENCHMARKS.md "Python"), what
/// copying about 4 KiB costs; a 16 KiB copy takes about 250 ns. Up to this size a release
/// would add a fifth or more to the read and shorten no other thread's wait by much; past it
/// the release costs less and less of the copy, and other threads run while it copies.
pub(crate) const GIL_HELD_COPY_LIMIT: usize = 16 * 1024;

/// Calls `fill` with the bytes of `target`'s buffer, which must be writable, C-contiguous and
/// exactly `size` bytes long: `TypeError` for a read-only buffer, `ValueError` naming both
/// sizes for another size. The buffer stays exported (a `bytearray` cannot be resized, an
/// array not freed) until `fill` returns.
pub(crate) fn with_writable<R>(
    target: &Bound<'_, PyAny>,
    size: usize,
    fill: impl FnOnce(&mut [u8]) -> PyResult<R>,
) -> PyResult<R> {
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: `target` is a live object (we hold a reference and the GIL); `view` is writable
    // memory for one `Py_buffer`, which stays in place (it is never moved) until the release
    // below, as exporters may point into it.
    let rc = unsafe {
        ffi::PyObject_GetBuffer(
            target.as_ptr(),
            view.as_mut_ptr(),
            ffi::PyBUF_WRITABLE | ffi::PyBUF_ND,
        )
    };
    if rc != 0 {
        return Err(refused(target));
    }
    // SAFETY: `PyObject_GetBuffer` succeeded, so it filled `view`.
    let view = Exported(unsafe { view.assume_init_mut() });
    let len = usize::try_from(view.0.len).unwrap_or(0);
    // PyBUF_ND without PyBUF_STRIDES asks for C-contiguous memory: exporters that cannot give
    // it (a numpy array slice with steps, a memoryview of one) refuse with `BufferError`.
    if view.0.readonly != 0 {
        return Err(read_only(target));
    }
    if len != size {
        return Err(PyValueError::new_err(format!(
            "the target is {len} bytes but the payload is {size} bytes"
        )));
    }
    if size == 0 {
        return fill(&mut []);
    }
    // SAFETY: the exporter gave `len` writable, contiguous bytes at `buf`, valid until the
    // buffer is released (after `fill` returns); as for `readinto` of a file, no other code
    // is to use them during the call.
    let bytes = unsafe { std::slice::from_raw_parts_mut(view.0.buf.cast::<u8>(), len) };
    fill(bytes)
}

/// A buffer export, released when dropped (with the GIL held: the caller holds it).
struct Exported<'a>(&'a mut ffi::Py_buffer);

impl Drop for Exported<'_> {
    fn drop(&mut self) {
        // SAFETY: the buffer was exported by `PyObject_GetBuffer`, is released once, here,
        // and the GIL is held (`with_writable` runs attached and drops this before returning).
        unsafe { ffi::PyBuffer_Release(self.0) }
    }
}

/// The error for a `target` whose writable buffer was refused: `TypeError` when it exports a
/// read-only one, else the exporter's own error.
fn refused(target: &Bound<'_, PyAny>) -> PyErr {
    let py = target.py();
    let err = PyErr::fetch(py);
    let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
    // SAFETY: as in `with_writable`; `view` is released right below if it was exported.
    let rc =
        unsafe { ffi::PyObject_GetBuffer(target.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_SIMPLE) };
    if rc != 0 {
        // Not a buffer at all: the first error says so (`TypeError`).
        let _ = PyErr::take(py);
        return err;
    }
    // SAFETY: exported just above, released once here.
    let readonly = unsafe {
        let view = view.assume_init_mut();
        let readonly = view.readonly != 0;
        ffi::PyBuffer_Release(view);
        readonly
    };
    if readonly {
        read_only(target)
    } else {
        err
    }
}

/// `TypeError`: `target` exports only a read-only buffer.
fn read_only(target: &Bound<'_, PyAny>) -> PyErr {
    let kind = target
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_string());
    PyTypeError::new_err(format!(
        "the target ({kind}) is read-only: a read needs a writable buffer (a ctypes structure, a bytearray, a numpy array)"
    ))
}

/// A new, uninitialized numpy array of `dtype` that is `size` bytes long (`ValueError` unless
/// `size` is a whole number of `dtype` items), for a read to fill.
pub(crate) fn numpy_empty<'py>(
    py: Python<'py>,
    dtype: &Bound<'py, PyAny>,
    size: usize,
) -> PyResult<Bound<'py, PyAny>> {
    static NUMPY: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
    let (dtype_class, empty) = NUMPY.get_or_try_init(py, || {
        let numpy = py.import("numpy")?;
        Ok::<_, PyErr>((
            numpy.getattr("dtype")?.unbind(),
            numpy.getattr("empty")?.unbind(),
        ))
    })?;
    let dtype_class = dtype_class.bind(py);
    // A dtype object as it is (a generated module's); anything else through `numpy.dtype`.
    let dtype = if dtype.is_instance(dtype_class)? {
        dtype.clone()
    } else {
        dtype_class.call1((dtype,))?
    };
    let item: usize = dtype.getattr(intern!(py, "itemsize"))?.extract()?;
    if item == 0 || size % item != 0 {
        return Err(PyValueError::new_err(format!(
            "the payload is {size} bytes, not a whole number of {item}-byte `{dtype}` items"
        )));
    }
    empty.bind(py).call1((size / item, dtype))
}
