//! The waiter count in the segment (checked, so that a hostile value cannot wrap it) and the
//! waiter's half of the asymmetric barrier.

use crate::sys;
use core::sync::atomic::{AtomicU32, Ordering};

/// Counts one more waiter (SeqCst, see [`wait_until`](super::wait_until); the state's
/// `waiters`, and a stream's or queue's `waiters` and `space_waiters`), unless the count is at
/// its maximum: then `false`, and the caller polls. A compare-and-swap loop rather than
/// `fetch_add`, so that a hostile count of `u32::MAX` cannot wrap to 0 (with 0 waiters the
/// writer skips the wake).
pub(crate) fn register_waiter(waiters: &AtomicU32) -> bool {
    waiters
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1))
        .is_ok()
}

/// The waiter's half of the asymmetric barrier (`protocol::Announce::Asymmetric`), made once
/// after registering and before the first re-check: a full barrier on every CPU that runs a
/// writer registered for it, so that a writer that published without a locked instruction
/// either sees this waiter's registration or has its new version visible to the re-check.
///
/// Where the kernel or a sandbox refuses (`membarrier` missing or forbidden in this process),
/// a writer that published without a locked instruction at the same moment may miss this
/// waiter; the wait then ends at the next re-check, at most a wait slice (100 ms) later.
pub(crate) fn barrier_after_registering() {
    if !SKIP_BARRIER.load(Ordering::Relaxed) {
        sys::barrier_on_registered_processes();
    }
}

/// Set by `__private::hooks::skip_waiter_barrier`: waiters register without the barrier, so
/// that a test can show the wake-ups it otherwise misses.
pub(crate) static SKIP_BARRIER: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Counts one waiter less, never below 0 (a hostile peer may have zeroed the count meanwhile).
pub(crate) fn unregister_waiter(waiters: &AtomicU32) {
    let _ = waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}
