//! The stream and queue protocol, whole: a ring of seqlock slots holding every message in
//! order.
//!
//! Messages are numbered from 1. Message `m` lives in slot `m % N` (the [`SlotIndex`] of the
//! state protocol), and its slot's sequence word is `complete(m) = 2m + 2` once it is written,
//! `2m + 1` while it is being written: the state protocol's [`write_slot`] and [`read_slot`],
//! with the message number as the version. `published` is the number of the last message sent
//! (0: none yet), so the ring holds messages `published - N + 1 ..= published`.
//!
//! - A broadcast stream ([`send`], [`receive`]): the writer never waits and overwrites the
//!   oldest message. Each reader keeps its own cursor (the next number it wants) in its own
//!   memory and never writes shared memory; a reader that the writer laps finds the slot's
//!   sequence value changed, and moves on to the oldest message still there, so it learns
//!   exactly which messages it lost.
//! - A queue ([`try_send_queued`], [`receive_queued`], [`commit`]): the consumer stores the
//!   number of the last message it took in the segment (`consumed`, its own cache line); the
//!   producer sends message `m` only once `m - N <= consumed`, so it never overwrites a message
//!   the consumer has not taken.
//!
//! The loom model (`stream/model.rs`) runs these same functions.

#[cfg(all(test, loom))]
mod model;
#[cfg(all(test, loom))]
mod model_lanes;

use super::{
    announce, complete, load_acquire, read_slot, write_slot, Announce, Sink, Slots, Source, Word,
};
use core::sync::atomic::Ordering;

/// The words of a queue: a ring, and the consumer's cursor.
pub(crate) trait QueueWords: Slots {
    /// The number of the last message the consumer took (0: none). Written by the consumer
    /// only.
    fn consumed(&self) -> &Self::Word;
    /// Whether a producer waits for space, loaded with `order` (see [`commit`]).
    fn space_waiters_registered(&self, order: Ordering) -> bool;
    /// The `consumed` value a waiting producer needs (see [`wait_for_room`]).
    fn space_wanted(&self) -> &Self::Word;

