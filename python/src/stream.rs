//! `shm_state.StreamReader`: every message of a broadcast stream, in order, decoded by the
//! stream's stored layout; or an observer of a queue's messages that takes none.

use crate::reader::timeout;
use crate::{convert, to_py, LaggedError, ShmError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shm_core::{Error, RawStreamReader};
use std::time::Duration;

/// Receives the messages of a broadcast stream, in order. `StreamReader(name)` receives the
/// messages sent from now on; `StreamReader(name, layout, from_oldest=True)` also checks the
/// message type (raising `LayoutMismatchError` naming the first differing field) and starts
/// with the oldest message the stream still holds. Another version of an
/// `#[shm(appendable)]` type is accepted by the rule of "Compatibility" and read as `Reader`
/// reads it (`compat`, the longer layout decoded, the program's type filled).
///
/// A reader that falls behind by more than the stream's capacity loses the messages the
/// writer overwrote: the next receive raises `LaggedError` once, whose `missed` attribute is
/// their exact number, and the one after returns the oldest message still there. Messages are
/// never torn, duplicated or reordered.
///
/// On a queue this reader only observes: it sees the producer's messages without taking any
/// (the queue's consumer still gets each one); with `from_oldest` it starts at the oldest
/// message not taken yet.
///
/// Receiving copies each message out of shared memory in native code, with the GIL released
/// while it waits. Iterating (`for message in reader`) receives with no time limit; so does
/// `async for message in reader` in an asyncio event loop (`recv_async`). Usable as a context
/// manager; `close()` releases it.
#[pyclass(module = "shm_state")]
pub struct StreamReader {
    inner: Option<RawStreamReader>,
    /// How `recv` turns a message into Python objects, worked out once from the layout.
    plan: Option<convert::Plan>,
    /// The program's type, when it was given as a different version of the stored one.
    version: Option<crate::reader::Version>,
    /// How the stored layout relates to the one given, if one was.
    compat: Option<shm_core::Compat>,
    /// The epoch of the writer `recv_async` last saw alive, and of the last one whose end it
    /// reported (each writer's end is reported once: a stream goes on when another takes over).
    alive_epoch: Option<u64>,
    reported_epoch: Option<u64>,
}

impl StreamReader {
    pub(crate) fn raw(&self) -> PyResult<&RawStreamReader> {
        self.inner
            .as_ref()
            .ok_or_else(|| ShmError::new_err("the stream reader is closed"))
    }

    fn raw_mut(&mut self) -> PyResult<&mut RawStreamReader> {
        self.inner
            .as_mut()
            .ok_or_else(|| ShmError::new_err("the stream reader is closed"))
    }

    /// Copies the next message into `dst` (exactly the payload size) and returns its number:
    /// waiting at most `wait` for it, with the GIL released (`Error::Timeout` when none
    /// came), or, with `wait` `None`, not at all (`None` when none was sent). A short message
    /// already there is copied with the GIL held.
    fn receive(
        &mut self,
        py: Python<'_>,
        dst: &mut [u8],
        wait: Option<Duration>,
    ) -> PyResult<Option<u64>> {
        let rx = self.raw_mut()?;
        let got = if dst.len() <= crate::buffer::GIL_HELD_COPY_LIMIT {
            match (rx.try_recv(dst), wait) {
                (Ok(None), Some(wait)) => py.detach(|| rx.recv_timeout(dst, wait)).map(Some),
                (got, _) => got,
            }
        } else {
            match wait {
                Some(wait) => py.detach(|| rx.recv_timeout(dst, wait)).map(Some),
                None => py.detach(|| rx.try_recv(dst)),
            }
        };
        got.map_err(lagged_or)
    }

    /// As [`receive`](Self::receive), into a value of `dst.len()` bytes (the program's type):
    /// the common prefix of it and the message, the rest of `dst` zero.
    fn receive_resized(
        &mut self,
        py: Python<'_>,
        dst: &mut [u8],
        wait: Option<Duration>,
    ) -> PyResult<Option<u64>> {
        let payload = self.raw()?.payload_size();
        if dst.len() == payload {
            return self.receive(py, dst, wait);
        }
        crate::reader::with_scratch(payload, |bytes| {
            let got = self.receive(py, bytes, wait)?;
            let n = payload.min(dst.len());
            dst[..n].copy_from_slice(&bytes[..n]);
            dst[n..].fill(0);
            Ok(got)
        })
    }

    /// The size of the values byte-oriented receives fill: the program's type if one was given.
    fn value_size(&self) -> PyResult<usize> {
        Ok(match &self.version {
            Some(v) => v.size,
            None => self.raw()?.payload_size(),
        })
    }

    /// The next message decoded, and its number: waiting as [`receive`](Self::receive) does.
    fn decoded<'py>(
        &mut self,
        py: Python<'py>,
        wait: Option<Duration>,
    ) -> PyResult<Option<(u64, Bound<'py, PyAny>)>> {
        let size = match &self.version {
            Some(v) => v.view.size as usize,
            None => self.raw()?.payload_size(),
        };
        crate::reader::with_scratch(size, |bytes| {
            let Some(number) = self.receive_resized(py, bytes, wait)? else {
                return Ok(None);
            };
            let layout = match &self.version {
                Some(v) => &v.view,
                None => self.raw()?.layout(),
            };
            let value = convert::decode_with(py, self.plan.as_ref(), layout, bytes)?;
            Ok(Some((number, value)))
        })
    }
}

