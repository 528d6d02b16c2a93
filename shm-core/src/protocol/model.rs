//! Model check of the protocol: the functions of `protocol` that `Reader` and `Writer` call,
//! run on loom's atomics under every interleaving and every value the C++11 memory model lets a
//! relaxed or acquire load return (within a preemption bound).
//!
//! The model is a segment of `N` slots of a few payload words, created as `Segment::create`
//! creates one (version 0 in slot 0 through [`write_initial`]). The writer publishes values
//! whose every word holds the value's version through [`publish`]; the reader reads through
//! [`read_latest`] and checks every copy the protocol accepts: all words equal (not torn), never
//! older than the version published when the read started, never older than its previous copy.
//! Slot choice, the expected-version rule and publishing are the runtime's own code. For
//! one-word payloads the reader also reads the `inline` word through [`read_inline`], with the
//! same checks.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::model
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 3.

use super::{
    publish, read_inline, read_latest, write_initial, Announce, Inline, SlotIndex, Slots, Word,
};
use core::sync::atomic::Ordering;
use loom::sync::atomic::{fence, AtomicU32, AtomicU64};
use loom::sync::Arc;
use loom::thread;

/// Payload words per slot.
const WORDS: usize = 2;

impl Word for AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order)
    }
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        AtomicU64::swap(self, value, order)
    }
    fn fence(order: Ordering) {
        fence(order)
    }
}

struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A segment with `N` slots.
struct Segment<const N: usize> {
    published: AtomicU64,
    inline: AtomicU64,
    waiters: AtomicU32,
    slots: [Slot; N],
}

impl<const N: usize> Slots for Segment<N> {
    type Word = AtomicU64;
    fn index(&self) -> SlotIndex {
        SlotIndex::new(N)
    }
    fn published(&self) -> &AtomicU64 {
        &self.published
    }
    fn slot(&self, i: usize) -> (&AtomicU64, &[AtomicU64]) {
        (&self.slots[i].seq, &self.slots[i].words)
    }
    fn waiters_registered(&self, order: Ordering) -> bool {
        self.waiters.load(order) != 0
    }
}

impl<const N: usize> Inline for Segment<N> {
    fn inline(&self) -> &AtomicU64 {
        &self.inline
    }
}

impl<const N: usize> Segment<N> {
    /// A segment whose payload is `words` words (1: the `inline` word is in use).
    fn create(words: usize) -> Self {
        let seg = Segment {
            published: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            slots: core::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
        };
        write_initial(&seg, words, |_| 0);
        seg
    }
}

/// What the reader checks about the copies it accepts.
#[derive(Clone, Copy)]
enum Check {
    /// Each copy on its own: not torn, and not older than the version published when the read
    /// started.
    EachCopy,
    /// Also across copies: never older than the previous accepted copy.
    AcrossCopies,
}

/// How the reader reads.
#[derive(Clone, Copy)]
enum Read {
    /// The slots, [`read_latest`], of a payload of `WORDS` words.
    Slots,
    /// The `inline` word, [`read_inline`], of a one-word payload.
    Inline,
}

/// One writer publishing versions `1..=writes`, one reader making `attempts` read attempts and
/// checking every accepted copy.
fn model<const N: usize>(writes: u64, attempts: usize, check: Check) {
    model_reading::<N>(Read::Slots, writes, attempts, check)
}

/// [`model`], reading as `read` says.
fn model_reading<const N: usize>(read: Read, writes: u64, attempts: usize, check: Check) {
    let words = match read {
        Read::Slots => WORDS,
        Read::Inline => 1,
    };
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(move || {
        let seg = Arc::new(Segment::<N>::create(words));

        let reader = {
            let seg = seg.clone();
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..attempts {
                    let mut copy = [0u64; WORDS];
                    let version = match read {
                        Read::Slots => {
                            let Some(version) = read_latest(&*seg, WORDS, |i, w| copy[i] = w)
                            else {
                                continue;
                            };
                            version
                        }
                        Read::Inline => {
                            // What a reader that learnt of version `published` (by
                            // `wait_for_update`, or an earlier read) then reads.
                            let published = super::load_acquire(&seg.published);
                            read_inline(&*seg, |_, w| copy = [w; WORDS]);
                            published
                        }
                    };
                    let value = copy[0];
                    assert!(
                        copy.iter().all(|&w| w == value),
                        "torn read accepted: {copy:?} (slots: {N}, published: {version})"
                    );
                    assert!(
                        value >= version,
                        "stale read accepted: value {value} but published {version} (slots: {N})"
                    );
                    if let Check::AcrossCopies = check {
                        assert!(
                            value >= last,
                            "read went backwards: {value} after {last} (slots: {N})"
                        );
                    }
                    last = value;
                }
            })
        };

        for version in 1..=writes {
            let wake = publish(&*seg, version, words, |_| version, Announce::Asymmetric);
            assert!(!wake, "nobody waits in this model");
        }
        reader.join().unwrap();
    });
}

/// The classic seqlock: every write goes to the one slot the reader reads, so successive copies
/// also come from one location and cannot go backwards.
#[test]
fn one_slot() {
    model::<1>(2, 3, Check::AcrossCopies);
}

/// The default geometry: the reader reads the last complete slot; a copy can be torn only by
/// a writer that laps it, which three writes do (slot 0 holds versions 0 and 2).
#[test]
fn two_slots() {
    model::<2>(3, 2, Check::EachCopy);
}

/// A reader that loads `published == 0` and is then lapped may read slot 0 after the writer
/// completed version 2 in it but before it published 2: a consistent copy of an unpublished
/// value. Accepting it would let the next read (`published == 1`) go backwards; the sequence
/// value, which encodes the version, rejects it.
#[test]
fn two_slots_reads_never_go_backwards() {
    model::<2>(3, 2, Check::AcrossCopies);
}

/// Three slots, as `Options::slots(3)` makes: slot choice by `%` without a mask.
#[test]
fn three_slots_reads_never_go_backwards() {
    model::<3>(4, 2, Check::AcrossCopies);
}

/// Four slots, the default: slot choice by mask, and a reader lapped only after three writes.
#[test]
fn four_slots_reads_never_go_backwards() {
    model::<4>(5, 2, Check::AcrossCopies);
}

/// A one-word payload read from the `inline` word: never older than the version published
/// before the read, never older than the previous read. Two slots, so that the slots' lapping
/// is in the interleavings too (the `inline` word does not depend on it).
#[test]
fn inline_word_reads_never_go_backwards() {
    model_reading::<2>(Read::Inline, 3, 2, Check::AcrossCopies);
}
