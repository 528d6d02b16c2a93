//! The read and write protocol, whole: a multi-slot seqlock over 8-byte words.
//!
//! Everything a reader or the writer does to shared words is here: choosing a slot for a
//! version, writing a slot and publishing it (with the check for registered waiters), reading
//! the latest published slot and deciding whether the copy is consistent, reading one known
//! version, and where a writer that takes over continues. `Reader`, `Writer` and the untyped
//! [`RawReader`](crate::RawReader) call these functions; the loom model (`model.rs`, with the
//! pieces it shares with the stream model in `model_kit.rs`) runs the same functions on loom's
//! atomics. One slot's seqlock and the slot index are in `slots.rs`, the word abstraction the
//! functions are generic over in `word.rs`, the stream and queue protocol in `stream.rs`. This is the reference implementation of
//! `docs/segment-format.md`, sections "Writing" and "Reading" (Boehm, "Can Seqlocks Get Along
//! with Programming Language Memory Models?", 2012).
//!
//! Payloads of one word (8 bytes or less) also have a copy of the latest value outside the
//! slots, the header's `inline` word ([`Inline`]): a typed read of such a payload is one acquire
//! load of it ([`read_inline`]), no seqlock at all. The slots still hold every value, for
//! versioned reads and for peers that read only the slots.
//!
//! Payload words are copied with relaxed atomic loads and stores, never plain or volatile
//! copies: a racing non-atomic access is undefined behaviour even when the torn result is
//! thrown away. Every function is generic over [`Word`], so that the same code runs on shared
//! memory and under the model checker. Large copies on shared memory go through `copy`, whose
//! assembly accesses the same bytes atomically at byte granularity at least (racing other
//! processes' 8-byte accesses: see `copy` for why that holds on the supported hardware): the
//! model's relaxed word accesses cover it, since splitting an access into smaller atomic
//! accesses between the same fences only adds torn copies, which the sequence check refuses
//! exactly as it refuses copies torn between words.

pub(crate) mod copy;
#[cfg(all(test, loom))]
mod model;
#[cfg(all(test, loom))]
mod model_kit;
#[cfg(all(test, loom))]
mod model_turns;
mod slots;
pub(crate) mod stream;
#[cfg(all(test, not(loom)))]
mod tests;
pub(crate) mod turn;
mod word;

pub(crate) use slots::{complete, read_slot, version_of, write_slot, Inline, SlotIndex, Slots};
pub(crate) use word::{load_acquire, Sink, Source, Word};

use core::sync::atomic::Ordering;

/// Reads the latest published value: loads `published`, copies the first `len` payload words
/// of its slot into `sink(i, word)`, and returns the version of the copy if it is consistent.
///
/// The version returned is the one the slot's sequence word says the copy holds: with two or
/// more slots the published version itself (no other is accepted); with one slot, whatever
/// complete version the slot held during the copy, which may be newer than the `published`
/// loaded first (the writer wrote, and perhaps published, more versions meanwhile). Either way
/// the bytes are that version's, so a caller that waits for a version after it
/// (`wait_for_update`) waits for newer bytes.
///
/// On `None` (a write was in progress or happened during the copy, or the writer lapped the
/// reader) whatever `sink` received must be discarded. Never blocks.
#[inline(always)]
pub(crate) fn read_latest<S: Slots>(s: &S, len: usize, sink: impl Sink<S::Word>) -> Option<u64> {
    let published = load_acquire(s.published());
    read_version(s, published, len, sink)
}

/// Copies version `version` out of its slot, as [`read_latest`] does; the version of the copy
/// if it is consistent: `version` itself, or on a one-slot segment `version` or a later one
/// (see [`version_of`]).
#[inline(always)]
pub(crate) fn read_version<S: Slots>(
    s: &S,
    version: u64,
    len: usize,
    mut sink: impl Sink<S::Word>,
) -> Option<u64> {
    let index = s.index();
    let (seq, words) = s.slot(index.slot_of(version));
    match index.expected(version) {
        Some(expected) => read_slot(seq, &words[..len], Some(expected), &mut sink).map(|_| version),
        None => read_slot(seq, &words[..len], None, &mut sink).map(version_of),
    }
}

