//! `SegmentInfo` and `WriterInfo`: what `Reader.info()`, `Writer.info()` and
//! `StreamReader.info()` report about a segment, as `shm_core::SegmentInfo` does in Rust.

use pyo3::prelude::*;

/// What a segment is and who writes it, as one handle saw it when its `info()` was called.
///
/// Fixed for the life of the handle: `name`, `kind` (`"state"`, `"stream"` or `"queue"`),
/// `layout_hash`, `payload_size` (one message's, for a stream or queue), `slots` (a stream's
/// or queue's capacity in messages) and `creator_pid`. Live: `writer`, a snapshot; call
/// `info()` again for a fresh one.
#[pyclass(module = "shm_state", frozen, get_all)]
pub(crate) struct SegmentInfo {
    name: String,
    kind: String,
    layout_hash: u64,
    payload_size: usize,
    slots: usize,
    creator_pid: u32,
    writer: Py<WriterInfo>,
}

/// The writer of a segment (a queue's producer) when `info()` was called: `pid` (the last
/// writer that took the lease; it may have exited), `epoch` (1 for the creator, one more per
/// takeover) and `alive` (whether a writer held the lease).
#[pyclass(module = "shm_state", frozen, get_all)]
pub(crate) struct WriterInfo {
    pid: u32,
    epoch: u64,
    alive: bool,
}

#[pymethods]
impl SegmentInfo {
    fn __repr__(&self) -> String {
        format!(
            "SegmentInfo(name={:?}, kind={:?}, layout_hash={:#018x}, payload_size={}, slots={}, creator_pid={}, writer={})",
            self.name,
            self.kind,
            self.layout_hash,
            self.payload_size,
            self.slots,
            self.creator_pid,
            self.writer.get().__repr__(),
        )
    }
}

#[pymethods]
impl WriterInfo {
    fn __repr__(&self) -> String {
        format!(
            "WriterInfo(pid={}, epoch={}, alive={})",
            self.pid,
            self.epoch,
            if self.alive { "True" } else { "False" }
        )
    }
}

/// The Python value of `info`.
pub(crate) fn to_py(py: Python<'_>, info: &shm_core::SegmentInfo) -> PyResult<SegmentInfo> {
    let w = info.writer();
    Ok(SegmentInfo {
        name: info.name().to_string(),
        kind: info.kind().to_string(),
        layout_hash: info.layout_hash(),
        payload_size: info.payload_size(),
        slots: info.slots(),
        creator_pid: info.creator_pid(),
        writer: Py::new(
            py,
            WriterInfo {
                pid: w.pid(),
                epoch: w.epoch(),
                alive: w.alive(),
            },
        )?,
    })
}