/// `LaggedError` (with `missed`) for a gap, else the usual exception.
fn lagged_or(e: Error) -> PyErr {
    match e {
        Error::Lagged { missed } => {
            let err = LaggedError::new_err(e.to_string());
            Python::attach(|py| {
                let _ = err.value(py).setattr("missed", missed);
            });
            err
        }
        e => to_py(e),
    }
}

#[pymethods]
impl StreamReader {
    #[new]
    #[pyo3(signature = (name, layout = None, from_oldest = false))]
    fn new(
        py: Python<'_>,
        name: &str,
        layout: Option<&Bound<'_, PyAny>>,
        from_oldest: bool,
    ) -> PyResult<Self> {
        let expected = layout.map(convert::layout_arg).transpose()?;
        let rx = if from_oldest {
            RawStreamReader::subscribe_from_oldest(name)
        } else {
            RawStreamReader::subscribe(name)
        }
        .map_err(to_py)?;
        let (mut version, mut compat) = (None, None);
        if let Some(expected) = expected {
            let (c, v) =
                crate::reader::Version::check(rx.layout(), rx.info().layout_hash(), &expected)?;
            (compat, version) = (Some(c), v);
        }
        let view = version.as_ref().map_or(rx.layout(), |v| &v.view);
        let plan = convert::Plan::new(py, view, view.size as usize);
        Ok(StreamReader {
            inner: Some(rx),
            plan,
            version,
            compat,
            alive_epoch: None,
            reported_epoch: None,
        })
    }

