//! The start of a turn of a turn-taking writer (`docs/segment-format.md`, "Turn-taking
//! writers"), which holds the turn lock: where it continues, and what it repairs when the lock's
//! previous owner died holding it. The turn then publishes with the unchanged write protocol
//! ([`publish`](super::publish)), so readers never know writers take turns.
//!
//! The runtime (`RawWriter::begin_turn`) and the loom model (`model_turns.rs`) run this same
//! function; the lock itself (a robust pthread mutex in the runtime, a model of its owner-died
//! states in the model) is theirs.

use super::{load_acquire, read_exact_version, Sink, Slots, Word};
use core::sync::atomic::Ordering;

/// The words of a segment a turn touches beyond the slots: the writer epoch.
pub(crate) trait Epoch: Slots {
    /// `writer_epoch`: 1 for the creator, one more for each takeover or recovery.
    fn epoch(&self) -> &Self::Word;
}

/// How the turn lock was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// From an owner that released it: everything it did is complete.
    Clean,
    /// From an owner that died holding it (`EOWNERDEAD`), at any point of its turn: maybe in
    /// the middle of writing a slot (left odd), maybe between its publication and its wake.
    OwnerDied,
}

/// Why a turn could not start (the lock is released, consistent, either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Recovering from a dead owner needs a new epoch and the epoch is at its maximum (only a
    /// hostile peer writes that).
    EpochAtMax,
    /// The published slot does not hold the published version, complete: a peer damaged it.
    Damaged,
}

/// Starts a turn: the lock is held (`taken` says how). Copies the current value, the published
/// version, into `sink` (`len` words) and returns that version: the turn publishes the next.
///
/// Every turn continues from `published`, whoever wrote it: other writers published since this
/// one's last turn. With two or more slots (turn-taking segments have at least two) readers
/// accept only the published version, so a slot a dead owner left odd, with a version it never
/// published, is simply written again by the next publication, exactly as after a takeover.
///
/// After a dead owner (`Taken::OwnerDied`) it does what a takeover does, in this order: a new
/// `writer_epoch`; then, once the current value is read, `wake` (the owner may have died
/// between publishing and waking its waiters) and `repair` (the caller marks the lock
/// consistent: only now, so that a writer that dies while recovering leaves the lock to be
/// recovered again). Both run even when the turn is refused, so that the lock is never left
/// inconsistent.
pub(crate) fn begin_turn<S: Epoch>(
    s: &S,
    taken: Taken,
    len: usize,
    sink: impl Sink<S::Word>,
    wake: impl FnOnce(),
    repair: impl FnOnce(),
) -> Result<u64, Refused> {
    let recovered = taken == Taken::OwnerDied;
    let mut epoch_ok = true;
    if recovered {
        // The lock is held: no other writer writes the epoch.
        let epoch = s.epoch().load(Ordering::Relaxed);
        match epoch.checked_add(1) {
            Some(next) => s.epoch().store(next, Ordering::Relaxed),
            None => epoch_ok = false,
        }
    }
    // Acquire: pairs with the Release (or SeqCst) store of the writer that published it, which
    // released the lock after (or died after) that store; the lock orders it too.
    let published = load_acquire(s.published());
    let intact = read_exact_version(s, published, len, sink);
    if recovered {
        wake();
        repair();
    }
    if !epoch_ok {
        return Err(Refused::EpochAtMax);
    }
    if !intact {
        return Err(Refused::Damaged);
    }
    Ok(published)
}