/// Copies version `version` out of its slot only if the slot holds exactly that version,
/// complete, whatever the slot count: what the one writer reads back of its own value.
#[inline(always)]
pub(crate) fn read_exact_version<S: Slots>(
    s: &S,
    version: u64,
    len: usize,
    mut sink: impl Sink<S::Word>,
) -> bool {
    let (seq, words) = s.slot(s.index().slot_of(version));
    read_slot(seq, &words[..len], Some(complete(version)), &mut sink).is_some()
}

/// Salvages a value from a segment whose published slot cannot be read (damaged, or its writer
/// died mid-write to a one-slot segment): copies the slot with the highest even sequence value
/// into `sink` and reports whether that copy is consistent. Not part of the protocol: the value
/// may be older than the published one, or meaningless on a damaged segment.
pub(crate) fn read_newest_complete<S: Slots>(
    s: &S,
    len: usize,
    mut sink: impl Sink<S::Word>,
) -> bool {
    let mut best: Option<(u64, usize)> = None;
    for i in 0..s.index().count() {
        let seq = load_acquire(s.slot(i).0);
        if seq & 1 == 0 && best.is_none_or(|(b, _)| seq > b) {
            best = Some((seq, i));
        }
    }
    let Some((_, i)) = best else {
        return false;
    };
    let (seq, words) = s.slot(i);
    read_slot(seq, &words[..len], None, &mut sink).is_some()
}

/// Copies the first `len` payload words of the published slot into `sink` whatever its
/// sequence word says: the last resort of a read that must return a value. The copy may mix
/// two values if anyone writes the slot meanwhile.
pub(crate) fn copy_published<S: Slots>(s: &S, len: usize, mut sink: impl Sink<S::Word>) {
    let version = load_acquire(s.published());
    let (_, words) = s.slot(s.index().slot_of(version));
    sink.take(&words[..len]);
}

/// Writes version `version` (the one after the last published) into its slot with
/// `source(i)` as payload word `i` of the first `len` (the payload's word count), publishes
/// it as `how` says, and returns whether a waiter is registered (then the caller wakes the
/// futex).
///
/// A one-word payload's value also goes into the `inline` word, before the publication (see
/// [`store_inline`]). Only the one writer calls this.
#[inline(always)]
pub(crate) fn publish<S: Inline>(
    s: &S,
    version: u64,
    len: usize,
    mut source: impl Source<S::Word>,
    how: Announce,
) -> bool {
    let (seq, words) = s.slot(s.index().slot_of(version));
    write_slot_and_inline(s, seq, &words[..len], version, &mut source);
    announce(s, version, how)
}

/// How a writer orders its publication (the store of `published`) before its check for
/// waiters (the load of the waiter count), so that a waiter that registers at the same moment
/// is never missed: either the waiter's re-check sees the new version, or the writer sees the
/// waiter and wakes it. This is the store-buffering pattern, which needs a full barrier on
/// both sides, between each side's store and its load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announce {
    /// A SeqCst swap of `published`, then a SeqCst load of the count: the swap is the
    /// writer's barrier (one locked instruction), and pairs with the waiter's SeqCst
    /// registration and re-check.
    Locked,
    /// A Release store of `published`, a compiler-only fence, then a relaxed load of the
    /// count: no locked instruction, for writers whose process is registered as a
    /// `membarrier` target (`sys::register_as_barrier_target`). The waiter pays instead: after
    /// registering and before its re-check it makes every CPU running a registered process
    /// execute a full barrier (`sys::barrier_on_registered_processes`). That barrier falls
    /// somewhere in the writer's instruction stream: if before the store, the writer's load
    /// sees the registration; if after the store, the waiter's re-check sees the store (the
    /// barrier made it visible before the system call returned). The compiler fence keeps
    /// the compiler from moving the load before the store, where no barrier could separate
    /// them. This is `membarrier`'s asymmetric-fence pattern (liburcu, folly's
    /// `asymmetricLightBarrier`/`asymmetricHeavyBarrier`).
    Asymmetric,
}

