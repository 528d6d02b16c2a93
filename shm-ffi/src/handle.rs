//! Opaque handles and the checks of the arguments C passes: names, layouts, buffers and out
//! pointers.

use crate::status::Failure;
use shm_core::LayoutBuf;
use std::ffi::{c_char, CStr};

/// An opaque C handle: a value, tagged so that a handle of the wrong kind is refused instead
/// of misused. `repr(C)` with the tag first, so that the tag of any handle is at the same
/// place. Closing clears the tag before freeing, which catches some uses after close, but
/// using a closed handle remains undefined behaviour, as in any C API.
#[repr(C)]
pub struct Handle<T> {
    tag: u64,
    pub(crate) inner: T,
}

/// A kind of handle: its tag.
pub(crate) trait Tagged {
    /// A value no other kind uses.
    const TAG: u64;
}

// The methods are crate-internal; only the type is public, as the handles C holds.
#[allow(private_bounds)]
impl<T: Tagged> Handle<T> {
    /// Boxes `inner` and returns the pointer C will hold.
    pub(crate) fn into_raw(inner: T) -> *mut Handle<T> {
        Box::into_raw(Box::new(Handle { tag: T::TAG, inner }))
    }

    /// The handle behind `p`.
    ///
    /// # Safety
    /// `p` must be null or a pointer `into_raw` returned that was not yet passed to `free`.
    pub(crate) unsafe fn from_ptr<'a>(
        p: *const Handle<T>,
        what: &str,
    ) -> Result<&'a Handle<T>, Failure> {
        if p.is_null() {
            return Err(Failure::argument(format!("the {what} handle is null")));
        }
        if !p.is_aligned() {
            return Err(Failure::argument(format!(
                "the {what} handle is not a {what}"
            )));
        }
        // SAFETY: non-null and aligned, and by the caller's contract a live handle of some
        // kind: every `Handle` is `repr(C)` with its `u64` tag first, so the tag can be read
        // before we know which kind it is.
        let tag = unsafe { p.cast::<u64>().read() };
        if tag != T::TAG {
            return Err(Failure::argument(format!(
                "the {what} handle is not a {what}"
            )));
        }
        // SAFETY: a live handle of this kind (its tag says so).
        Ok(unsafe { &*p })
    }

    /// As [`from_ptr`](Self::from_ptr), mutably.
    ///
    /// # Safety
    /// As [`from_ptr`](Self::from_ptr), and no other reference to the handle may be live.
    pub(crate) unsafe fn from_mut<'a>(
        p: *mut Handle<T>,
        what: &str,
    ) -> Result<&'a mut Handle<T>, Failure> {
        // SAFETY: forwarded contract.
        unsafe { Self::from_ptr(p, what) }?;
        // SAFETY: checked above; the caller guarantees exclusive access.
        Ok(unsafe { &mut *p })
    }

    /// Drops the handle behind `p` (null is ignored).
    ///
    /// # Safety
    /// `p` must be null or a pointer `into_raw` returned that was not yet passed to `free`.
    pub(crate) unsafe fn free(p: *mut Handle<T>, what: &str) -> Result<(), Failure> {
        if p.is_null() {
            return Ok(());
        }
        // SAFETY: forwarded contract; checks the tag.
        let h = unsafe { Self::from_mut(p, what) }?;
        h.tag = 0;
        // SAFETY: `p` came from `Box::into_raw` in `into_raw` and, by the caller's contract,
        // is freed once.
        drop(unsafe { Box::from_raw(p) });
        Ok(())
    }
}

/// The segment name behind `name`.
///
/// # Safety
/// `name` must be null or point to a NUL-terminated string.
pub(crate) unsafe fn name<'a>(name: *const c_char) -> Result<&'a str, Failure> {
    if name.is_null() {
        return Err(Failure::argument("the segment name is null"));
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(name) };
    c.to_str()
        .map_err(|_| Failure::argument("the segment name is not UTF-8"))
}

/// `len` bytes at `p`.
///
/// # Safety
/// `p` must be null or valid for reads of `len` bytes, unchanged during the call.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return Err(Failure::argument(format!("{what} is null")));
    }
    // SAFETY: non-null, and by the caller's contract valid for `len` bytes.
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// `len` writable bytes at `p`.
///
/// # Safety
/// `p` must be null or valid for writes of `len` bytes, not accessed otherwise during the call.
pub(crate) unsafe fn bytes_mut<'a>(
    p: *mut u8,
    len: usize,
    what: &str,
) -> Result<&'a mut [u8], Failure> {
    if p.is_null() {
        return Err(Failure::argument(format!("{what} is null")));
    }
    // SAFETY: non-null, and by the caller's contract valid for writes of `len` bytes. The
    // bytes may be uninitialized, but `u8` has no invalid values and we only write them.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// Stores `v` through the out pointer `p` if it is not null.
///
/// # Safety
/// `p` must be null or valid for a write of a `T`.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) -> Result<(), Failure> {
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: non-null and, by the caller's contract, valid for a write of a `T`; unaligned
    // pointers are tolerated.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// Checks that a buffer of `len` bytes holds exactly a payload of `size` bytes.
pub(crate) fn check_size(len: usize, size: usize, what: &str) -> Result<(), Failure> {
    if len == size {
        Ok(())
    } else {
        Err(Failure::argument(format!(
            "{what} is {len} bytes but the payload is {size} bytes"
        )))
    }
}

/// The layout a generated header describes: its descriptor bytes decoded, and its hash
/// compared with `expected_hash` unless that is 0.
///
/// # Safety
/// `descriptor` must be null or valid for reads of `len` bytes.
pub(crate) unsafe fn layout(
    descriptor: *const u8,
    len: usize,
    expected_hash: u64,
) -> Result<LayoutBuf, Failure> {
    // SAFETY: forwarded contract.
    let d = unsafe { bytes(descriptor, len, "the layout descriptor") }?;
    let layout = LayoutBuf::decode(d)
        .map_err(|e| Failure::argument(format!("the layout descriptor does not decode: {e}")))?;
    let hash = layout.layout_hash();
    if expected_hash != 0 && hash != expected_hash {
        return Err(Failure::argument(format!(
            "the layout descriptor has hash {hash:#018x}, but the layout hash passed is {expected_hash:#018x}: the header's macros disagree (regenerate it)"
        )));
    }
    Ok(layout)
}
