//! Moving a payload in and out of a slot's 8-byte words: the `sink` and `source` closures that
//! the protocol's reads and writes call per word, for a typed value or a byte buffer.

use core::mem::{size_of, MaybeUninit};

/// Compile-time refusal of zero-sized payloads, which hold nothing to share (`[u8; 0]`).
pub(crate) struct NonEmpty<T>(core::marker::PhantomData<T>);

impl<T> NonEmpty<T> {
    /// Evaluating this fails to compile for a zero-sized `T`.
    pub const CHECK: () = assert!(
        size_of::<T>() > 0,
        "a zero-sized type holds nothing to share between processes"
    );
}

/// The number of 8-byte words a payload of `size` bytes takes in a slot.
#[inline(always)]
pub(crate) const fn words(size: usize) -> usize {
    size.div_ceil(8)
}

/// A sink that stores word `k` as bytes `8k..8k+8` of `dst`, the last word cut to `len`. It
/// never writes outside the `len` bytes, whatever `k` it is called with (any `k` past the
/// whole words lands on the tail).
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes for as long as the sink lives.
#[inline(always)]
unsafe fn sink_to(dst: *mut u8, len: usize) -> impl FnMut(usize, u64) {
    let full = len / 8;
    let tail = len % 8;
    move |k, w| {
        if k < full {
            // SAFETY: `k < full`, so bytes `8k..8k+8` lie within the `len` bytes the caller
            // guarantees; the write tolerates any alignment.
            unsafe { (dst as *mut u64).add(k).write_unaligned(w) };
        } else {
            let bytes = w.to_ne_bytes();
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are exactly
            // the end of the `len` bytes, whatever `k` is; the source is a local array of
            // 8 >= tail bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(full * 8), tail) };
        }
    }
}

/// A source that gives bytes `8k..8k+8` of `src` as word `k`, the last word zero-padded. It
/// never reads outside the `len` bytes, whatever `k` it is called with.
///
/// # Safety
/// `src` must be valid for reads of `len` initialized bytes for as long as the source lives.
#[inline(always)]
unsafe fn source_from(src: *const u8, len: usize) -> impl FnMut(usize) -> u64 {
    let full = len / 8;
    let tail = len % 8;
    move |k| {
        if k < full {
            // SAFETY: `k < full`, so bytes `8k..8k+8` lie within the `len` initialized bytes
            // the caller guarantees; the read tolerates any alignment.
            unsafe { (src as *const u64).add(k).read_unaligned() }
        } else {
            let mut bytes = [0u8; 8];
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are the end
            // of the caller's `len` bytes, whatever `k` is; the destination is a local array.
            unsafe { core::ptr::copy_nonoverlapping(src.add(full * 8), bytes.as_mut_ptr(), tail) };
            u64::from_ne_bytes(bytes)
        }
    }
}

/// A sink that fills `out` with a `T`, to pass with `len = words(size_of::<T>())`: when the
/// protocol reports the copy consistent, every byte of `out` is written.
///
/// That guarantee, which every `assume_init` after a read rests on, holds because the protocol
/// slices the slot's words to exactly `len` (and panics if the slot has fewer: opening checked
/// that the payload size is `size_of::<T>()`) and calls the sink for every index in `0..len`
/// before it reports a copy consistent.
///
/// The length is a compile-time constant, so small payloads unroll into straight-line loads
/// (over a runtime length, the loop kept a per-word branch and a 64-byte read took twice as
/// long).
#[inline(always)]
pub(crate) fn sink_into<T>(out: &mut MaybeUninit<T>) -> impl FnMut(usize, u64) + '_ {
    // SAFETY: `out` is `size_of::<T>()` writable bytes, borrowed for the sink's lifetime.
    unsafe { sink_to(out.as_mut_ptr() as *mut u8, size_of::<T>()) }
}

/// A source that reads the words of `value`, to pass with `len = words(size_of::<T>())`.
///
/// `T` must have no padding (callers pass `T: SharedState`), so that every byte is initialized.
#[inline(always)]
pub(crate) fn source_of<T: crate::SharedState>(value: &T) -> impl FnMut(usize) -> u64 + '_ {
    // SAFETY: `value` is `size_of::<T>()` readable bytes, borrowed for the source's lifetime,
    // all initialized because `T: SharedState` has no padding.
    unsafe { source_from(value as *const T as *const u8, size_of::<T>()) }
}

/// A sink that fills the byte buffer `out`, to pass with `len = words(out.len())`.
#[inline]
pub(crate) fn sink_into_bytes(out: &mut [u8]) -> impl FnMut(usize, u64) + '_ {
    // SAFETY: `out` is `out.len()` writable bytes, borrowed for the sink's lifetime.
    unsafe { sink_to(out.as_mut_ptr(), out.len()) }
}

/// A source that reads the words of the byte buffer `value`, to pass with
/// `len = words(value.len())`.
#[inline]
pub(crate) fn source_of_bytes(value: &[u8]) -> impl FnMut(usize) -> u64 + '_ {
    // SAFETY: `value` is `value.len()` initialized, readable bytes, borrowed for the source's
    // lifetime.
    unsafe { source_from(value.as_ptr(), value.len()) }
}