/// Publishes version `version`, whose slot the writer has written, as `how` says, and returns
/// whether a waiter is registered (see [`Announce`]).
#[inline(always)]
pub(crate) fn announce<S: Slots>(s: &S, version: u64, how: Announce) -> bool {
    match how {
        Announce::Locked => {
            s.published().swap(version, Ordering::SeqCst);
            s.waiters_registered(Ordering::SeqCst)
        }
        Announce::Asymmetric => {
            s.published().store(version, Ordering::Release);
            s.light_barrier();
            s.waiters_registered(Ordering::Relaxed)
        }
    }
}

/// Writes version `version` into its slot (`seq`, `words`) from `source`, and a one-word
/// payload's value into the `inline` word too, after the slot.
///
/// A one-word value is read from the source once, before any store, and both stores store
/// that value: a load between the stores (the inline copy used to be loaded back from the
/// slot just written) made the publish of an 8-byte value measurably slower.
///
/// The `inline` store is a Release store, made before the publication: a reader that loads
/// `published == v` with acquire ordering then finds version `v`'s value there, or a later
/// one. A writer that dies between this store and its publication leaves a value in `inline`
/// that was never published; it is complete (one atomic word is never torn), and the next
/// writer publishes a newer one.
#[inline(always)]
fn write_slot_and_inline<S: Inline>(
    s: &S,
    seq: &S::Word,
    words: &[S::Word],
    version: u64,
    source: &mut impl Source<S::Word>,
) {
    if words.len() == 1 {
        let value = source.one_word();
        write_slot(seq, words, version, &mut |_: usize| value);
        s.inline().store(value, Ordering::Release);
    } else {
        write_slot(seq, words, version, source);
    }
}

/// Reads a one-word payload's latest value from the `inline` word into `sink`: one acquire
/// load, always consistent, never older than a version published before the load (nor than
/// an earlier `read_inline`'s value). A value stored by a writer that then died before
/// publishing it may be returned (see [`store_inline`]).
///
/// Only for segments whose payload is one word (callers check `payload_words == 1`).
#[inline(always)]
pub(crate) fn read_inline<S: Inline>(s: &S, mut sink: impl Sink<S::Word>) {
    sink.take(core::slice::from_ref(s.inline()));
    // Acquire: orders whatever the caller reads next after the load of `inline`, as an acquire
    // load would (a relaxed load and a fence: also sound on a read-only mapping).
    S::Word::fence(Ordering::Acquire);
}

/// Writes the initial value, version 0, into slot 0 (and `inline`, for a one-word payload)
/// without publishing it (`published` is 0 from creation). Only the creator calls this, before
/// the segment is ready.
pub(crate) fn write_initial<S: Inline>(s: &S, len: usize, mut source: impl Source<S::Word>) {
    let (seq, words) = s.slot(0);
    write_slot_and_inline(s, seq, &words[..len], 0, &mut source);
}

/// Where a writer that takes a segment over continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The last version used; the next write publishes `version + 1`.
    pub version: u64,
    /// The newest version whose slot holds a complete value, if any.
    pub complete: Option<u64>,
}

/// Where a writer that takes over continues, from `published` and the slots.
///
/// With one slot, readers accept any complete value in it, so a version number (and with it a
/// sequence value) must never be used twice: the previous writer may have written, or
/// half-written, the version after the last one it published, and a reader that loaded that
/// write's sequence value must not find the same value after ours. With two or more slots
/// readers accept only the published version, so rewriting an unpublished one is harmless,
/// and the published slot holds the current value.
pub(crate) fn resume<S: Slots>(s: &S) -> Resume {
    let published = load_acquire(s.published());
    if s.index().count() > 1 {
        return Resume {
            version: published,
            complete: Some(published),
        };
    }
    let seq = load_acquire(s.slot(0).0);
    let newest = seq.saturating_sub(1) / 2;
    Resume {
        version: newest.max(published),
        complete: (seq == complete(newest)).then_some(newest),
    }
}
