//! `shm_state.Reader`: consistent snapshots of any segment, decoded by its stored layout or
//! copied into a ctypes structure, a bytes object or a numpy array.

use crate::{buffer, convert, to_py, ShmError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shm_core::RawReader;
use std::time::Duration;

/// A timeout in seconds from Python: `None` waits forever.
pub(crate) fn timeout(seconds: Option<f64>) -> PyResult<Duration> {
    match seconds {
        None => Ok(Duration::MAX),
        Some(s) => Duration::try_from_secs_f64(s.max(0.0))
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("timeout: {e}"))),
    }
}

/// Reads a shared segment. `Reader(name)` opens any segment of this format; `Reader(name,
/// layout)` (descriptor bytes, the layout's JSON text, or a generated module) also checks
/// that the segment holds that type, raising `LayoutMismatchError` naming the first
/// differing field.
///
/// Every read copies a consistent snapshot out of shared memory in native code; timeouts are
/// in seconds (`None`: wait forever). Usable as a context manager; `close()` releases it.
#[pyclass(module = "shm_state")]
pub struct Reader {
    inner: Option<RawReader>,
    /// How `read` turns the payload into Python objects, worked out once from the layout.
    plan: Option<convert::Plan>,
}

/// Payloads up to this size are read into a buffer on the stack, not a heap one.
pub(crate) const STACK_PAYLOAD: usize = 512;

/// Calls `f` with a zeroed scratch buffer of `size` bytes: on the stack when it is small.
#[inline]
pub(crate) fn with_scratch<R>(size: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if size <= STACK_PAYLOAD {
        let mut stack = [0u8; STACK_PAYLOAD];
        f(&mut stack[..size])
    } else {
        f(&mut vec![0u8; size])
    }
}

/// Reads the latest value of `r` into `dst` (exactly the payload size) and returns its
/// version: with the GIL held for a short copy that needs no wait, else with the GIL
/// released, waiting at most `t`.
pub(crate) fn read_latest(
    py: Python<'_>,
    r: &RawReader,
    dst: &mut [u8],
    t: Duration,
) -> PyResult<u64> {
    if dst.len() <= crate::buffer::GIL_HELD_COPY_LIMIT {
        // A bounded number of attempts, no sleeping; a writer in the way makes it time out,
        // and the read then waits as any other.
        match r.try_read(dst) {
            Err(shm_core::Error::Timeout) => {}
            done => return done.map_err(to_py),
        }
    }
    py.detach(|| r.read_timeout(dst, t)).map_err(to_py)
}

impl Reader {
    pub(crate) fn raw(&self) -> PyResult<&RawReader> {
        self.inner
            .as_ref()
            .ok_or_else(|| ShmError::new_err("the reader is closed"))
    }

    /// The latest value decoded, and its version.
    fn decoded<'py>(
        &self,
        py: Python<'py>,
        seconds: Option<f64>,
    ) -> PyResult<(u64, Bound<'py, PyAny>)> {
        let r = self.raw()?;
        let t = timeout(seconds)?;
        with_scratch(r.payload_size(), |bytes| {
            let v = read_latest(py, r, bytes, t)?;
            Ok((
                v,
                convert::decode_with(py, self.plan.as_ref(), r.layout(), bytes)?,
            ))
        })
    }
}

#[pymethods]
impl Reader {
    #[new]
    #[pyo3(signature = (name, layout = None))]
    fn new(py: Python<'_>, name: &str, layout: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let expected = layout.map(convert::layout_arg).transpose()?;
        let r = RawReader::open(name).map_err(to_py)?;
        if let Some(expected) = expected {
            crate::check_layout(r.layout(), r.info().layout_hash(), &expected)?;
        }
        let plan = convert::Plan::new(py, r.layout(), r.payload_size());
        Ok(Reader {
            inner: Some(r),
            plan,
        })
    }

