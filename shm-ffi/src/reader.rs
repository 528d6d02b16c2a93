//! Reader entry points: `shm_ffi_reader_*`, over [`RawReader`].

use crate::handle::{self, check_size, put, Handle, Tagged};
use crate::status::{entry, Failure, Status};
use shm_core::{Error, RawReader};
use std::ffi::c_char;
use std::time::Duration;

impl Tagged for RawReader {
    const TAG: u64 = 0x7265_6164_6572_0001;
}

/// The opaque reader handle of the header (`shm_ffi_reader`).
pub type ReaderHandle = Handle<RawReader>;

const READER: &str = "reader";

/// A C timeout in nanoseconds: negative waits forever.
fn timeout(ns: i64) -> Duration {
    u64::try_from(ns).map_or(Duration::MAX, Duration::from_nanos)
}

/// Opens the segment `name` for reading and stores the reader in `*out`. With a descriptor (the
/// generated header's `<NAME>_DESCRIPTOR`, `<NAME>_DESCRIPTOR_LEN` and, or 0, its
/// `<NAME>_LAYOUT_HASH`), a segment holding another type is refused with
/// `SHM_FFI_ERR_LAYOUT_MISMATCH`, whose message names the first differing field; with a null
/// descriptor any segment is opened.
///
/// # Safety
/// `name` must be null or a NUL-terminated string; `descriptor` null or readable for
/// `descriptor_len` bytes; `out` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_reader_open(
    name: *const c_char,
    descriptor: *const u8,
    descriptor_len: usize,
    layout_hash: u64,
    out: *mut *mut ReaderHandle,
) -> Status {
    entry(|| {
        if out.is_null() {
            return Err(Failure::argument("the out pointer for the reader is null"));
        }
        // SAFETY: the caller passes a NUL-terminated name (or null, refused).
        let name = unsafe { handle::name(name) }?;
        let expected = if descriptor.is_null() {
            None
        } else {
            // SAFETY: non-null, and the caller passes `descriptor_len` readable bytes.
            Some(unsafe { handle::layout(descriptor, descriptor_len, layout_hash) }?)
        };
        let r = RawReader::open(name)?;
        if let Some(expected) = expected {
            let hash = expected.layout_hash();
            if r.info().layout_hash() != hash {
                // As the typed reader words it (the stored layout was checked against the
                // stored hash on open).
                let first_difference = r.layout().first_difference(&expected).unwrap_or_else(|| {
                    "the stored layout matches this program's but the layout hash does not (corrupt header)".to_string()
                });
                return Err(Error::LayoutMismatch {
                    expected: hash,
                    found: r.info().layout_hash(),
                    first_difference,
                }
                .into());
            }
        }
        // SAFETY: `out` is non-null (checked) and the caller's contract makes it writable.
        unsafe { put(out, ReaderHandle::into_raw(r)) }
    })
}

/// Runs `f` on the reader behind `r`.
///
/// # Safety
/// `r` must be null or a live reader handle.
unsafe fn with(
    r: *const ReaderHandle,
    f: impl FnOnce(&RawReader) -> Result<(), Failure>,
) -> Status {
    entry(|| {
        // SAFETY: the caller's contract: a live handle.
        let r = unsafe { ReaderHandle::from_ptr(r, READER) }?;
        f(&r.inner)
    })
}

/// Copies a consistent snapshot into `out` (`size` bytes, the payload size) and the version of
/// those bytes into `*version` (may be null; see [`RawReader::read_timeout`]). Waits at most `timeout_ns` nanoseconds (negative: forever)
/// for one: `SHM_FFI_ERR_TIMEOUT`, or `SHM_FFI_ERR_WRITER_DIED` if the writer died mid-write.
///
/// # Safety
/// `r` must be null or a live reader handle; `out` null or writable for `size` bytes;
/// `version` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_reader_read_timeout(
    r: *const ReaderHandle,
    out: *mut u8,
    size: usize,
    timeout_ns: i64,
    version: *mut u64,
) -> Status {
    let body = |r: &RawReader| {
        check_size(size, r.payload_size(), "the buffer")?;
        // SAFETY: the caller passes `size` writable bytes (or null, refused).
        let out = unsafe { handle::bytes_mut(out, size, "the buffer") }?;
        let v = r.read_timeout(out, timeout(timeout_ns))?;
        // SAFETY: the caller's contract: null or writable.
        unsafe { put(version, v) }
    };
    // SAFETY: the caller's contract: `r` is null or a live reader handle.
    unsafe { with(r, body) }
}

