//! Waiting for the first of several segments: a multi-producer stream's or queue's lanes, each
//! a segment with its own futex word, waited on in one `futex_waitv` call.

use super::{
    barrier_after_registering, load_for_wait, register_waiter, unregister_waiter, Deadline,
    WAIT_SLICE_OVERRIDE_MS,
};
use crate::sys;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Longest single sleep, as in [`wait_until`](super::wait_until): a peer that dies between
/// its store and its wake strands nobody for longer.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Checks of the condition before registering.
const SPINS_BEFORE_SLEEP: u32 = 128;
/// The most words one `futex_waitv` call takes.
const MAX_WORDS: usize = 128;

/// One segment [`wait_any`] watches: its futex word and waiter count, the counter it watches
/// and the value that counter must reach.
pub(crate) struct AnyTarget<'a> {
    /// The segment's futex word (a shared futex).
    pub futex: &'a AtomicU32,
    /// The segment's waiter count.
    pub waiters: &'a AtomicU32,
    /// The counter the wait is for (`published`).
    pub counter: &'a AtomicU64,
    /// The value `counter` must reach.
    pub at_least: u64,
}

/// The longest single sleep: [`WAIT_SLICE`], unless the stream wait slice test hook set
/// another.
fn slice() -> Duration {
    match WAIT_SLICE_OVERRIDE_MS.load(Ordering::Relaxed) {
        0 => WAIT_SLICE,
        ms => Duration::from_millis(ms),
    }
}

/// Whether this kernel has `futex_waitv` (asked once per process).
fn have_waitv() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(sys::has_futex_waitv)
}

/// Waits until one of `targets` has its counter at its value (`Some(true)`), or `deadline`
/// passes (`Some(false)`), with the registration protocol of [`wait_until`](super::wait_until)
/// applied to every target: count as a waiter in each, the barrier once, read every futex
/// word, re-check every counter with SeqCst loads, then sleep in one `futex_waitv` on all the
/// words (shared futexes), so that a wake of any of them ends the sleep.
///
/// `None`, without waiting, where that is not possible: a kernel without `futex_waitv`
/// (before 5.16), more than [`MAX_WORDS`] targets, or a waiter count at its maximum; the
/// caller then waits on one target at a time.
pub(crate) fn wait_any(targets: &[AnyTarget<'_>], deadline: Deadline) -> Option<bool> {
    let ready = |registered: bool| {
        targets
            .iter()
            .any(|t| load_for_wait(t.counter, registered) >= t.at_least)
    };
    if targets.is_empty() || targets.len() > MAX_WORDS || !have_waitv() {
        return None;
    }
    for _ in 0..SPINS_BEFORE_SLEEP {
        if ready(false) {
            return Some(true);
        }
        core::hint::spin_loop();
    }
    for (k, t) in targets.iter().enumerate() {
        if !register_waiter(t.waiters) {
            for done in &targets[..k] {
                unregister_waiter(done.waiters);
            }
            return None;
        }
    }
    barrier_after_registering();
    let mut words: Vec<sys::FutexWaitv> = targets
        .iter()
        .map(|t| sys::FutexWaitv {
            val: 0,
            uaddr: t.futex.as_ptr() as u64,
            flags: sys::FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    let done = loop {
        for (w, t) in words.iter_mut().zip(targets) {
            w.val = u64::from(t.futex.load(Ordering::SeqCst));
        }
        if ready(true) {
            break true;
        }
        let Some(left) = deadline.next_slice(slice()) else {
            break false;
        };
        // SAFETY: every address is a futex word of a segment `targets` borrows, so mapped and
        // aligned for the whole call; none is flagged private. The outcome (woken, `EAGAIN`
        // for a word that changed, a timeout, `EINTR`) only sends us round to re-check.
        let _ = unsafe { sys::futex_waitv(&words, Some(left)) };
    };
    for t in targets {
        unregister_waiter(t.waiters);
    }
    Some(done)
}