    /// The next message, decoded by the stored layout (dicts, lists, `str`, `bool`, numbers),
    /// waiting at most `timeout` seconds for it (`None`: as long as it takes); raises
    /// `ShmTimeoutError` when none came, `LaggedError` after a gap.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let (_, value) = self.recv_numbered(py, timeout)?;
        Ok(value)
    }

    /// `(number, message)`: the next message as `recv` returns it, and its number (messages
    /// are numbered from 1).
    #[pyo3(signature = (timeout = None))]
    fn recv_numbered<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, Bound<'py, PyAny>)> {
        let wait = self::timeout(timeout)?;
        let got = self.decoded(py, Some(wait))?;
        Ok(got.expect("a wait returns a message or an error"))
    }

    /// `(number, bytes)`: the next message's payload bytes, e.g. for
    /// `Fill.from_buffer_copy(...)` of a generated module; waits as `recv` does.
    #[pyo3(signature = (timeout = None))]
    fn recv_bytes<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let wait = self::timeout(timeout)?;
        let size = self.value_size()?;
        let mut number = 0;
        let bytes = PyBytes::new_with(py, size, |bytes| {
            number = self
                .receive_resized(py, bytes, Some(wait))?
                .expect("a wait returns a message or an error");
            Ok(())
        })?;
        Ok((number, bytes))
    }

    /// Copies the next message into `target` and returns its number: any writable,
    /// C-contiguous buffer of exactly the message size (a generated ctypes structure, a
    /// `bytearray`, a numpy array), filled in place; waits as `recv` does. A read-only
    /// buffer raises `TypeError`, another size `ValueError`.
    #[pyo3(signature = (target, timeout = None))]
    fn recv_into(
        &mut self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let wait = self::timeout(timeout)?;
        let size = self.value_size()?;
        crate::buffer::with_writable(target, size, |bytes| {
            let got = self.receive_resized(py, bytes, Some(wait))?;
            Ok(got.expect("a wait returns a message or an error"))
        })
    }

    /// The next message if one was sent, decoded, without waiting; `None` if none.
    /// `LaggedError` after a gap.
    fn try_recv<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.decoded(py, None)?.map(|(_, value)| value))
    }

    /// A coroutine: receives the next message in an asyncio event loop (`m = await
    /// rx.recv_async()`), decoded as `recv` decodes it; raises `LaggedError` after a gap as
    /// `recv` does, `ShmTimeoutError` after `timeout` seconds (`None`: waits as long as it
    /// takes), and `WriterDiedError` once when the process of a writer it saw alive ends
    /// (the next call waits on, for a writer that takes over). Cancelling it loses no
    /// message. Waits through the loop's one `WaitSet`: no thread per stream.
    #[pyo3(signature = (timeout = None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::waitset::aio_call(slf.py(), "recv", (slf, timeout))
    }

    /// For `recv_async`: the next message, decoded, if one was sent; else `None`, or raises
    /// `WriterDiedError` if the writer last seen alive is gone and that was not reported yet.
    fn _try_recv_async<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Some((_, value)) = self.decoded(py, None)? {
            return Ok(Some(value));
        }
        let writer = self.raw()?.info().writer();
        if writer.alive() {
            self.alive_epoch = Some(writer.epoch());
        } else if self.alive_epoch == Some(writer.epoch())
            && self.reported_epoch != Some(writer.epoch())
        {
            self.reported_epoch = Some(writer.epoch());
            return Err(to_py(Error::WriterDied));
        }
        Ok(None)
    }

    /// The number of the next message this reader receives.
    #[getter]
    fn position(&self) -> PyResult<u64> {
        Ok(self.raw()?.position())
    }

    /// The number of messages sent so far.
    #[getter]
    fn sent(&self) -> PyResult<u64> {
        Ok(self.raw()?.sent())
    }

    /// On a queue, the number of messages its consumer took; `None` on a stream.
    #[getter]
    fn taken(&self) -> PyResult<Option<u64>> {
        Ok(self.raw()?.taken())
    }

    /// What the segment is and who writes it: a `SegmentInfo` (`name`, `kind`, `layout_hash`,
    /// `payload_size`, `slots`, `creator_pid`, and `writer` with `pid`, `epoch`, `alive`).
    fn info(&self, py: Python<'_>) -> PyResult<crate::info::SegmentInfo> {
        crate::info::to_py(py, &self.raw()?.info())
    }

    /// How the stored message layout relates to the layout given to `StreamReader(name,
    /// layout)`, as `Reader.compat` says it; `None` when no layout was given.
    #[getter]
    fn compat(&self) -> PyResult<Option<String>> {
        self.raw()?;
        Ok(self.compat.map(|c| format!("{c:?}")))
    }

    /// The size of one message in bytes.
    #[getter]
    fn payload_size(&self) -> PyResult<usize> {
        Ok(self.raw()?.payload_size())
    }

    /// The messages' type name as Rust spells it.
    #[getter]
    fn type_name(&self) -> PyResult<String> {
        Ok(self.raw()?.layout().to_string())
    }

    /// Releases the stream (idempotent).
    fn close(&mut self) {
        self.inner = None;
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.recv(py, None)
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// `async for message in reader`: `recv_async()` with no time limit.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::waitset::aio_call(slf.py(), "recv", (slf, None::<f64>))
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
                "<shm_state.StreamReader {:?} ({}) of {} at message {}>",
                r.info().name(),
                r.info().kind(),
                r.layout(),
                r.position()
            ),
            None => "<shm_state.StreamReader (closed)>".to_string(),
        }
    }
}