    /// The consumer's half of the asymmetric barrier, between its store of `consumed` and its
    /// load of the producer's registration (see [`commit`]): a compiler fence, as the
    /// writer's [`Slots::light_barrier`] is, which a producer's `membarrier` turns into a full
    /// barrier when it matters (and, under the model checker, one of the points where the
    /// producer's modelled `membarrier` lands).
    #[inline(always)]
    fn consumer_light_barrier(&self) {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

/// Sends message `number` (the one after the last sent) of a broadcast stream: writes it into
/// its slot, overwriting message `number - N`, and publishes it. Returns whether a waiter is
/// registered (then the caller wakes the futex).
///
/// Only the one writer calls this. Publishing is the state protocol's [`announce`], as `how`
/// says: the store of `published` followed by the waiter check, so a send makes no syscall
/// while nobody waits and never misses a waiter. (Rings have no `inline` word: a reader wants
/// every message, not the latest.)
#[inline(always)]
pub(crate) fn send<S: Slots>(
    s: &S,
    number: u64,
    len: usize,
    mut source: impl Source<S::Word>,
    how: Announce,
) -> bool {
    let (seq, words) = s.slot(s.index().slot_of(number));
    write_slot(seq, &words[..len], number, &mut source);
    announce(s, number, how)
}

/// The number of the last message sent, as a writer that takes over a ring (a stream's
/// writer, a queue's producer, a lane's next producer) continues after: the last complete
/// message, `published`. A writer that died in the middle of a send left that message
/// unpublished, so its number goes to the new writer's first message: readers see neither a
/// gap nor a duplicate. The caller holds the writer lease, taken after the previous writer's
/// lease was released (the kernel orders the release before the take).
#[inline]
pub(crate) fn take_over<S: Slots>(s: &S) -> u64 {
    // Acquire: the slots of every message up to `published` are complete before the new
    // writer overwrites any of them.
    load_acquire(s.published())
}

/// Receives the oldest message numbered `next` or later that the ring still holds: copies its
/// first `len` payload words into `sink(i, word)` and returns its number, or `None` when no
/// message numbered `next` or later has been published yet.
///
/// A returned number greater than `next` means that messages `next .. number` were
/// overwritten before this reader got to them: `number - next` messages lost, exactly. What
/// `sink` received is the message only when a number is returned; copies of overwritten
/// messages are discarded. Never blocks, never writes shared memory.
#[inline(always)]
pub(crate) fn receive<S: Slots>(
    s: &S,
    mut next: u64,
    len: usize,
    mut sink: impl Sink<S::Word>,
) -> Option<u64> {
    let index = s.index();
    let capacity = index.count() as u64;
    loop {
        // Acquire: pairs with the writer's publication, so that the slot of every message up to
        // `published` shows that message complete, or a later one.
        let published = load_acquire(s.published());
        if next > published {
            return None;
        }
        // The ring holds messages `published - capacity + 1 ..= published`; older ones are gone.
        let number = next.max(published.saturating_sub(capacity - 1));
        let (seq, words) = s.slot(index.slot_of(number));
        if read_slot(seq, &words[..len], Some(complete(number)), &mut sink).is_some() {
            return Some(number);
        }
        // Message `number` was published, so its slot held it complete: the sequence value
        // changed because the writer is writing, or wrote, message `number + capacity` or a
        // later one there. It is lost; go on with the next.
        next = number + 1;
    }
}

/// Sends message `number` (the one after the last sent) of a queue if there is room: the slot
/// it goes to must hold a message the consumer took. Returns `None` when the queue is full,
/// else whether a waiter is registered (then the caller wakes the futex).
///
/// `consumed_seen` is the producer's copy of `consumed` from its last load: while it shows
/// room, `consumed` (the consumer's cache line) is not loaded again.
///
/// Only the one producer calls this.
#[inline(always)]
pub(crate) fn try_send_queued<S: QueueWords>(
    s: &S,
    number: u64,
    consumed_seen: &mut u64,
    len: usize,
    source: impl Source<S::Word>,
    how: Announce,
) -> Option<bool> {
    let capacity = s.index().count() as u64;
    if number.wrapping_sub(*consumed_seen) > capacity {
        // Acquire: pairs with the consumer's commit, so that the consumer's copy of the
        // message this one overwrites is complete before the overwrite begins (an earlier
        // acquire load of a smaller value covers the messages it freed).
        *consumed_seen = load_acquire(s.consumed());
        if number.wrapping_sub(*consumed_seen) > capacity {
            return None;
        }
    }
    Some(send(s, number, len, source, how))
}

/// Whether message `number` fits in the queue, as [`try_send_queued`] decides, with a SeqCst
/// load for a producer that registered as a waiter (see [`commit`]).
#[inline]
pub(crate) fn has_room<S: QueueWords>(s: &S, number: u64) -> bool {
    let consumed = s.consumed().load(Ordering::SeqCst);
    number.wrapping_sub(consumed) <= s.index().count() as u64
}

/// Records, before a producer registers as a waiter, the `consumed` value that makes room for
/// message `number`, so that the consumer wakes it once, when a commit reaches that value.
#[inline]
pub(crate) fn wait_for_room<S: QueueWords>(s: &S, number: u64) {
    let wanted = number.saturating_sub(s.index().count() as u64);
    s.space_wanted().swap(wanted, Ordering::SeqCst);
}

/// What [`receive_queued`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// The consumer took everything published.
    Empty,
    /// Message `number`, copied into the sink; [`commit`] it to take it.
    Message(u64),
    /// The slot of the next message does not hold it: a peer broke the protocol (the producer
    /// never overwrites a message the consumer has not taken).
    Broken,
}

/// Copies message `next` of a queue, the one after the last the consumer took, into `sink`,
/// without taking it: the consumer [`commit`]s it after the copy (or after copying several).
///
/// Only the one consumer calls this; it keeps `next` itself (loaded from `consumed` when it
/// opened the queue, since only the consumer stores `consumed`), and `published_seen`, its
/// copy of `published` from its last load: while that shows message `next` published,
/// `published` (the producer's cache line) is not loaded again.
#[inline(always)]
pub(crate) fn receive_queued<S: QueueWords>(
    s: &S,
    next: u64,
    published_seen: &mut u64,
    len: usize,
    mut sink: impl Sink<S::Word>,
) -> Queued {
    let index = s.index();
    if next > *published_seen {
        // Acquire: pairs with the producer's publication, so that the slot shows the message
        // complete (an earlier acquire load of a larger value covers this one).
        *published_seen = load_acquire(s.published());
        if next > *published_seen {
            return Queued::Empty;
        }
    }
    let (seq, words) = s.slot(index.slot_of(next));
    match read_slot(seq, &words[..len], Some(complete(next)), &mut sink) {
        Some(_) => Queued::Message(next),
        None => Queued::Broken,
    }
}

/// Takes every message up to `number` (copied by [`receive_queued`]): stores it as
/// `consumed`, which frees their slots for the producer. `taken` is the consumer's previous
/// `consumed` (only the consumer stores it, holding the consumer lease, so its own copy is
/// the stored value: a consumer that takes over loaded it when it took the lease). Returns
/// whether a waiting producer needs waking: one is registered and this commit is the one that
/// makes the room it waits for (earlier commits made too little, later ones find it woken
/// already), so a consumer that keeps up makes one syscall per wait of the producer, not one
/// per message.
///
/// The store is a Release store (the copies are complete before the producer can overwrite
/// the slots), ordered before the check of the producer's registration as `how` says, the
/// store-buffering pairing [`announce`] makes with a reader, here with a waiting producer's
/// SeqCst `space_wanted` store ([`wait_for_room`]), registration, barrier and re-check
/// ([`has_room`]):
///
/// - `Locked`: a SeqCst swap of `consumed`, then SeqCst loads of the registration and the
///   wanted value. The swap is the consumer's full barrier: the first commit after the
///   producer's re-check that reaches the wanted value sees its registration and wanted
///   value, with or without the producer's `membarrier`.
/// - `Asymmetric`: a Release store, a compiler fence ([`QueueWords::consumer_light_barrier`]),
///   then relaxed loads: no locked instruction, for a consumer whose process is registered as
///   a `membarrier` target. The waiting producer's `membarrier`, made after it registered and
///   before its re-check, lands either before the store (then the loads after it see the
///   registration and the wanted value the producer stored before its call) or after it (then
///   the store is visible to the re-check).
#[inline(always)]
pub(crate) fn commit<S: QueueWords>(s: &S, taken: u64, number: u64, how: Announce) -> bool {
    let wanted = match how {
        Announce::Locked => {
            s.consumed().swap(number, Ordering::SeqCst);
            if !s.space_waiters_registered(Ordering::SeqCst) {
                return false;
            }
            s.space_wanted().load(Ordering::SeqCst)
        }
        Announce::Asymmetric => {
            s.consumed().store(number, Ordering::Release);
            s.consumer_light_barrier();
            if !s.space_waiters_registered(Ordering::Relaxed) {
                return false;
            }
            s.space_wanted().load(Ordering::Relaxed)
        }
    };
    taken < wanted && number >= wanted
}
