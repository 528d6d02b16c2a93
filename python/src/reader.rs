//! `shm_state.Reader`: consistent snapshots of any segment, decoded by its stored layout or
//! copied into a ctypes structure, a bytes object or a numpy array.

use crate::{convert, to_py, ShmError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
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
}

impl Reader {
    fn raw(&self) -> PyResult<&RawReader> {
        self.inner
            .as_ref()
            .ok_or_else(|| ShmError::new_err("the reader is closed"))
    }

    /// A snapshot's bytes and version, read with the GIL released.
    fn snapshot(&self, py: Python<'_>, seconds: Option<f64>) -> PyResult<(Vec<u8>, u64)> {
        let r = self.raw()?;
        let t = timeout(seconds)?;
        py.detach(|| {
            let mut buf = vec![0u8; r.payload_size()];
            r.read_timeout(&mut buf, t).map(|v| (buf, v))
        })
        .map_err(to_py)
    }
}

#[pymethods]
impl Reader {
    #[new]
    #[pyo3(signature = (name, layout = None))]
    fn new(name: &str, layout: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let expected = layout.map(convert::layout_arg).transpose()?;
        let r = RawReader::open(name).map_err(to_py)?;
        if let Some(expected) = expected {
            crate::check_layout(r.layout(), r.info().layout_hash(), &expected)?;
        }
        Ok(Reader { inner: Some(r) })
    }

    /// The latest value, decoded by the stored layout: dicts for structs, lists for arrays
    /// and vectors, `str`, `bool`, `int` and `float`. Invalid helper bytes raise
    /// `InvalidFieldError` naming the field.
    #[pyo3(signature = (timeout = 1.0))]
    fn read<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let (bytes, _) = self.snapshot(py, timeout)?;
        convert::decode(py, self.raw()?.layout(), &bytes)
    }

    /// `(version, value)`: the latest value decoded as `read` does, and its version.
    #[pyo3(signature = (timeout = 1.0))]
    fn read_versioned<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, Bound<'py, PyAny>)> {
        let (bytes, v) = self.snapshot(py, timeout)?;
        Ok((v, convert::decode(py, self.raw()?.layout(), &bytes)?))
    }

    /// The latest value's payload bytes, e.g. for `Telemetry.from_buffer_copy(...)` of a
    /// generated module.
    #[pyo3(signature = (timeout = 1.0))]
    fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (bytes, _) = self.snapshot(py, timeout)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Copies the latest value into `target`, any writable buffer of exactly the payload size
    /// (a generated ctypes structure, a bytearray); returns its version.
    #[pyo3(signature = (target, timeout = 1.0))]
    fn read_into(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((target,))?
            .call_method1("cast", ("B",))?;
        let size = self.raw()?.payload_size();
        if view.len()? != size {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "the target is {} bytes but the payload is {size} bytes",
                view.len()?
            )));
        }
        let (bytes, v) = self.snapshot(py, timeout)?;
        view.set_item(pyo3::types::PySlice::full(py), PyBytes::new(py, &bytes))?;
        Ok(v)
    }

    /// The latest value as a numpy array of `dtype` over a private snapshot (no copy after
    /// the snapshot; shared memory itself is never exposed). With a generated module's
    /// structured dtype the array has one element. Needs numpy.
    #[pyo3(signature = (dtype, timeout = 1.0))]
    fn read_numpy<'py>(
        &self,
        py: Python<'py>,
        dtype: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let numpy = py.import("numpy")?;
        let (bytes, _) = self.snapshot(py, timeout)?;
        let buf = PyByteArray::new(py, &bytes);
        numpy.call_method1("frombuffer", (buf, dtype))
    }

    /// As `read`, but a bounded number of attempts without sleeping.
    fn try_read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = self.raw()?;
        let mut buf = vec![0u8; r.payload_size()];
        r.try_read(&mut buf).map_err(to_py)?;
        convert::decode(py, r.layout(), &buf)
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
