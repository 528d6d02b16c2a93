//! `shm_state.WaitSet`: many segments, one file descriptor, for `selectors`, `asyncio` or any
//! event loop; and the module's asyncio support (`aio.py`), which waits through one per loop.

use crate::reader::{timeout, Reader};
use crate::stream::StreamReader;
use crate::{to_py, ShmError};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use shm_core::{Key, WaitBackend, Waitable};
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd};

/// Waits on many readers at once through one file descriptor, without a thread per segment.
///
/// `WaitSet()` waits with the best backend the kernel offers (`SHM_WAIT_BACKEND` may force
/// one), `WaitSet("io_uring" | "futex_waitv" | "thread")` with that one. `attach(reader)`
/// takes a `Reader` or a `StreamReader` and returns its key (an `int`). A reader is ready when
/// something newer than what it had at `attach` (or at its last report) was published: a
/// state reader's version, a stream's next message; or when its writer's process (the one
/// writing at `attach`) ends. `ready()` returns the keys ready now, without blocking, each
/// once per change; `wait(timeout)` blocks (GIL released) until some are.
///
/// With an event loop: register `fileno()` for reading (`selectors`, `loop.add_reader`) and
/// call `ready()` whenever it is readable; call `ready()` once after attaching, which arms
/// the waits that make the descriptor readable (it may turn readable without a reader being
/// ready: `ready()` then returns `[]`). The set keeps the segments mapped, not the readers.
/// Usable as a context manager; `close()` releases it.
#[pyclass(module = "shm_state")]
pub struct WaitSet {
    inner: Option<shm_core::WaitSet>,
    /// The attached readers' keys by the number Python knows them by.
    keys: HashMap<u64, Key>,
    /// The same, the other way round.
    numbers: HashMap<Key, u64>,
    /// The number the next attached reader gets.
    next: u64,
}

/// `shm_core::WaitBackend` as Python spells it (the names `SHM_WAIT_BACKEND` takes).
fn backend_name(b: WaitBackend) -> &'static str {
    match b {
        WaitBackend::IoUring => "io_uring",
        WaitBackend::FutexWaitv => "futex_waitv",
        _ => "thread",
    }
}

impl WaitSet {
    fn set(&mut self) -> PyResult<&mut shm_core::WaitSet> {
        self.inner
            .as_mut()
            .ok_or_else(|| ShmError::new_err("the wait set is closed"))
    }

    fn set_ref(&self) -> PyResult<&shm_core::WaitSet> {
        self.inner
            .as_ref()
            .ok_or_else(|| ShmError::new_err("the wait set is closed"))
    }

    fn attach_to(&mut self, handle: &impl Waitable) -> PyResult<u64> {
        let key = self.set()?.attach(handle).map_err(to_py)?;
        let number = self.next;
        self.next += 1;
        self.keys.insert(number, key);
        self.numbers.insert(key, number);
        Ok(number)
    }

    /// The numbers of `keys`.
    fn numbers(&self, keys: Vec<Key>) -> Vec<u64> {
        keys.iter()
            .filter_map(|k| self.numbers.get(k).copied())
            .collect()
    }
}

