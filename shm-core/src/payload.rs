//! Moving a `SharedState` value in and out of a slot's 8-byte words.

use crate::seqlock;
use crate::SharedState;
use core::mem::{size_of, MaybeUninit};
use core::sync::atomic::AtomicU64;

/// Compile-time refusal of zero-sized payloads, which hold nothing to share (`[u8; 0]`).
pub struct NonEmpty<T>(core::marker::PhantomData<T>);

impl<T> NonEmpty<T> {
    /// Evaluating this fails to compile for a zero-sized `T`.
    pub const CHECK: () = assert!(
        size_of::<T>() > 0,
        "a zero-sized type holds nothing to share between processes"
    );
}

/// Copies a value of `T` out of a slot into `out`; returns whether the copy is consistent.
///
/// Only when it returns `true` are all of `out`'s bytes written with one consistent value;
/// otherwise `out` holds whatever was copied and must be treated as uninitialized. `expected`
/// is as for [`seqlock::read_slot`]. `words` must hold `size_of::<T>().div_ceil(8)` words (the
/// caller's validated geometry).
#[inline(always)]
pub fn read_into<T: SharedState>(
    seq: &AtomicU64,
    words: &[AtomicU64],
    expected: Option<u64>,
    out: &mut MaybeUninit<T>,
) -> bool {
    let full = size_of::<T>() / 8;
    let tail = size_of::<T>() % 8;
    // Slicing to the compile-time word count gives the copy loop a constant trip count: small
    // payloads unroll into straight-line loads, and the `k < full` test folds away. Over the
    // runtime-length slice, the loop kept a per-word branch and a 64-byte read took twice as long.
    let words = &words[..size_of::<T>().div_ceil(8)];
    let dst = out.as_mut_ptr() as *mut u8;
    seqlock::read_slot(seq, words, expected, |k, w| {
        if k < full {
            // SAFETY: `k < full` so bytes `8k..8k+8` lie within `out`'s `size_of::<T>()`
            // bytes; the write is unaligned-tolerant and `out` is this process's memory, not
            // shared memory.
            unsafe { (dst as *mut u64).add(k).write_unaligned(w) };
        } else {
            let bytes = w.to_ne_bytes();
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are exactly
            // the end of `out`; the source is a local array of 8 >= tail bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(full * 8), tail) };
        }
    })
    .is_some()
}

/// Copies the slot's words into a `T` without checking consistency. Test hook: shows what the
/// seqlock's validation prevents.
pub fn read_unvalidated<T: SharedState>(words: &[AtomicU64]) -> T {
    let seq = AtomicU64::new(0);
    let words_copy: Vec<AtomicU64> = words
        .iter()
        .map(|w| AtomicU64::new(w.load(core::sync::atomic::Ordering::Relaxed)))
        .collect();
    let mut out = MaybeUninit::<T>::uninit();
    let consistent = read_into(&seq, &words_copy, None, &mut out);
    assert!(
        consistent,
        "a private, quiescent copy always reads consistently"
    );
    // SAFETY: `read_into` returned true, so every byte of `out` was written, and every bit
    // pattern is a valid `T` (`T: SharedState`).
    unsafe { out.assume_init() }
}

/// Writes `value` into a slot through the seqlock; returns the slot's new sequence value.
#[inline(always)]
pub fn write<T: SharedState>(seq: &AtomicU64, words: &[AtomicU64], version: u64, value: &T) -> u64 {
    let full = size_of::<T>() / 8;
    let tail = size_of::<T>() % 8;
    // A constant trip count, as in `read`.
    let words = &words[..size_of::<T>().div_ceil(8)];
    let src = value as *const T as *const u8;
    seqlock::write_slot(seq, words, version, |k| {
        if k < full {
            // SAFETY: `k < full` so bytes `8k..8k+8` lie within `*value`; `T: SharedState` has
            // no padding, so they are initialized; the read tolerates any alignment.
            unsafe { (src as *const u64).add(k).read_unaligned() }
        } else {
            let mut bytes = [0u8; 8];
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are the end
            // of `*value`, initialized (no padding); the destination is a local array.
            unsafe { core::ptr::copy_nonoverlapping(src.add(full * 8), bytes.as_mut_ptr(), tail) };
            u64::from_ne_bytes(bytes)
        }
    })
}
