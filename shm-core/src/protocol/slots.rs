//! One slot of the multi-slot seqlock, and the segment's slots as the protocol sees them:
//! [`Slots`] (with the `inline` word of one-word payloads, [`Inline`]), which slot holds which
//! version ([`SlotIndex`]), the sequence value of a complete version, and reading and writing
//! one slot.

use super::{load_acquire, Sink, Source, Word};
use core::sync::atomic::{self, Ordering};

/// The words of a segment the protocol works on: `published`, the slots, and whether anybody
/// waits for a publication.
pub(crate) trait Slots {
    /// The atomic word type.
    type Word: Word;
    /// The slot count, and which slot holds which version.
    fn index(&self) -> SlotIndex;
    /// The publish counter.
    fn published(&self) -> &Self::Word;
    /// Slot `i`'s sequence word and payload words (`i` < the slot count).
    fn slot(&self, i: usize) -> (&Self::Word, &[Self::Word]);
    /// Whether a waiter is registered, loaded with `order` (see [`announce`]).
    fn waiters_registered(&self, order: Ordering) -> bool;

    /// The writer's half of the asymmetric barrier, between its store of `published` and its
    /// load of the waiter count (see [`Announce::Asymmetric`]): a compiler fence, which a
    /// waiter's `membarrier` turns into a full barrier when it matters.
    ///
    /// Never a full fence, under the model checker either: there the model's segment makes it
    /// one of the points where a waiter's modelled `membarrier` lands (`model.rs`, `Membarrier`),
    /// so that the writer executes a full barrier only when a waiter asked for one.
    #[inline(always)]
    fn light_barrier(&self) {
        atomic::compiler_fence(Ordering::SeqCst);
    }
}

/// The words of a shared-state segment (not a stream or queue): the slots, and the `inline`
/// word that holds the latest value of a one-word payload.
pub(crate) trait Inline: Slots {
    /// The header's `inline` word.
    fn inline(&self) -> &Self::Word;
}

/// The slot count, and which slot holds which version: version `v` lives in slot
/// `v % count`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotIndex {
    count: u64,
    /// `count - 1` when `count` is a power of two, else 0.
    mask: u64,
}

impl SlotIndex {
    /// The index of `count` slots (1 or more).
    pub fn new(count: usize) -> SlotIndex {
        let count = count as u64;
        let mask = if count.is_power_of_two() {
            count - 1
        } else {
            0
        };
        SlotIndex { count, mask }
    }

    /// The number of slots.
    pub fn count(self) -> usize {
        self.count as usize
    }

    /// The slot that holds version `version`.
    #[inline(always)]
    pub fn slot_of(self, version: u64) -> usize {
        // `mask + 1 == count` exactly when the count is a power of two (1 included): one
        // comparison on the read path, and no division for the usual counts.
        (if self.mask.wrapping_add(1) == self.count {
            version & self.mask
        } else {
            version % self.count
        }) as usize
    }

    /// The sequence value a reader of version `version` accepts: with two or more slots only
    /// `complete(version)`, so that a later value the writer put in the same slot after lapping
    /// the reader is refused (it is not published yet, and returning it would let the next
    /// read go backwards); with one slot any even value (`None`), since that slot only ever
    /// moves forward.
    #[inline(always)]
    pub fn expected(self, version: u64) -> Option<u64> {
        (self.count > 1).then(|| complete(version))
    }
}

/// The sequence value of a slot that holds version `version`, complete. While the writer
/// writes that version into the slot, the slot's sequence value is one less (odd).
///
/// Encoding the version lets a reader that loaded `published == v` tell the value of version
/// `v` apart from a later value the writer put in the same slot after lapping the reader.
#[inline(always)]
pub(crate) const fn complete(version: u64) -> u64 {
    version.wrapping_mul(2).wrapping_add(2)
}

/// The version a complete (even) sequence value `seq` says its slot holds: the inverse of
/// [`complete`]. A sequence value of 0, which no write produces (only a hostile peer), gives 0.
#[inline(always)]
pub(crate) const fn version_of(seq: u64) -> u64 {
    (seq / 2).saturating_sub(1)
}

/// Reads one slot: hands every payload word to `sink`, then reports whether the copy
/// is consistent: the (even) sequence value it is consistent with, or `None`.
///
/// `expected`, when given, is the only sequence value to accept (see [`SlotIndex::expected`]).
#[inline(always)]
pub(crate) fn read_slot<W: Word>(
    seq: &W,
    words: &[W],
    expected: Option<u64>,
    sink: &mut impl Sink<W>,
) -> Option<u64> {
    // A relaxed load and an acquire fence rather than an acquire load: the same ordering, and
    // also sound on a read-only mapping (see `load_acquire`).
    let s1 = load_acquire(seq);
    if s1 & 1 == 1 || expected.is_some_and(|e| e != s1) {
        return None;
    }
    sink.take(words);
    // Orders the payload loads before the second sequence load: if any of them saw a store of a
    // later write, this load sees that write's odd sequence value (or later).
    W::fence(Ordering::Acquire);
    let s2 = seq.load(Ordering::Relaxed);
    (s1 == s2).then_some(s1)
}

/// Writes version `version` into one slot: marks it busy (odd), stores every payload word
/// from `source`, marks it done (`complete(version)`).
///
/// Only one writer may call this on a slot at a time. A slot left odd by a writer that died
/// mid-write is overwritten normally by the next write.
#[inline(always)]
pub(crate) fn write_slot<W: Word>(seq: &W, words: &[W], version: u64, source: &mut impl Source<W>) {
    let done = complete(version);
    seq.store(done.wrapping_sub(1), Ordering::Relaxed);
    // Orders the odd sequence store before the payload stores: a reader that sees any new
    // payload word and then fences sees the slot busy.
    W::fence(Ordering::Release);
    source.give(words);
    seq.store(done, Ordering::Release);
}
