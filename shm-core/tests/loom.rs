#![cfg(loom)]
//! Model check of the multi-slot seqlock: the `shm_core::seqlock` functions the runtime uses,
//! run on loom's atomics, under every interleaving and every value the C++11 memory model lets
//! a relaxed or acquire load return (within a preemption bound).
//!
//! The model mirrors a segment: a `published` counter and N slots, each a sequence word and a
//! few payload words. The writer publishes values whose every word holds the value's counter,
//! writing version `v` into slot `v % N` and then storing `v` to `published` with Release, as
//! `Writer::write` does. The reader loads `published` with Acquire, reads slot `v % N` as
//! `Reader::read` does, and checks every copy the protocol accepts: all words equal (not torn),
//! never older than the published version it started from, never older than its previous copy.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --test loom --target-dir target/loom
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 2.

use core::sync::atomic::Ordering;
use loom::sync::atomic::{fence, AtomicU64};
use loom::sync::Arc;
use loom::thread;
use shm_core::seqlock::{self, Word};

/// Payload words per slot.
const WORDS: usize = 2;

/// A loom atomic with the seqlock's word interface.
struct LoomWord(AtomicU64);

impl LoomWord {
    fn new(value: u64) -> Self {
        LoomWord(AtomicU64::new(value))
    }
}

impl Word for LoomWord {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }
    fn fence(order: Ordering) {
        fence(order)
    }
}

struct Slot {
    seq: LoomWord,
    words: [LoomWord; WORDS],
}

/// A segment with `N` slots, created holding version 0 in slot 0 (as `Segment::create` does).
struct Segment<const N: usize> {
    published: AtomicU64,
    slots: [Slot; N],
}

impl<const N: usize> Segment<N> {
    fn create() -> Self {
        let seg = Segment {
            published: AtomicU64::new(0),
            slots: core::array::from_fn(|_| Slot {
                seq: LoomWord::new(0),
                words: core::array::from_fn(|_| LoomWord::new(0)),
            }),
        };
        seqlock::write_slot(&seg.slots[0].seq, &seg.slots[0].words, 0, |_| 0);
        seg
    }

    /// `Writer::write` of the value whose every word is `version`.
    fn write(&self, version: u64) {
        let slot = &self.slots[(version % N as u64) as usize];
        seqlock::write_slot(&slot.seq, &slot.words, version, |_| version);
        self.published.store(version, Ordering::Release);
    }

    /// One attempt of `Reader::read`: the published version and the copy, if consistent.
    fn attempt(&self) -> (u64, Option<[u64; WORDS]>) {
        let version = self.published.load(Ordering::Acquire);
        let slot = &self.slots[(version % N as u64) as usize];
        let mut copy = [0u64; WORDS];
        let expected = (N > 1).then(|| seqlock::complete(version));
        let ok = seqlock::read_slot(&slot.seq, &slot.words, expected, |i, w| copy[i] = w);
        (version, ok.map(|_| copy))
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

/// One writer publishing versions `1..=writes`, one reader making `attempts` read attempts and
/// checking every accepted copy.
fn model<const N: usize>(writes: u64, attempts: usize, check: Check) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(move || {
        let seg = Arc::new(Segment::<N>::create());

        let reader = {
            let seg = seg.clone();
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..attempts {
                    let (version, copy) = seg.attempt();
                    let Some(copy) = copy else { continue };
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
            seg.write(version);
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
