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
//! The waiting models ([`waiting`]) add a waiter, which registers, makes its `membarrier` call
//! and re-checks as `wait_for_update` does, and check that it is never left asleep: either its
//! re-check sees the new version, or the publication sees it registered and bumps the futex
//! word after the waiter loaded it. How `membarrier` and SeqCst read-modify-writes are modelled,
//! and why that is sound, is on `Membarrier` and `seq_cst_rmw` (`model_kit.rs`, whose pieces the
//! stream and queue models of `stream/model.rs` use too).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::model
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 3.

use super::model_kit::{
    assert_woken, builder, wait_round, wake, Membarrier, Segment, Waited, WORDS,
};
use super::{publish, read_inline, read_latest, write_initial, Announce};
use core::sync::atomic::Ordering::SeqCst;
use loom::sync::Arc;
use loom::thread;

impl<const N: usize> Segment<N> {
    /// A shared-state segment whose payload is `words` words (1: the `inline` word is in use),
    /// holding version 0 as `Segment::create` leaves it.
    fn state(words: usize) -> Self {
        Self::state_with(words, Membarrier::without_target())
    }

    /// [`state`](Self::state), with `barrier` as the waiters' `membarrier`.
    fn state_with(words: usize, barrier: Membarrier) -> Self {
        let seg = Segment::zeroed(barrier);
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
    builder().check(move || {
        let seg = Arc::new(Segment::<N>::state(words));

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

/// One writer publishing versions `1..=writes` of a one-word payload into `N` slots as `how`
/// says, waking when its publication reports a waiter; one waiter waiting for a version after
/// 0, as `wait_for_update(0, ..)` does. Either the waiter's re-check finds version 1 or later,
/// and its next read returns that version or a later one, complete; or the waiter sleeps, and
/// then the publication of version 1 must have seen it registered and bumped the futex word
/// after the waiter loaded it.
///
/// An `Asymmetric` writer is a `membarrier` target: its only full barriers are the ones the
/// waiter's call places in it. A `Locked` writer is none: its SeqCst swap pairs with the
/// waiter's SeqCst registration and re-check.
fn waiting<const N: usize>(how: Announce, writes: u64) {
    builder().check(move || {
        let barrier = match how {
            Announce::Asymmetric => Membarrier::with_target(),
            Announce::Locked => Membarrier::without_target(),
        };
        let seg = Arc::new(Segment::<N>::state_with(1, barrier));

        let waiter = {
            let seg = seg.clone();
            thread::spawn(move || {
                let waited = wait_round(&seg.waiters, &seg.barrier, &seg.futex, || {
                    let version = seg.published.load(SeqCst);
                    (version > 0).then_some(version)
                });
                if let Waited::Ready(seen) = waited {
                    let mut copy = 0;
                    let read = read_latest(&*seg, 1, |_, w| copy = w);
                    assert!(
                        read.is_some_and(|version| version >= seen && copy == version),
                        "after waiting for version {seen}: read {read:?}, value {copy}"
                    );
                }
                waited
            })
        };

        let mut woke = vec![None; writes as usize + 1];
        for version in 1..=writes {
            seg.barrier.point();
            if publish(&*seg, version, 1, |_| version, how) {
                woke[version as usize] = Some(wake(&seg.futex));
            }
        }
        seg.barrier.retire();

        if let Waited::Sleeps(word) = waiter.join().unwrap() {
            assert_woken(word, woke[1], "waiting for version 1");
        }
    });
}

/// A waiter and a writer without a locked instruction: the waiter's `membarrier` is the only
/// full barrier on the writer's side. Two publications, so that the barrier may land in
/// either, between them, or after both.
#[test]
fn waiting_asymmetric() {
    waiting::<2>(Announce::Asymmetric, 2);
}

/// A waiter and a writer whose process could not register for `membarrier`: the writer's
/// SeqCst swap is its barrier.
#[test]
fn waiting_locked() {
    waiting::<2>(Announce::Locked, 2);
}