/// As [`shm_ffi_reader_read_timeout`], but gives up after a bounded number of attempts
/// without sleeping.
///
/// # Safety
/// As [`shm_ffi_reader_read_timeout`].
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_reader_try_read(
    r: *const ReaderHandle,
    out: *mut u8,
    size: usize,
    version: *mut u64,
) -> Status {
    let body = |r: &RawReader| {
        check_size(size, r.payload_size(), "the buffer")?;
        // SAFETY: the caller passes `size` writable bytes (or null, refused).
        let out = unsafe { handle::bytes_mut(out, size, "the buffer") }?;
        let v = r.try_read(out)?;
        // SAFETY: the caller's contract: null or writable.
        unsafe { put(version, v) }
    };
    // SAFETY: the caller's contract: `r` is null or a live reader handle.
    unsafe { with(r, body) }
}

/// Blocks until the version exceeds `since` or `timeout_ns` passes (negative: forever);
/// stores the new version in `*version` (may be null).
///
/// # Safety
/// `r` must be null or a live reader handle; `version` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_reader_wait_for_update(
    r: *const ReaderHandle,
    since: u64,
    timeout_ns: i64,
    version: *mut u64,
) -> Status {
    let body = |r: &RawReader| {
        let v = r.wait_for_update(since, timeout(timeout_ns))?;
        // SAFETY: the caller's contract: null or writable.
        unsafe { put(version, v) }
    };
    // SAFETY: the caller's contract: `r` is null or a live reader handle.
    unsafe { with(r, body) }
}

macro_rules! getter {
    ($(#[$doc:meta])* $fn:ident, $t:ty, |$r:ident| $get:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `r` must be null or a live reader handle; `out` null or writable.
        #[no_mangle]
        pub unsafe extern "C" fn $fn(r: *const ReaderHandle, out: *mut $t) -> Status {
            let body = |$r: &RawReader| {
                let v: $t = $get;
                // SAFETY: the caller's contract: null or writable.
                unsafe { put(out, v) }
            };
            // SAFETY: the caller's contract: `r` is null or a live reader handle.
            unsafe { with(r, body) }
        }
    };
}

getter!(
    /// Stores the publish counter (monotonic; 0 for the initial value) in `*out`.
    shm_ffi_reader_version, u64, |r| r.version()
);
getter!(
    /// Stores 1 in `*out` if a live writer holds the segment's writer lease, else 0.
    shm_ffi_reader_writer_alive, i32, |r| i32::from(r.info().writer().alive())
);
getter!(
    /// Stores the process id of the last writer recorded in the segment in `*out`.
    shm_ffi_reader_writer_pid, u32, |r| r.info().writer().pid()
);
getter!(
    /// Stores the writer epoch (1 for the creator, one more per takeover) in `*out`.
    shm_ffi_reader_writer_epoch, u64, |r| r.info().writer().epoch()
);
getter!(
    /// Stores the segment's layout hash in `*out`.
    shm_ffi_reader_layout_hash, u64, |r| r.info().layout_hash()
);
getter!(
    /// Stores the payload size in bytes in `*out`.
    shm_ffi_reader_payload_size, usize, |r| r.payload_size()
);

/// Closes the reader. Null is accepted.
///
/// # Safety
/// `r` must be null or a live reader handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_reader_close(r: *mut ReaderHandle) -> Status {
    // SAFETY: the caller's contract.
    entry(|| unsafe { ReaderHandle::free(r, READER) })
}
