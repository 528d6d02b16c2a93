//! The words the protocol works on: [`Word`], an atomic 64-bit word and its fence (shared
//! memory's [`AtomicU64`], or loom's under the model checker), and where a read puts the words
//! it copies ([`Sink`]) and a write takes them from ([`Source`]).

use super::copy;
use core::sync::atomic::{self, AtomicU64, Ordering};

/// An atomic 64-bit word and the fence that goes with it: [`AtomicU64`] in shared memory,
/// loom's atomic under the model checker.
pub(crate) trait Word {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, value: u64, order: Ordering);
    /// Atomic swap.
    fn swap(&self, value: u64, order: Ordering) -> u64;
    /// A memory fence of the same memory model as the word.
    fn fence(order: Ordering);

    /// Copies `words` into `dst` (`words.len() * 8` bytes) as relaxed loads of every word:
    /// the portable path, which the loom model runs. [`AtomicU64`] overrides it with a bulk
    /// copy of the same semantics (see `copy`).
    ///
    /// # Safety
    /// `dst` must be valid for writes of `words.len() * 8` bytes, apart from `words` and
    /// private to the caller during the call.
    #[inline(always)]
    unsafe fn load_into(words: &[Self], dst: *mut u8)
    where
        Self: Sized,
    {
        for (i, w) in words.iter().enumerate() {
            // SAFETY: word `i < words.len()` lies within the bytes the caller guarantees.
            unsafe {
                (dst as *mut u64)
                    .add(i)
                    .write_unaligned(w.load(Ordering::Relaxed))
            };
        }
    }

    /// Copies `words.len() * 8` bytes from `src` into `words` as relaxed stores of every word:
    /// the portable path; see [`load_into`](Self::load_into).
    ///
    /// # Safety
    /// `src` must be valid for reads of `words.len() * 8` initialized bytes, apart from
    /// `words` and not written by anyone else during the call.
    #[inline(always)]
    unsafe fn store_from(words: &[Self], src: *const u8)
    where
        Self: Sized,
    {
        for (i, w) in words.iter().enumerate() {
            // SAFETY: word `i < words.len()` lies within the bytes the caller guarantees.
            w.store(
                unsafe { (src as *const u64).add(i).read_unaligned() },
                Ordering::Relaxed,
            );
        }
    }
}

impl Word for AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline(always)]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order)
    }
    #[inline(always)]
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::swap(self, value, order)
    }
    #[inline(always)]
    fn fence(order: Ordering) {
        atomic::fence(order)
    }
    #[inline(always)]
    unsafe fn load_into(words: &[Self], dst: *mut u8) {
        // SAFETY: forwarded from the caller: `dst` is `words.len() * 8` private writable bytes.
        unsafe { copy::load_words(words, dst) }
    }
    #[inline(always)]
    unsafe fn store_from(words: &[Self], src: *const u8) {
        // SAFETY: forwarded from the caller: `src` is `words.len() * 8` readable bytes nobody
        // writes during the call.
        unsafe { copy::store_words(src, words) }
    }
}

/// Where a read puts the payload words of a slot: a closure `sink(i, word)` called per word,
/// or a byte buffer filled by [`Word::load_into`] (see `payload`).
pub(crate) trait Sink<W: Word> {
    /// Copies out every word of `words`, which may be changing under the copy.
    fn take(&mut self, words: &[W]);
}

impl<W: Word, F: FnMut(usize, u64)> Sink<W> for F {
    #[inline(always)]
    fn take(&mut self, words: &[W]) {
        for (i, w) in words.iter().enumerate() {
            self(i, w.load(Ordering::Relaxed));
        }
    }
}

/// Where a write takes the payload words from: a closure `source(i)` called per word, or a
/// byte buffer copied by [`Word::store_from`] (see `payload`).
pub(crate) trait Source<W: Word> {
    /// Stores every word of `words`.
    fn give(&mut self, words: &[W]);

    /// The value of a one-word payload: what `give` would store into one word. Read before
    /// the writer stores anything, so that the publish path stores a value it holds rather
    /// than loading it between its stores.
    fn one_word(&mut self) -> u64;
}

impl<W: Word, F: FnMut(usize) -> u64> Source<W> for F {
    #[inline(always)]
    fn give(&mut self, words: &[W]) {
        for (i, w) in words.iter().enumerate() {
            w.store(self(i), Ordering::Relaxed);
        }
    }
    #[inline(always)]
    fn one_word(&mut self) -> u64 {
        self(0)
    }
}

/// An acquire load, done as a relaxed load followed by an acquire fence: the same ordering, and
/// also sound on a read-only mapping, where only relaxed atomic loads are guaranteed to work.
#[inline(always)]
pub(crate) fn load_acquire<W: Word>(w: &W) -> u64 {
    let v = w.load(Ordering::Relaxed);
    W::fence(Ordering::Acquire);
    v
}
