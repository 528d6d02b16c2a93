//! The seqlock protocol on one slot: a sequence word and the payload as 8-byte words.
//!
//! This is the reference implementation of the read and write sides described in
//! `docs/segment-format.md` (Boehm, "Can Seqlocks Get Along with Programming Language Memory
//! Models?", 2012). Payload words are copied with relaxed atomic loads and stores, never plain
//! or volatile copies: a racing non-atomic access is undefined behaviour even when the torn
//! result is thrown away. The functions are generic over [`Word`] so that the same code runs on
//! shared memory and under a model checker.

use core::sync::atomic::{self, AtomicU64, Ordering};

/// An atomic 64-bit word and the fence that goes with it.
///
/// Implemented for [`AtomicU64`]; a model checker's atomic type can implement it to check the
/// protocol itself.
pub trait Word {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, value: u64, order: Ordering);
    /// A memory fence of the same memory model as the word.
    fn fence(order: Ordering);
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
    fn fence(order: Ordering) {
        atomic::fence(order)
    }
}

/// Reads one slot: calls `sink(i, word)` for every payload word, then reports whether the copy
/// is consistent.
///
/// `expected`, when given, is the only sequence value to accept: [`complete`]`(v)` for a reader
/// that loaded `published == v` from a segment of two or more slots, so that a later version
/// the writer put in the slot after lapping the reader is refused (it is not published yet, and
/// accepting it would let the reader's next read go backwards). With one slot, pass `None`.
///
/// Returns the (even) sequence value the copy is consistent with, or `None` if a write was in
/// progress or happened during the copy, or the slot holds another version than `expected`; then
/// whatever `sink` received must be discarded. The copy never blocks.
#[inline(always)]
pub fn read_slot<W: Word>(
    seq: &W,
    words: &[W],
    expected: Option<u64>,
    mut sink: impl FnMut(usize, u64),
) -> Option<u64> {
    // A relaxed load and an acquire fence rather than an acquire load: the same ordering, and
    // also sound on a read-only mapping, where only relaxed atomic loads are guaranteed to work.
    let s1 = seq.load(Ordering::Relaxed);
    W::fence(Ordering::Acquire);
    if s1 & 1 == 1 || expected.is_some_and(|e| e != s1) {
        return None;
    }
    for (i, w) in words.iter().enumerate() {
        sink(i, w.load(Ordering::Relaxed));
    }
    // Orders the payload loads before the second sequence load: if any of them saw a store of a
    // later write, this load sees that write's odd sequence value (or later).
    W::fence(Ordering::Acquire);
    let s2 = seq.load(Ordering::Relaxed);
    (s1 == s2).then_some(s1)
}

/// The sequence value of a slot that holds version `version`, complete. While the writer
/// writes that version into the slot, the slot's sequence value is one less (odd).
///
/// Encoding the version lets a reader that loaded `published == v` tell the value of version
/// `v` apart from a later value the writer put in the same slot after lapping the reader.
#[inline(always)]
pub const fn complete(version: u64) -> u64 {
    version.wrapping_mul(2).wrapping_add(2)
}

/// Writes version `version` into one slot: marks it busy (odd), stores `source(i)` into every
/// payload word, marks it done (`complete(version)`). Returns the new sequence value.
///
/// Only one writer may call this on a slot at a time. A slot left odd by a writer that died
/// mid-write is overwritten normally by the next write.
#[inline(always)]
pub fn write_slot<W: Word>(
    seq: &W,
    words: &[W],
    version: u64,
    mut source: impl FnMut(usize) -> u64,
) -> u64 {
    let done = complete(version);
    seq.store(done.wrapping_sub(1), Ordering::Relaxed);
    // Orders the odd sequence store before the payload stores: a reader that sees any new
    // payload word and then fences sees the slot busy.
    W::fence(Ordering::Release);
    for (i, w) in words.iter().enumerate() {
        w.store(source(i), Ordering::Relaxed);
    }
    seq.store(done, Ordering::Release);
    done
}
