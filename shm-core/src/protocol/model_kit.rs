//! The pieces both loom models share (`model.rs`, `stream/model.rs`): loom's atomic as the
//! protocol's [`Word`], how `membarrier` and SeqCst read-modify-writes are modelled
//! ([`Membarrier`], [`seq_cst_rmw`]) and why that is sound, one round of a futex wait, and the
//! model's segment, whose words serve shared state, streams and queues alike.

use super::stream::QueueWords;
use super::{Inline, SlotIndex, Slots, Word};
use core::sync::atomic::Ordering::{self, Acquire, Relaxed, Release, SeqCst};
use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64};
use loom::thread;

/// Payload words per slot.
pub(crate) const WORDS: usize = 2;

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
pub(crate) fn seq_cst_rmw<T>(rmw: impl FnOnce() -> T) -> T {
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
/// a queue's consumer that commits with a locked instruction) makes a call that is the
/// caller's two fences only. A queue's consumer that commits without one is the target of the
/// producer's calls, as the writer is of its waiters': its points are before its commit,
/// between the commit's store and its loads ([`QueueWords::consumer_light_barrier`]), and its
/// retirement.
pub(crate) struct Membarrier {
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
    pub(crate) fn with_target() -> Membarrier {
        Membarrier {
            target: true,
            requested: AtomicU32::new(0),
            served: AtomicU32::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// A barrier with no target thread in the model (see above), nor any point: the writer
    /// never fences.
    pub(crate) fn without_target() -> Membarrier {
        Membarrier {
            target: false,
            ..Membarrier::with_target()
        }
    }

    /// The waiter's system call. A caller that is itself the target of another barrier
    /// (`own`: a queue's producer waiting for room, whose consumer may be waiting for a
    /// message at the same time) is at a point of `own` while its call waits for its target,
    /// as a thread in a system call is where the kernel's barrier reaches it, so that two
    /// calls that wait for each other's target are both served.
    pub(crate) fn call(&self, own: Option<&Membarrier>) {
        // The kernel's full barrier on entry to the call.
        fence(SeqCst);
        if self.target {
            let ticket = self.requested.fetch_add(1, Release) + 1;
            // Bounded: the writer reaches a point or retires.
            while self.served.load(Acquire) < ticket && !self.retired.load(Acquire) {
                if let Some(own) = own {
                    own.point();
                }
                thread::yield_now();
            }
        }
        // The kernel's full barrier on exit from the call.
        fence(SeqCst);
    }

    /// A point of the writer's instruction stream where a barrier requested by a waiter lands:
    /// a SeqCst fence if one is pending, else nothing.
    pub(crate) fn point(&self) {
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
    pub(crate) fn retire(&self) {
        if !self.target {
            return;
        }
        fence(SeqCst);
        self.retired.store(true, Release);
    }
}

/// What one round of a wait decided.
#[derive(Debug)]
pub(crate) enum Waited<T> {
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
pub(crate) fn wait_round<T>(
    waiters: &AtomicU32,
    barrier: &Membarrier,
    futex: &AtomicU32,
    ready: impl FnOnce() -> Option<T>,
) -> Waited<T> {
    wait_round_serving(waiters, (barrier, None), futex, ready)
}

/// [`wait_round`] by a waiter that is the target of `barriers.1` (see
/// [`Membarrier::call`]).
pub(crate) fn wait_round_serving<T>(
    waiters: &AtomicU32,
    barriers: (&Membarrier, Option<&Membarrier>),
    futex: &AtomicU32,
    ready: impl FnOnce() -> Option<T>,
) -> Waited<T> {
    seq_cst_rmw(|| waiters.fetch_add(1, SeqCst));
    barriers.0.call(barriers.1);
    let word = futex.load(SeqCst);
    match ready() {
        Some(value) => Waited::Ready(value),
        None => Waited::Sleeps(word),
    }
}

/// The waker's side: bumps the futex word, then `FUTEX_WAKE` (which has nothing more to model),
/// as `wake_all` does. Returns the word's new value.
pub(crate) fn wake(futex: &AtomicU32) -> u32 {
    seq_cst_rmw(|| futex.fetch_add(1, SeqCst)) + 1
}

/// Checks a waiter that went to sleep on futex value `word` against the wake made when its
/// condition became true: `woke`, the word's value after that wake's bump, or `None` if no wake
/// was made. The sleep ends only if the bump came after the waiter's load of the word (the
/// word only grows: a bump to a value greater than `word`).
pub(crate) fn assert_woken(word: u32, woke: Option<u32>, what: &str) {
    assert!(
        woke.is_some_and(|bumped| bumped > word),
        "missed wake: {what}; the waiter sleeps on futex value {word}, {}",
        match woke {
            None => "and no wake was made".to_string(),
            Some(bumped) => format!("and the wake bumped the word to {bumped} before it loaded"),
        }
    );
}

/// One slot: its sequence word and payload words.
pub(crate) struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A segment with `N` slots: the words of shared state (`inline`) and those of streams and
/// queues (`consumed` and the producer's waiting words) in one, each model using its own.
pub(crate) struct Segment<const N: usize> {
    pub(crate) published: AtomicU64,
    pub(crate) inline: AtomicU64,
    pub(crate) futex: AtomicU32,
    pub(crate) waiters: AtomicU32,
    pub(crate) consumed: AtomicU64,
    pub(crate) space_futex: AtomicU32,
    pub(crate) space_waiters: AtomicU32,
    pub(crate) space_wanted: AtomicU64,
    /// `writer_epoch`, for the turn-taking models.
    pub(crate) epoch: AtomicU64,
    slots: [Slot; N],
    /// The `membarrier` of the writer's (the producer's) waiters: the writer is its target.
    pub(crate) barrier: Membarrier,
    /// The `membarrier` of a producer waiting for room: the consumer is its target when it
    /// commits without a locked instruction (`Announce::Asymmetric`).
    pub(crate) space_barrier: Membarrier,
}

impl<const N: usize> Segment<N> {
    /// A segment of zeroed words whose writer's waiters call `barrier`.
    pub(crate) fn zeroed(barrier: Membarrier) -> Self {
        Segment {
            published: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            futex: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            consumed: AtomicU64::new(0),
            space_futex: AtomicU32::new(0),
            space_waiters: AtomicU32::new(0),
            space_wanted: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
            slots: core::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
            barrier,
            space_barrier: Membarrier::without_target(),
        }
    }
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

impl<const N: usize> super::turn::Epoch for Segment<N> {
    fn epoch(&self) -> &AtomicU64 {
        &self.epoch
    }
}

impl<const N: usize> QueueWords for Segment<N> {
    fn consumed(&self) -> &AtomicU64 {
        &self.consumed
    }
    fn space_waiters_registered(&self, order: Ordering) -> bool {
        self.space_waiters.load(order) != 0
    }
    fn space_wanted(&self) -> &AtomicU64 {
        &self.space_wanted
    }
    fn consumer_light_barrier(&self) {
        self.space_barrier.point();
    }
}

/// Loom's model runner, with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says.
pub(crate) fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder
}
