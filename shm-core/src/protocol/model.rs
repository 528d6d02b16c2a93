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
//! and why that is sound, is on [`Membarrier`] and [`seq_cst_rmw`]; the stream and queue models
//! (`stream/model.rs`) use the same pieces.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::model
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 3.

use super::{
    publish, read_inline, read_latest, write_initial, Announce, Inline, SlotIndex, Slots, Word,
};
use core::sync::atomic::Ordering::{self, Acquire, Relaxed, Release, SeqCst};
use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64};
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
        if order == SeqCst {
            seq_cst_rmw(|| AtomicU64::swap(self, value, order))
        } else {
            AtomicU64::swap(self, value, order)
        }
    }
    fn fence(order: Ordering) {
        fence(order)
    }
}

/// A SeqCst read-modify-write as the models run it: `rmw`, then a SeqCst fence.
///
/// Loom does not implement SeqCst accesses: it runs them as AcqRel (its documentation says so,
/// and its `seq_cst` hook is empty), which would let a SeqCst read-modify-write and the SeqCst
/// load after it take part in a store-buffering outcome the C++ model forbids: a missed wake
/// the runtime cannot have. It implements SeqCst fences. The protocol uses SeqCst
/// read-modify-writes in one pattern only: followed by SeqCst loads of other words (the
/// `Locked` publication's swap then the waiter count; a commit's swap then the producer's
/// registration; a waiter's registration then its re-check). For that pattern the single
/// total order of SeqCst operations orders the read-modify-write before the loads exactly as a
/// SeqCst fence between them does, and every target compiles the read-modify-write to a full
/// barrier (x86's lock prefix; ARMv8's acquire-release read-modify-write followed by
/// load-acquires). The fence also orders the accesses before the read-modify-write before the
/// loads after it, which the protocol's Release publications and Acquire loads already order
/// wherever it relies on them.
pub(super) fn seq_cst_rmw<T>(rmw: impl FnOnce() -> T) -> T {
    let before = rmw();
    fence(SeqCst);
    before
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` in a model: a waiter's [`call`](Self::call)
/// makes the target thread, the writer, execute a SeqCst fence at one of its
/// [`point`](Self::point)s, and returns only once it did, or once the target has
/// [`retire`](Self::retire)d. The writer never fences otherwise: its light barrier
/// (`Slots::light_barrier`) is such a point, and a no-op while nobody calls.
///
/// What makes this sound is the kernel's guarantee: on return from the call, every running
/// thread of a registered process has executed a full memory barrier at some point between the
/// call's entry and its return, and a thread not running has passed a context switch, which is
/// a full barrier, since its last access to memory; the kernel also makes a full barrier on
/// entry to and exit from the call in the calling thread. The model gives the same: a SeqCst
/// fence in the caller on entry, then one in the writer, then one in the caller on exit, in
/// that order (loom totally orders SeqCst fences in execution order, and the request and
/// acknowledgement below add the happens-before the kernel's interrupt and its wait for it
/// give). The writer's fence falls at one of its points:
///
/// - before each publication, between the publication's store of `published` and its load
///   of the waiter count (the light barrier), and after the last publication ([`retire`]).
///   Only the position of the fence relative to those two accesses decides whether a wake is
///   missed: before the store, the load after the fence sees the registration made before
///   the caller's entry fence; after the load, the caller's re-check after its exit fence sees
///   the store. Every gap between two such accesses holds a point, so every case of the real
///   barrier is one of the model's. Moving the fence past the writer's slot accesses in
///   between only adds order to accesses whose use the sequence check makes safe without it
///   (the models without waiters check exactly that, with no fence at all).
/// - A request the writer finds at no later point, because it has finished, is served by the
///   fence [`retire`] made after its last access: the real barrier would land after all of the
///   writer's accesses too, and what the waiter needs from it is only that those accesses
///   come before its exit fence.
///
/// A model whose writer is not a target (a `Locked` writer, whose process could not register;
/// the consumer of a queue, whose process need not be registered) makes a call that is the
/// caller's two fences only.
pub(super) struct Membarrier {
    /// Whether the writer is a target: then [`point`](Self::point) serves requests.
    target: bool,
    /// Calls made so far.
    requested: AtomicU32,
    /// The calls the writer has executed a barrier for.
    served: AtomicU32,
    /// Whether the writer made its last access to shared words (and its final barrier).
    retired: AtomicBool,
}

impl Membarrier {
    /// A barrier whose calls reach the writer: its process is registered.
    pub(super) fn with_target() -> Membarrier {
        Membarrier {
            target: true,
            requested: AtomicU32::new(0),
            served: AtomicU32::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// A barrier with no target thread in the model (see above), nor any point: the writer
    /// never fences.
    pub(super) fn without_target() -> Membarrier {
        Membarrier {
            target: false,
            ..Membarrier::with_target()
        }
    }

    /// The waiter's system call.
    pub(super) fn call(&self) {
        // The kernel's full barrier on entry to the call.
        fence(SeqCst);
        if self.target {
            let ticket = self.requested.fetch_add(1, Release) + 1;
            // Bounded: the writer reaches a point or retires.
            while self.served.load(Acquire) < ticket && !self.retired.load(Acquire) {
                thread::yield_now();
            }
        }
        // The kernel's full barrier on exit from the call.
        fence(SeqCst);
    }

    /// A point of the writer's instruction stream where a barrier requested by a waiter lands:
    /// a SeqCst fence if one is pending, else nothing.
    pub(super) fn point(&self) {
        if !self.target {
            return;
        }
        let requested = self.requested.load(Acquire);
        // Only the writer stores `served`.
        if requested > self.served.load(Relaxed) {
            fence(SeqCst);
            self.served.store(requested, Release);
        }
    }

    /// The writer has made its last access: its final barrier, which serves every call not
    /// served yet.
    pub(super) fn retire(&self) {
        if !self.target {
            return;
        }
        fence(SeqCst);
        self.retired.store(true, Release);
    }
}

/// What one round of a wait decided.
#[derive(Debug)]
pub(super) enum Waited<T> {
    /// The re-check found the condition true (with this value).
    Ready(T),
    /// The re-check found it false: the waiter now calls `FUTEX_WAIT(futex, word)` and sleeps,
    /// unless a wake bumps the futex word past `word`.
    Sleeps(u32),
}

/// One round of the registration protocol of `docs/segment-format.md` ("Waiting for an
/// update") as `RawReader::wait_for_update` and the stream and queue waits make it: count
/// ourselves in `waiters` (SeqCst), call `membarrier`, load the futex word (SeqCst), re-check
/// (`ready`, with SeqCst loads).
pub(super) fn wait_round<T>(
    waiters: &AtomicU32,
    barrier: &Membarrier,
    futex: &AtomicU32,
    ready: impl FnOnce() -> Option<T>,
) -> Waited<T> {
    seq_cst_rmw(|| waiters.fetch_add(1, SeqCst));
    barrier.call();
    let word = futex.load(SeqCst);
    match ready() {
        Some(value) => Waited::Ready(value),
        None => Waited::Sleeps(word),
    }
}

/// The waker's side: bumps the futex word, then `FUTEX_WAKE` (which has nothing more to model),
/// as `wake_all` does. Returns the word's new value.
pub(super) fn wake(futex: &AtomicU32) -> u32 {
    seq_cst_rmw(|| futex.fetch_add(1, SeqCst)) + 1
}

/// Checks a waiter that went to sleep on futex value `word` against the wake made when its
/// condition became true: `woke`, the word's value after that wake's bump, or `None` if no wake
/// was made. The sleep ends only if the bump came after the waiter's load of the word (the
/// word only grows: a bump to a value greater than `word`).
pub(super) fn assert_woken(word: u32, woke: Option<u32>, what: &str) {
    assert!(
        woke.is_some_and(|bumped| bumped > word),
        "missed wake: {what}; the waiter sleeps on futex value {word}, {}",
        match woke {
            None => "and no wake was made".to_string(),
            Some(bumped) => format!("and the wake bumped the word to {bumped} before it loaded"),
        }
    );
}

struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A segment with `N` slots.
struct Segment<const N: usize> {
    published: AtomicU64,
    inline: AtomicU64,
    futex: AtomicU32,
    waiters: AtomicU32,
    slots: [Slot; N],
    /// The waiters' `membarrier`.
    barrier: Membarrier,
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
    fn light_barrier(&self) {
        self.barrier.point();
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
        Self::create_with(words, Membarrier::without_target())
    }

    /// [`create`](Self::create), with `barrier` as the waiters' `membarrier`.
    fn create_with(words: usize, barrier: Membarrier) -> Self {
        let seg = Segment {
            published: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            futex: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            slots: core::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
            barrier,
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

/// Loom's model runner, with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says.
pub(super) fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder
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
        let seg = Arc::new(Segment::<N>::create_with(1, barrier));

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
