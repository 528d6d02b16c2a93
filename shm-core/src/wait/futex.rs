//! The wait loop: spin, register, barrier, re-check, sleep on the futex in slices, or poll.

use super::{barrier_after_registering, register_waiter, unregister_waiter, Deadline};
use crate::protocol;
use crate::sys;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Longest single futex sleep: a peer that dies between changing a word and waking cannot
/// strand a waiter for longer than this.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Checks of the awaited condition before a stream or queue waiter goes to sleep on the
/// futex: a message that arrives within a microsecond or so is taken without two syscalls.
const SPINS_BEFORE_SLEEP: u32 = 128;
/// Longest sleep of a waiter that polls (it could only map the segment read-only, or found the
/// waiter count at its maximum).
const POLL_SLICE: Duration = Duration::from_micros(200);

/// How a waiter paces itself before and while it sleeps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// The state reader (`wait_for_update`): no spinning (its caller checked once already),
    /// and futex sleeps of at most [`WAIT_SLICE`], always.
    State,
    /// Stream and queue handles: [`SPINS_BEFORE_SLEEP`] checks before sleeping, and futex
    /// sleeps of at most [`WAIT_SLICE`] unless a test hook set another slice.
    Stream,
}

impl Pace {
    /// Checks of the condition before registering.
    fn spins(self) -> u32 {
        match self {
            Pace::State => 0,
            Pace::Stream => SPINS_BEFORE_SLEEP,
        }
    }

    /// The longest single futex sleep.
    fn slice(self) -> Duration {
        match self {
            Pace::State => WAIT_SLICE,
            Pace::Stream => stream_wait_slice(),
        }
    }
}

/// Waits until `ready(registered)` holds or `deadline` passes (`false`): spins briefly (as
/// `pace` says), then sleeps on `futex` registered in `waiters`, with the registration protocol
/// of `docs/segment-format.md` ("Waiting for an update"): count ourselves as a waiter, make the
/// `membarrier` barrier, read the futex word, re-check (`ready(true)`: with SeqCst loads, see
/// [`load_for_wait`]), sleep only if the word is unchanged. The side that makes `ready` true
/// stores, then checks the waiter count (see `protocol::Announce`), so either we see its store
/// or it sees us and bumps the word.
///
/// A process that mapped the segment read-only cannot register (`can_register` false), and a
/// waiter that finds the count at its maximum does not (a hostile value: one more would wrap
/// it to 0, and the other side would stop waking anybody): both poll instead, with
/// `ready(false)`, whose loads must then be relaxed loads and fences (see [`load_for_wait`]).
///
/// `false` is returned only right after a `ready` that returned `false`.
pub(crate) fn wait_until(
    futex: &AtomicU32,
    waiters: &AtomicU32,
    can_register: bool,
    deadline: Deadline,
    pace: Pace,
    mut ready: impl FnMut(bool) -> bool,
) -> bool {
    for _ in 0..pace.spins() {
        if ready(false) {
            return true;
        }
        core::hint::spin_loop();
    }
    if !can_register || !register_waiter(waiters) {
        loop {
            if ready(false) {
                return true;
            }
            let Some(left) = deadline.next_slice(POLL_SLICE) else {
                return false;
            };
            std::thread::sleep(left);
        }
    }
    // The waiter's half of the barrier a writer that publishes without a locked instruction
    // relies on (see `protocol::Announce`), and a consumer that commits without one, for a
    // producer waiting for room (see `protocol::stream::commit`).
    barrier_after_registering();
    let slice = pace.slice();
    let done = loop {
        let word = futex.load(Ordering::SeqCst);
        if ready(true) {
            break true;
        }
        let Some(left) = deadline.next_slice(slice) else {
            break false;
        };
        sys::futex_wait(futex, word, left);
    };
    unregister_waiter(waiters);
    done
}

/// Loads a word a waiter checks (`published`, `consumed`): with SeqCst once `registered` as a
/// waiter, the re-check half of the store-buffering pairing with the side that stores it (see
/// `protocol::Announce`); otherwise (spinning before registering, or polling) as a relaxed load
/// and an acquire fence, the only loads guaranteed to work on a read-only mapping.
pub(crate) fn load_for_wait(word: &AtomicU64, registered: bool) -> u64 {
    if registered {
        word.load(Ordering::SeqCst)
    } else {
        protocol::load_acquire(word)
    }
}

/// The longest single futex sleep of a stream or queue wait: [`WAIT_SLICE`], unless a test
/// hook set another (`__private::hooks::set_stream_wait_slice`), to show which wake-ups a test
/// relies on.
fn stream_wait_slice() -> Duration {
    match WAIT_SLICE_OVERRIDE_MS.load(Ordering::Relaxed) {
        0 => WAIT_SLICE,
        ms => Duration::from_millis(ms),
    }
}

/// The stream and queue wait slice a test hook set, in milliseconds (0: none, [`WAIT_SLICE`]).
pub(crate) static WAIT_SLICE_OVERRIDE_MS: AtomicU64 = AtomicU64::new(0);
