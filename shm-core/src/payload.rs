//! Moving a payload in and out of a slot's 8-byte words: the `sink` and `source` closures that
//! the protocol's reads and writes call per word, for a typed value or a byte buffer.

use crate::protocol::{Sink, Source, Word};
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use core::sync::atomic::Ordering;

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

/// A sink that fills the `len` bytes at `dst` from a slot's words: the whole words by
/// [`Word::load_into`] (a bulk copy on shared memory), the last, partial word cut to `len`. It
/// never writes outside the `len` bytes, whatever number of words it is handed.
pub(crate) struct ToBytes<'a> {
    dst: *mut u8,
    len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl ToBytes<'_> {
    /// # Safety
    /// `dst` must be valid for writes of `len` bytes, and private to the caller, for as long
    /// as the sink lives.
    #[inline(always)]
    pub(crate) unsafe fn new(dst: *mut u8, len: usize) -> Self {
        ToBytes {
            dst,
            len,
            _borrow: PhantomData,
        }
    }
}

impl<W: Word> Sink<W> for ToBytes<'_> {
    #[inline(always)]
    fn take(&mut self, words: &[W]) {
        let full = (self.len / 8).min(words.len());
        // SAFETY: `full * 8 <= len` bytes from `dst`, which `new`'s caller guarantees are
        // writable and private; `words` is shared memory (or the model's), apart from them.
        unsafe { W::load_into(&words[..full], self.dst) };
        let tail = self.len - full * 8;
        if let (1..=7, Some(w)) = (tail, words.get(full)) {
            let bytes = w.load(Ordering::Relaxed).to_ne_bytes();
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are exactly
            // the end of the `len` bytes; the source is a local array of 8 > tail bytes.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.dst.add(full * 8), tail) };
        }
    }
}

/// A source that gives a slot's words from the `len` bytes at `src`: the whole words by
/// [`Word::store_from`], the last word zero-padded, and zero for any words it is handed past
/// them. It never reads outside the `len` bytes.
pub(crate) struct FromBytes<'a> {
    src: *const u8,
    len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

impl FromBytes<'_> {
    /// # Safety
    /// `src` must be valid for reads of `len` initialized bytes, which nobody writes, for as
    /// long as the source lives.
    #[inline(always)]
    pub(crate) unsafe fn new(src: *const u8, len: usize) -> Self {
        FromBytes {
            src,
            len,
            _borrow: PhantomData,
        }
    }
}

impl<W: Word> Source<W> for FromBytes<'_> {
    #[inline(always)]
    fn give(&mut self, words: &[W]) {
        let full = (self.len / 8).min(words.len());
        // SAFETY: `full * 8 <= len` readable initialized bytes from `src` (`new`'s caller),
        // which nobody writes; `words` is shared memory apart from them.
        unsafe { W::store_from(&words[..full], self.src) };
        let tail = self.len - full * 8;
        if let (1..=7, Some(w)) = (tail, words.get(full)) {
            let mut bytes = [0u8; 8];
            // SAFETY: the last, partial word: bytes `8 * full .. 8 * full + tail` are the end
            // of the `len` bytes; the destination is a local array.
            unsafe {
                core::ptr::copy_nonoverlapping(self.src.add(full * 8), bytes.as_mut_ptr(), tail)
            };
            w.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        // Words past the `len` bytes are zero: a writer of an earlier, shorter version of an
        // appendable type writes zeros for the fields it does not know (none for callers that
        // pass exactly `words(len)` words).
        for w in words.iter().skip(self.len.div_ceil(8)) {
            w.store(0, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn one_word(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        let n = self.len.min(8);
        // SAFETY: the first `n <= len` bytes from `src` are readable and initialized (`new`'s
        // caller); the destination is a local array of 8 >= n bytes.
        unsafe { core::ptr::copy_nonoverlapping(self.src, bytes.as_mut_ptr(), n) };
        u64::from_ne_bytes(bytes)
    }
}

/// A source that gives what `inner` gives, then zeroes the byte ranges `zero` (start, end) of
/// the words: the `#[shm(deprecated)]` fields of a writer that adopted a segment's layout.
pub(crate) struct ZeroRanges<'a, S> {
    pub inner: S,
    pub zero: &'a [(usize, usize)],
}

impl<W: Word, S: Source<W>> Source<W> for ZeroRanges<'_, S> {
    fn one_word(&mut self) -> u64 {
        let mut bytes = self.inner.one_word().to_ne_bytes();
        for &(start, end) in self.zero {
            let (start, end) = (start.min(8), end.min(8));
            if start < end {
                bytes[start..end].fill(0);
            }
        }
        u64::from_ne_bytes(bytes)
    }

    fn give(&mut self, words: &[W]) {
        self.inner.give(words);
        for &(start, end) in self.zero {
            let end = end.min(words.len() * 8);
            let first = start / 8;
            let count = end.div_ceil(8).saturating_sub(first);
            for (i, w) in words.iter().enumerate().skip(first).take(count) {
                let (lo, hi) = (start.max(i * 8) - i * 8, end.min(i * 8 + 8) - i * 8);
                // The writer owns the slot while it writes it: nobody else stores to it.
                let mut bytes = w.load(Ordering::Relaxed).to_ne_bytes();
                bytes[lo..hi].fill(0);
                w.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
            }
        }
    }
}

/// A sink that fills `out` with a `T`, to pass with `len = words(size_of::<T>())`: when the
/// protocol reports the copy consistent, every byte of `out` is written.
///
/// That guarantee, which every `assume_init` after a read rests on, holds because the protocol
/// slices the slot's words to exactly `len` (and panics if the slot has fewer: opening checked
/// that the payload size is `size_of::<T>()` or, for another version of an appendable type,
/// callers use [`sink_for`], which picks this sink only for a payload at least that large) and
/// calls the sink for every index in `0..len` before it reports a copy consistent.
///
/// The length is a compile-time constant, so small payloads unroll into straight-line loads
/// (over a runtime length, the loop kept a per-word branch and a 64-byte read took twice as
/// long).
#[inline(always)]
pub(crate) fn sink_into<T>(out: &mut MaybeUninit<T>) -> ToBytes<'_> {
    // SAFETY: `out` is `size_of::<T>()` writable bytes, private to the caller: the borrow
    // lasts as long as the protocol call the sink is passed to.
    unsafe { ToBytes::new(out.as_mut_ptr() as *mut u8, size_of::<T>()) }
}