    /// The latest value, decoded by the stored layout: dicts for structs, lists for arrays
    /// and vectors, `str`, `bool`, `int` and `float`. Invalid helper bytes raise
    /// `InvalidFieldError` naming the field.
    #[pyo3(signature = (timeout = 1.0))]
    fn read<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.decoded(py, timeout)?.1)
    }

    /// `(version, value)`: the latest value decoded as `read` does, and its version.
    #[pyo3(signature = (timeout = 1.0))]
    fn read_versioned<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, Bound<'py, PyAny>)> {
        self.decoded(py, timeout)
    }

    /// The latest value's payload bytes, e.g. for `Telemetry.from_buffer_copy(...)` of a
    /// generated module.
    #[pyo3(signature = (timeout = 1.0))]
    fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.raw()?;
        let t = self::timeout(timeout)?;
        PyBytes::new_with(py, r.payload_size(), |bytes| {
            read_latest(py, r, bytes, t).map(|_| ())
        })
    }

    /// Copies the latest value into `target` and returns its version: any writable,
    /// C-contiguous buffer of exactly the payload size (a generated ctypes structure, a
    /// `bytearray`, a numpy array, a `memoryview`), filled in place with one copy out of
    /// shared memory. A read-only buffer raises `TypeError`, another size `ValueError`.
    #[pyo3(signature = (target, timeout = 1.0))]
    fn read_into(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let r = self.raw()?;
        let t = self::timeout(timeout)?;
        buffer::with_writable(target, r.payload_size(), |bytes| {
            read_latest(py, r, bytes, t)
        })
    }

    /// The latest value as a new numpy array of `dtype`, read straight into the array's own
    /// memory (shared memory itself is never exposed). With a generated module's structured
    /// dtype the array has one element. Needs numpy.
    #[pyo3(signature = (dtype, timeout = 1.0))]
    fn read_numpy<'py>(
        &self,
        py: Python<'py>,
        dtype: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = self.raw()?;
        let t = self::timeout(timeout)?;
        let array = buffer::numpy_empty(py, dtype, r.payload_size())?;
        buffer::with_writable(&array, r.payload_size(), |bytes| {
            read_latest(py, r, bytes, t)
        })?;
        Ok(array)
    }

    /// As `read`, but a bounded number of attempts without sleeping.
    fn try_read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.raw()?;
        with_scratch(r.payload_size(), |bytes| {
            r.try_read(bytes).map_err(to_py)?;
            convert::decode_with(py, self.plan.as_ref(), r.layout(), bytes)
        })
    }

    /// The publish counter: 0 for the initial value, monotonic.
    fn version(&self) -> PyResult<u64> {
        Ok(self.raw()?.version())
    }

    /// Blocks (GIL released) until the version exceeds `since`; returns it. Raises
    /// `ShmTimeoutError` after `timeout` seconds (`None`: waits forever).
    #[pyo3(signature = (since, timeout = None))]
    fn wait_for_update(&self, py: Python<'_>, since: u64, timeout: Option<f64>) -> PyResult<u64> {
        let r = self.raw()?;
        let t = self::timeout(timeout)?;
        py.detach(|| r.wait_for_update(since, t)).map_err(to_py)
    }

    /// A coroutine: waits, in an asyncio event loop, until the version exceeds `since`, and
    /// returns it (`v = await r.changed(v)`). Raises `WriterDiedError` when no writer holds
    /// the segment (at the start, or once its process ends while waiting), unless a newer
    /// version is there; `ShmTimeoutError` after `timeout` seconds (`None`: waits forever).
    /// Cancelling it (`asyncio.wait_for`, `Task.cancel`) cancels its wait. Waits through the
    /// loop's one `WaitSet`: no thread per segment.
    #[pyo3(signature = (since, timeout = None))]
    fn changed<'py>(
        slf: &Bound<'py, Self>,
        since: u64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::waitset::aio_call(slf.py(), "changed", (slf, since, timeout))
    }

    /// For `changed`: the version if it exceeds `since`; `None` if not and a writer holds the
    /// segment; else raises (`WriterDiedError`, or the truncation error).
    fn _changed_state(&self, since: u64) -> PyResult<Option<u64>> {
        let r = self.raw()?;
        let v = r.version();
        if r.is_truncated() {
            // Fails at once with the truncation error (checked before any waiting).
            return r
                .wait_for_update(since, Duration::ZERO)
                .map(Some)
                .map_err(to_py);
        }
        if v > since {
            return Ok(Some(v));
        }
        if !r.info().writer().alive() {
            return Err(to_py(shm_core::Error::WriterDied));
        }
        Ok(None)
    }

    /// What the segment is and who writes it: a `SegmentInfo` (`name`, `kind`, `layout_hash`,
    /// `payload_size`, `slots`, `creator_pid`, and `writer` with `pid`, `epoch`, `alive`).
    fn info(&self, py: Python<'_>) -> PyResult<crate::info::SegmentInfo> {
        crate::info::to_py(py, &self.raw()?.info())
    }

    /// The payload's size in bytes.
    #[getter]
    fn payload_size(&self) -> PyResult<usize> {
        Ok(self.raw()?.payload_size())
    }

    /// The stored type's name as Rust spells it (`Telemetry`, `[f64; 3]`).
    #[getter]
    fn type_name(&self) -> PyResult<String> {
        Ok(self.raw()?.layout().to_string())
    }

    /// The stored layout's descriptor bytes.
    #[getter]
    fn descriptor<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.raw()?.layout().encode()))
    }

    /// Releases the segment (idempotent).
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            Some(r) => format!(
                "<shm_state.Reader {:?} holding {}>",
                r.info().name(),
                r.layout()
            ),
            None => "<shm_state.Reader (closed)>".to_string(),
        }
    }
}
