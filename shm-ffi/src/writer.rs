//! Writer entry points: `shm_ffi_writer_*` and `shm_ffi_remove`.

use crate::handle::{self, check_size, put, Handle, Tagged};
use crate::status::{entry, Failure, Status};
use shm_core::{Options, RawWriter};
use std::ffi::c_char;

impl Tagged for RawWriter {
    const TAG: u64 = 0x7772_6974_6572_0001;
}

/// The opaque writer handle of the header (`shm_ffi_writer`).
pub type WriterHandle = Handle<RawWriter>;

const WRITER: &str = "writer";

/// How a writer is obtained.
#[derive(Clone, Copy)]
enum How {
    Create,
    OpenWriter,
    OpenOrCreate,
}

/// The common body of the three constructors.
///
/// # Safety
/// As [`shm_ffi_writer_create`]; `initial` is not read for [`How::OpenWriter`].
#[allow(clippy::too_many_arguments)]
unsafe fn make(
    how: How,
    name: *const c_char,
    descriptor: *const u8,
    descriptor_len: usize,
    layout_hash: u64,
    initial: *const u8,
    size: usize,
    out: *mut *mut WriterHandle,
) -> Status {
    entry(|| {
        if out.is_null() {
            return Err(Failure::argument("the out pointer for the writer is null"));
        }
        // SAFETY: the caller passes a NUL-terminated name (or null, refused).
        let name = unsafe { handle::name(name) }?;
        // SAFETY: the caller passes the descriptor's bytes and length (or null, refused).
        let layout = unsafe { handle::layout(descriptor, descriptor_len, layout_hash) }?;
        let w = match how {
            How::OpenWriter => Options::new().open_raw_writer(name, &layout)?,
            How::Create | How::OpenOrCreate => {
                // SAFETY: the caller passes `size` readable bytes at `initial` (or null, refused).
                let initial = unsafe { handle::bytes(initial, size, "the initial value") }?;
                check_size(size, layout.size as usize, "the initial value")?;
                match how {
                    How::Create => Options::new().create_raw(name, &layout, initial)?,
                    _ => Options::new().open_or_create_raw(name, &layout, initial)?,
                }
            }
        };
        // SAFETY: `out` is non-null (checked) and the caller's contract makes it writable.
        unsafe { put(out, WriterHandle::into_raw(w)) }
    })
}

/// Creates the segment `name` holding `initial` (`size` bytes, the layout's size) and stores
/// its writer in `*out`. The layout is the generated header's `<NAME>_DESCRIPTOR` and
/// `<NAME>_DESCRIPTOR_LEN`; `layout_hash` is its `<NAME>_LAYOUT_HASH`, or 0 not to check it.
///
/// # Safety
/// `name` must be null or a NUL-terminated string; `descriptor` null or readable for
/// `descriptor_len` bytes; `initial` null or readable for `size` bytes; `out` null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_create(
    name: *const c_char,
    descriptor: *const u8,
    descriptor_len: usize,
    layout_hash: u64,
    initial: *const u8,
    size: usize,
    out: *mut *mut WriterHandle,
) -> Status {
    // SAFETY: forwarded contract.
    unsafe {
        make(
            How::Create,
            name,
            descriptor,
            descriptor_len,
            layout_hash,
            initial,
            size,
            out,
        )
    }
}

/// Opens the existing segment `name` as its writer (a takeover: a new epoch), checking that it
/// holds the layout; fails with `SHM_FFI_ERR_WRITER_BUSY` while another live writer holds it.
///
/// # Safety
/// As [`shm_ffi_writer_create`].
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_open(
    name: *const c_char,
    descriptor: *const u8,
    descriptor_len: usize,
    layout_hash: u64,
    out: *mut *mut WriterHandle,
) -> Status {
    // SAFETY: forwarded contract; `initial` is not read.
    unsafe {
        make(
            How::OpenWriter,
            name,
            descriptor,
            descriptor_len,
            layout_hash,
            core::ptr::null(),
            0,
            out,
        )
    }
}