/// A sink that fills `out` with a `T` from a slot that holds only the first `stored` bytes of
/// one (an earlier, shorter version of an appendable type), to pass with
/// `len = words(stored)`: zeroes the bytes of `out` past `stored` now, so that when the
/// protocol reports the copy consistent every byte of `out` is written, as with [`sink_into`].
///
/// # Panics
/// If `stored` is not less than `size_of::<T>()` (use [`sink_into`]).
#[inline]
pub(crate) fn sink_prefix<T>(out: &mut MaybeUninit<T>, stored: usize) -> ToBytes<'_> {
    let size = size_of::<T>();
    assert!(stored < size);
    let dst = out.as_mut_ptr() as *mut u8;
    // SAFETY: bytes `stored..size` of `out`, which is `size` writable bytes (asserted
    // `stored < size`), private to the caller.
    unsafe { core::ptr::write_bytes(dst.add(stored), 0, size - stored) };
    // SAFETY: the first `stored < size` bytes of `out`, writable and private to the caller for
    // as long as the borrow the sink holds.
    unsafe { ToBytes::new(dst, stored) }
}

/// A typed sink for a slot whose payload is `stored` bytes: with the number of words to pass.
/// The fast, compile-time-sized [`sink_into`] when the slot holds a whole `T` (the same type,
/// or a later, longer version whose prefix is read), else [`sink_prefix`].
#[inline(always)]
pub(crate) fn sink_for<T>(out: &mut MaybeUninit<T>, stored: usize) -> (usize, ToBytes<'_>) {
    if size_of::<T>() <= stored {
        (words(size_of::<T>()), sink_into(out))
    } else {
        (words(stored), sink_prefix(out, stored))
    }
}

/// A source that reads the words of `value`, to pass with `len = words(size_of::<T>())`.
///
/// `T` must have no padding (callers pass `T: SharedState`), so that every byte is initialized.
#[inline(always)]
pub(crate) fn source_of<T: crate::SharedState>(value: &T) -> FromBytes<'_> {
    // SAFETY: `value` is `size_of::<T>()` readable bytes, all initialized because
    // `T: SharedState` has no padding, immutably borrowed by the caller for the protocol call
    // the source is passed to.
    unsafe { FromBytes::new(value as *const T as *const u8, size_of::<T>()) }
}

/// A sink that fills the byte buffer `out`, to pass with `len = words(out.len())`.
#[inline]
pub(crate) fn sink_into_bytes(out: &mut [u8]) -> ToBytes<'_> {
    // SAFETY: `out` is `out.len()` writable bytes, private to the caller for the protocol call
    // the sink is passed to.
    unsafe { ToBytes::new(out.as_mut_ptr(), out.len()) }
}

/// A source that reads the words of the byte buffer `value`, to pass with
/// `len = words(value.len())`.
#[inline]
pub(crate) fn source_of_bytes(value: &[u8]) -> FromBytes<'_> {
    // SAFETY: `value` is `value.len()` initialized, readable bytes, immutably borrowed by the
    // caller for the protocol call the source is passed to.
    unsafe { FromBytes::new(value.as_ptr(), value.len()) }
}
