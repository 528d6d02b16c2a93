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
/// differing field. Another version of an `#[shm(appendable)]` type is accepted by the rule
/// of "Compatibility" (`compat` says how it relates): `read` then decodes the longer of the
/// two layouts (fields the segment lacks read as zero, fields this program lacks are decoded
/// by the stored layout), and the byte-oriented reads fill the program's type, the common
/// prefix copied and the rest zero.
///
/// Every read copies a consistent snapshot out of shared memory in native code; timeouts are
/// in seconds (`None`: wait forever). Usable as a context manager; `close()` releases it.
#[pyclass(module = "shm_state")]
pub struct Reader {
    inner: Option<RawReader>,
    /// How `read` turns the payload into Python objects, worked out once from the layout.
    plan: Option<convert::Plan>,
    /// The program's type, when it was given as a different version of the stored one.
    version: Option<Version>,
    /// How the stored layout relates to the one given, if one was.
    compat: Option<shm_core::Compat>,
}

/// A program type that is another version of the segment's `#[shm(appendable)]` type.
pub(crate) struct Version {
    /// The program type's size: what byte-oriented reads fill.
    pub(crate) size: usize,
    /// The longer of the two layouts, which `read` decodes.
    pub(crate) view: shm_core::LayoutBuf,
}

impl Version {
    /// Checks that a program of `expected` may open a segment storing `stored` (of hash
    /// `stored_hash`): the case, and the program's version if it is another one.
    pub(crate) fn check(
        stored: &shm_core::LayoutBuf,
        stored_hash: u64,
        expected: &shm_core::LayoutBuf,
    ) -> PyResult<(shm_core::Compat, Option<Version>)> {
        let compat = crate::check_layout(stored, stored_hash, expected)?;
        if expected.layout_hash() == stored_hash {
            return Ok((compat, None));
        }
        let view = if expected.size >= stored.size {
            expected.clone()
        } else {
            stored.clone()
        };
        let size = expected.size as usize;
        Ok((compat, Some(Version { size, view })))
    }
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

/// Reads the latest value of `r` into `dst`, a value of `size` bytes (the program's type):
/// the common prefix of it and the payload, the rest of `dst` zero ("Reading across
/// versions"); `read_latest` itself when the sizes are equal.
fn read_resized(py: Python<'_>, r: &RawReader, dst: &mut [u8], t: Duration) -> PyResult<u64> {
    let payload = r.payload_size();
    if dst.len() == payload {
        return read_latest(py, r, dst, t);
    }
    with_scratch(payload, |bytes| {
        let v = read_latest(py, r, bytes, t)?;
        let n = payload.min(dst.len());
        dst[..n].copy_from_slice(&bytes[..n]);
        dst[n..].fill(0);
        Ok(v)
    })
}

impl Reader {
    /// The size of the values byte-oriented reads fill: the program's type if one was given.
    fn value_size(&self, r: &RawReader) -> usize {
        self.version.as_ref().map_or(r.payload_size(), |v| v.size)
    }

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
        let view = self.version.as_ref().map_or(r.layout(), |v| &v.view);
        with_scratch(view.size as usize, |bytes| {
            let v = read_resized(py, r, bytes, t)?;
            Ok((
                v,
                convert::decode_with(py, self.plan.as_ref(), view, bytes)?,
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
        let (mut version, mut given) = (None, None);
        if let Some(expected) = expected {
            let (compat, v) = Version::check(r.layout(), r.info().layout_hash(), &expected)?;
            (given, version) = (Some(compat), v);
        }
        let view = version.as_ref().map_or(r.layout(), |v| &v.view);
        let plan = convert::Plan::new(py, view, view.size as usize);
        Ok(Reader {
            inner: Some(r),
            plan,
            version,
            compat: given,
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
        PyBytes::new_with(py, self.value_size(r), |bytes| {
            read_resized(py, r, bytes, t).map(|_| ())
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
        buffer::with_writable(target, self.value_size(r), |bytes| {
            read_resized(py, r, bytes, t)
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
        let array = buffer::numpy_empty(py, dtype, self.value_size(r))?;
        buffer::with_writable(&array, self.value_size(r), |bytes| {
            read_resized(py, r, bytes, t)
        })?;
        Ok(array)
    }

    /// As `read`, but a bounded number of attempts without sleeping.
    fn try_read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.raw()?;
        let view = self.version.as_ref().map_or(r.layout(), |v| &v.view);
        with_scratch(view.size.max(r.payload_size() as u64) as usize, |bytes| {
            r.try_read(&mut bytes[..r.payload_size()]).map_err(to_py)?;
            convert::decode_with(py, self.plan.as_ref(), view, &bytes[..view.size as usize])
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

    /// How the stored layout relates to the layout given to `Reader(name, layout)`:
    /// `"Exact"`, `"SegmentNewer"` (a later version of the type: its extra fields are decoded
    /// too) or `"SegmentOlder"` (an earlier version: the fields it lacks read as zero); `None`
    /// when no layout was given.
    #[getter]
    fn compat(&self) -> PyResult<Option<String>> {
        self.raw()?;
        Ok(self.compat.map(|c| format!("{c:?}")))
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