/// Creates the segment `name` holding `initial`, or, if it exists, opens it as its writer
/// (keeping its value). Of many processes starting at once, one creates and the others attach.
///
/// # Safety
/// As [`shm_ffi_writer_create`].
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_open_or_create(
    name: *const c_char,
    descriptor: *const u8,
    descriptor_len: usize,
    layout_hash: u64,
    initial: *const u8,
    size: usize,
    out: *mut *mut WriterHandle,
) -> Status {
    // SAFETY: forwarded contract.
    unsafe {
        make(
            How::OpenOrCreate,
            name,
            descriptor,
            descriptor_len,
            layout_hash,
            initial,
            size,
            out,
        )
    }
}

/// Publishes `value` (`size` bytes, the payload size): readers see it from now on.
///
/// # Safety
/// `w` must be null or a live writer handle, not used by another thread during the call;
/// `value` null or readable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_write(
    w: *mut WriterHandle,
    value: *const u8,
    size: usize,
) -> Status {
    entry(|| {
        // SAFETY: the caller's contract: a live handle, used by this thread only.
        let w = unsafe { WriterHandle::from_mut(w, WRITER) }?;
        check_size(size, w.inner.payload_size(), "the value")?;
        // SAFETY: the caller passes `size` readable bytes (or null, refused).
        let value = unsafe { handle::bytes(value, size, "the value") }?;
        w.inner.write(value);
        Ok(())
    })
}

/// Copies the newest complete value (the last one published, or after a takeover the newest
/// the previous writer completed) into `out` (`size` bytes).
///
/// # Safety
/// `w` must be null or a live writer handle; `out` null or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_get(
    w: *const WriterHandle,
    out: *mut u8,
    size: usize,
) -> Status {
    entry(|| {
        // SAFETY: the caller's contract: a live handle.
        let w = unsafe { WriterHandle::from_ptr(w, WRITER) }?;
        check_size(size, w.inner.payload_size(), "the buffer")?;
        // SAFETY: the caller passes `size` writable bytes (or null, refused).
        let out = unsafe { handle::bytes_mut(out, size, "the buffer") }?;
        Ok(w.inner.get(out)?)
    })
}

/// Stores the version this writer last wrote in `*version`, its epoch (1 for the creator, one
/// more per takeover) in `*epoch` and whether it created the segment (1) or took it over (0) in
/// `*created`; any of the three may be null.
///
/// # Safety
/// `w` must be null or a live writer handle; the out pointers null or writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_info(
    w: *const WriterHandle,
    version: *mut u64,
    epoch: *mut u64,
    created: *mut i32,
) -> Status {
    entry(|| {
        // SAFETY: the caller's contract: a live handle.
        let w = &unsafe { WriterHandle::from_ptr(w, WRITER) }?.inner;
        // SAFETY: the caller's contract: each out pointer is null or writable.
        unsafe { put(version, w.version()) }?;
        // SAFETY: as above.
        unsafe { put(epoch, w.info().writer().epoch()) }?;
        // SAFETY: as above.
        unsafe { put(created, i32::from(w.created())) }
    })
}

/// Stores the payload size in bytes in `*size`.
///
/// # Safety
/// `w` must be null or a live writer handle; `size` null or writable.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_payload_size(
    w: *const WriterHandle,
    size: *mut usize,
) -> Status {
    entry(|| {
        // SAFETY: the caller's contract: a live handle.
        let w = unsafe { WriterHandle::from_ptr(w, WRITER) }?;
        // SAFETY: the caller's contract: null or writable.
        unsafe { put(size, w.inner.payload_size()) }
    })
}

/// Closes the writer, releasing its lease (the segment stays; see [`shm_ffi_remove`]). Null
/// is accepted.
///
/// # Safety
/// `w` must be null or a live writer handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_writer_close(w: *mut WriterHandle) -> Status {
    // SAFETY: the caller's contract.
    entry(|| unsafe { WriterHandle::free(w, WRITER) })
}

/// Removes the named segment; processes that have it open keep using it.
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn shm_ffi_remove(name: *const c_char) -> Status {
    entry(|| {
        // SAFETY: the caller's contract.
        let name = unsafe { handle::name(name) }?;
        Ok(shm_core::remove(name)?)
    })
}