#[pymethods]
impl WaitSet {
    #[new]
    #[pyo3(signature = (backend = None))]
    fn new(backend: Option<&str>) -> PyResult<Self> {
        let set = match backend {
            None => shm_core::WaitSet::new(),
            Some("io_uring") => shm_core::WaitSet::with_backend(WaitBackend::IoUring),
            Some("futex_waitv") => shm_core::WaitSet::with_backend(WaitBackend::FutexWaitv),
            Some("thread") => shm_core::WaitSet::with_backend(WaitBackend::Thread),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "no wait backend {other:?}: use \"io_uring\", \"futex_waitv\" or \"thread\""
                )))
            }
        }
        .map_err(to_py)?;
        Ok(WaitSet {
            inner: Some(set),
            keys: HashMap::new(),
            numbers: HashMap::new(),
            next: 0,
        })
    }

    /// Attaches a `Reader` or a `StreamReader` and returns its key: from now on the set
    /// reports it when something newer than what it holds now is published (a stream reader
    /// with messages it has not received yet is ready at the next `ready()`), or when its
    /// writer's process ends.
    fn attach(&mut self, reader: &Bound<'_, PyAny>) -> PyResult<u64> {
        if let Ok(r) = reader.cast::<Reader>() {
            let r = r.borrow();
            return self.attach_to(r.raw()?);
        }
        if let Ok(rx) = reader.cast::<StreamReader>() {
            let rx = rx.borrow();
            return self.attach_to(rx.raw()?);
        }
        Err(PyTypeError::new_err(format!(
            "a WaitSet attaches a Reader or a StreamReader, not {}",
            reader.get_type().name()?
        )))
    }

    /// Detaches `key` (its armed wait is cancelled); `False` if it was not attached.
    fn detach(&mut self, key: u64) -> PyResult<bool> {
        self.set()?;
        let Some(k) = self.keys.remove(&key) else {
            return Ok(false);
        };
        self.numbers.remove(&k);
        Ok(self.set()?.detach(k))
    }

    /// The keys of the attached readers that are ready now, without blocking (each reported
    /// once per change); arms a wait for each of the others, so that the descriptor turns
    /// readable when one of them is.
    fn ready(&mut self) -> PyResult<Vec<u64>> {
        let keys = self.set()?.ready().map_err(to_py)?;
        Ok(self.numbers(keys))
    }

    /// Blocks (GIL released) until at least one attached reader is ready and returns the keys
    /// of those that are; raises `ShmTimeoutError` after `timeout` seconds (`None`: waits
    /// forever).
    #[pyo3(signature = (timeout = None))]
    fn wait(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<u64>> {
        let t = self::timeout(timeout)?;
        let set = self.set()?;
        let keys = py.detach(|| set.wait(t)).map_err(to_py)?;
        Ok(self.numbers(keys))
    }

    /// The descriptor to watch for readability: readable means "call `ready()`".
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.set_ref()?.as_fd().as_raw_fd())
    }

    /// The backend the set waits with: `"io_uring"`, `"futex_waitv"` or `"thread"`.
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        Ok(backend_name(self.set_ref()?.backend()))
    }

    /// Threads the set's backend runs now (none with io_uring; one per 127 waiting segments
    /// with futex_waitv; one per waiting segment with thread).
    #[getter]
    fn threads(&self) -> PyResult<usize> {
        Ok(self.set_ref()?.threads())
    }

    /// Readers attached.
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.set_ref()?.len())
    }

    /// Releases the set: its waits are cancelled and its descriptor closed (idempotent).
    fn close(&mut self) {
        self.inner = None;
        self.keys.clear();
        self.numbers.clear();
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
            Some(s) => format!(
                "<shm_state.WaitSet {} with {} attached>",
                backend_name(s.backend()),
                s.len()
            ),
            None => "<shm_state.WaitSet (closed)>".to_string(),
        }
    }
}

/// The asyncio support, written in Python: compiled into the extension and run as the module
/// `shm_state._aio` when `shm_state` is imported.
const AIO_SOURCE: &CStr =
    match CStr::from_bytes_with_nul(concat!(include_str!("aio.py"), "\0").as_bytes()) {
        Ok(source) => source,
        Err(_) => panic!("aio.py holds a NUL byte"),
    };

static AIO: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Runs `aio.py` as `shm_state._aio`, hands it the module `m` (its classes and exceptions),
/// and adds it to `m`.
pub(crate) fn add_aio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let aio = PyModule::from_code(py, AIO_SOURCE, c"shm_state/aio.py", c"shm_state._aio")?;
    aio.getattr("_bind")?.call1((m,))?;
    m.add("_aio", &aio)?;
    let _ = AIO.set(py, aio.unbind());
    Ok(())
}

/// Calls `shm_state._aio.<function>(*args)`: a coroutine.
pub(crate) fn aio_call<'py>(
    py: Python<'py>,
    function: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let aio = AIO
        .get(py)
        .ok_or_else(|| ShmError::new_err("the asyncio support did not load"))?;
    aio.bind(py).getattr(function)?.call1(args)
}
