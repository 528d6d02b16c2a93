//! `shm_state.Writer`: creates, takes over and publishes segments that readers in any
//! language read.

use crate::{convert, to_py, ShmError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shm_core::{Options, RawWriter};

/// Writes a shared segment: the one writer it has at a time. Made by `Writer.create`,
/// `Writer.open` (a takeover) or `Writer.open_or_create`, given a layout (descriptor bytes,
/// the layout's JSON text, or a generated module).
///
/// Values are bytes-like objects of the payload size (e.g. a generated ctypes structure) or
/// dicts encoded by the layout; a dict may leave fields out, which keep their current value.
/// Usable as a context manager; `close()` releases the writer lease (the segment stays).
#[pyclass(module = "shm_state")]
pub struct Writer {
    inner: Option<RawWriter>,
}

impl Writer {
    fn raw(&self) -> PyResult<&RawWriter> {
        self.inner
            .as_ref()
            .ok_or_else(|| ShmError::new_err("the writer is closed"))
    }
}

/// The initial value's bytes: a dict over zeros, or bytes.
fn initial(layout: &shm_core::LayoutBuf, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let size = usize::try_from(layout.size)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("the layout is too large"))?;
    convert::value_bytes(layout, value, vec![0; size])
}

#[pymethods]
impl Writer {
    /// Creates the segment `name` holding `initial`; raises `AlreadyExistsError` if the name
    /// is taken.
    #[staticmethod]
    fn create(
        name: &str,
        layout: &Bound<'_, PyAny>,
        initial: &Bound<'_, PyAny>,
    ) -> PyResult<Writer> {
        let layout = convert::layout_arg(layout)?;
        let bytes = self::initial(&layout, initial)?;
        let w = Options::new()
            .create_raw(name, &layout, &bytes)
            .map_err(to_py)?;
        Ok(Writer { inner: Some(w) })
    }

    /// Takes over the existing segment `name` (a new epoch); raises `WriterBusyError` while
    /// another live writer holds it, `LayoutMismatchError` if it holds another type.
    #[staticmethod]
    fn open(name: &str, layout: &Bound<'_, PyAny>) -> PyResult<Writer> {
        let layout = convert::layout_arg(layout)?;
        let w = Options::new()
            .open_raw_writer(name, &layout)
            .map_err(to_py)?;
        Ok(Writer { inner: Some(w) })
    }

    /// Creates `name` holding `initial`, or takes it over (keeping its value) if it exists.
    #[staticmethod]
    fn open_or_create(
        name: &str,
        layout: &Bound<'_, PyAny>,
        initial: &Bound<'_, PyAny>,
    ) -> PyResult<Writer> {
        let layout = convert::layout_arg(layout)?;
        let bytes = self::initial(&layout, initial)?;
        let w = Options::new()
            .open_or_create_raw(name, &layout, &bytes)
            .map_err(to_py)?;
        Ok(Writer { inner: Some(w) })
    }

    /// Publishes `value` (bytes-like of the payload size, or a dict): readers see it from now
    /// on.
    fn write(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let w = self
            .inner
            .as_mut()
            .ok_or_else(|| ShmError::new_err("the writer is closed"))?;
        let base = if value.cast::<pyo3::types::PyDict>().is_ok() {
            let mut cur = vec![0u8; w.payload_size()];
            w.get(&mut cur).map_err(to_py)?;
            cur
        } else {
            vec![0u8; w.payload_size()]
        };
        let bytes = convert::value_bytes(w.layout(), value, base)?;
        w.write(&bytes);
        Ok(())
    }

    /// The newest complete value, decoded by the layout.
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let w = self.raw()?;
        let mut buf = vec![0u8; w.payload_size()];
        w.get(&mut buf).map_err(to_py)?;
        convert::decode(py, w.layout(), &buf)
    }

    /// The newest complete value's payload bytes.
    fn get_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let w = self.raw()?;
        let mut buf = vec![0u8; w.payload_size()];
        w.get(&mut buf).map_err(to_py)?;
        Ok(PyBytes::new(py, &buf))
    }

    /// The version this writer last wrote.
    fn version(&self) -> PyResult<u64> {
        Ok(self.raw()?.version())
    }

    /// What the segment is and who writes it: a `SegmentInfo` (`name`, `kind`, `layout_hash`,
    /// `payload_size`, `slots`, `creator_pid`, and `writer` with `pid`, `epoch`, `alive`).
    fn info(&self, py: Python<'_>) -> PyResult<crate::info::SegmentInfo> {
        crate::info::to_py(py, &self.raw()?.info())
    }

    /// Whether this writer created the segment (rather than taking it over).
    fn created(&self) -> PyResult<bool> {
        Ok(self.raw()?.created())
    }

    /// The payload's size in bytes.
    #[getter]
    fn payload_size(&self) -> PyResult<usize> {
        Ok(self.raw()?.payload_size())
    }

    /// Releases the writer lease (idempotent); the segment stays.
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
}
