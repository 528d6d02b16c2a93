//! The SIGBUS guard: a peer that shrinks a segment's file under our mapping turns the next
//! access into `Error::Truncated` instead of killing this process.
//!
//! Accessing a page of a shared file mapping that lies beyond the file's end raises SIGBUS.
//! Any process that can open a named segment for writing can `ftruncate` it, so without a guard
//! a hostile or careless peer can kill every reader and the writer. The guard works as
//! libwayland-server's `wl_shm_buffer_begin_access` does:
//!
//! - Every mapping of a segment is entered in a fixed, lock-free table of address ranges
//!   ([`Guard::new`]) and removed again before it is unmapped.
//! - One SIGBUS action, registered once through `signal-hook-registry` (which chains the
//!   previous handler), looks the faulting address up in the table. If it lies in one of our
//!   ranges, it maps private zero pages over the rest of that range with
//!   `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)` and marks the range truncated; the
//!   faulting access is then restarted, reads zeros, and the call that made it sees the mark
//!   and reports [`Error::Truncated`](crate::Error::Truncated).
//! - A fault anywhere else is not ours: if SIGBUS had its default disposition before we
//!   registered, the action restores it and re-raises the signal, so the process dies of
//!   SIGBUS exactly as it would have without the guard. A previous handler that was a function
//!   is called by the registry before our action, as chaining requires.
//!
//! The action only loads and stores atomics in static memory and makes the `mmap`,
//! `sigaction` and `raise` system calls: no allocation, no lock, no formatting.
//!
//! Limits: the table holds [`CAPACITY`] mappings; a mapping made while it is full is not
//! guarded (it behaves as before the guard existed). The zero pages stay for the life of the
//! mapping: a segment once truncated stays truncated for this handle, even if the file grows
//! again.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// How many mappings can be guarded at once.
pub(crate) const CAPACITY: usize = 1024;

/// One guarded mapping's address range, as a small seqlock: `seq` is odd while the range is
/// being written, so that the signal action (which may interrupt a registration on the same or
/// another thread) never acts on a half-written range.
struct Entry {
    /// Whether a [`Guard`] owns this entry (claimed with a compare-and-swap).
    claimed: AtomicBool,
    /// Even when `start` and `len` are stable; odd while they change.
    seq: AtomicUsize,
    /// The first address of the mapping.
    start: AtomicUsize,
    /// The length of the mapping in bytes; 0 when the entry is free.
    len: AtomicUsize,
    /// Set by the signal action once it has mapped zero pages over part of this range.
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Entry = Entry {
    claimed: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
};

static TABLE: [Entry; CAPACITY] = [FREE; CAPACITY];
/// The page size, read once before the action is installed (`sysconf` is not
/// async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Whether SIGBUS had its default (or ignored) disposition when the action was installed: then
/// a fault that is not ours must kill the process as it would have without us.
static PREVIOUS_WAS_DEFAULT: AtomicBool = AtomicBool::new(true);
/// Whether the action could be installed (a registration error leaves mappings unguarded).
static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
/// The registry's own SIGBUS disposition, as installed. A previous handler that gives up on a
/// fault by restoring the default disposition (Rust's standard library does that for every
/// SIGBUS outside a stack guard page, and the registry calls it before our action) would
/// otherwise uninstall the guard the first time it works.
static INSTALLED_ACTION: OnceLock<crate::sys::SignalAction> = OnceLock::new();
/// Test hook: mappings made after this is set are not guarded (see `__private::hooks`).
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes every later mapping of this process unguarded, so tests can show what the guard
/// prevents.
pub(crate) fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// A guarded mapping's entry in the table; removes the entry on drop. Drop it before the
/// mapping is unmapped (declare it before the mapping in a struct).
#[derive(Debug)]
pub(crate) struct Guard {
    /// The entry, or `None` when the mapping could not be guarded (table full, or no action).
    index: Option<usize>,
}

impl Guard {
    /// Guards the mapping of `len` bytes at `start`, installing the SIGBUS action on first use.
    pub fn new(start: *const u8, len: usize) -> Guard {
        if DISABLED.load(Ordering::Relaxed) {
            return Guard { index: None };
        }
        install();
        if !INSTALLED.load(Ordering::Acquire) || len == 0 {
            return Guard { index: None };
        }
        let index = TABLE.iter().position(|e| {
            e.claimed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if let Some(i) = index {
            let e = &TABLE[i];
            e.seq.fetch_add(1, Ordering::AcqRel);
            e.start.store(start as usize, Ordering::Relaxed);
            e.len.store(len, Ordering::Relaxed);
            e.truncated.store(false, Ordering::Relaxed);
            e.seq.fetch_add(1, Ordering::Release);
        }
        Guard { index }
    }

    /// Whether a peer truncated the file under this mapping and an access faulted (the
    /// faulting page and the rest of the range now read as zeros).
    #[inline]
    pub fn truncated(&self) -> bool {
        self.index
            .is_some_and(|i| TABLE[i].truncated.load(Ordering::Acquire))
    }

    /// Whether the mapping is guarded at all.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        self.index.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.index {
            let e = &TABLE[i];
            e.seq.fetch_add(1, Ordering::AcqRel);
            e.len.store(0, Ordering::Relaxed);
            e.start.store(0, Ordering::Relaxed);
            e.truncated.store(false, Ordering::Relaxed);
            e.seq.fetch_add(1, Ordering::Release);
            e.claimed.store(false, Ordering::Release);
        }
    }
}

/// Installs the SIGBUS action once per process.
fn install() {
    INSTALL.call_once(|| {
        PAGE_SIZE.store(crate::sys::page_size(), Ordering::Relaxed);
        PREVIOUS_WAS_DEFAULT.store(crate::sys::sigbus_is_default(), Ordering::Relaxed);
        // SAFETY: `on_sigbus` is async-signal-safe (see its documentation): it only touches
        // atomics in static memory and calls `mmap`, `sigaction` and `raise`; it does not
        // panic (no indexing out of bounds, no arithmetic that can overflow unchecked, no
        // allocation). SIGBUS is not in the registry's forbidden list, so the checked
        // registration is used.
        let registered =
            unsafe { signal_hook_registry::register_sigaction(libc::SIGBUS, on_sigbus) };
        if registered.is_ok() {
            if let Some(action) = crate::sys::sigbus_action() {
                let _ = INSTALLED_ACTION.set(action);
            }
        }
        INSTALLED.store(registered.is_ok(), Ordering::Release);
    });
}

/// The SIGBUS action. Async-signal-safe: loads and stores of static atomics (a `OnceLock::get`
/// is one), and the `mmap`, `sigaction` and `raise` system calls.
fn on_sigbus(info: &libc::siginfo_t) {
    // Only a fault on an address (not a SIGBUS sent with `kill`) can be a truncated mapping.
    if info.si_code == libc::BUS_ADRERR {
        // SAFETY: for a SIGBUS with `si_code == BUS_ADRERR` the kernel fills in `si_addr`.
        let addr = unsafe { info.si_addr() } as usize;
        if let Some(e) = find(addr) {
            let page = PAGE_SIZE.load(Ordering::Relaxed);
            let start = e.start.load(Ordering::Relaxed);
            let len = e.len.load(Ordering::Relaxed);
            let from = addr & !(page - 1);
            // `start + len` cannot overflow: it is the end of a mapping in our address space.
            let to = (start + len).next_multiple_of(page);
            if crate::sys::map_zero_pages(from, to - from) {
                e.truncated.store(true, Ordering::Release);
                // The previous handler ran first; if it reset SIGBUS to its default, put the
                // registry's handler back, or the next truncation would kill the process.
                if let Some(action) = INSTALLED_ACTION.get() {
                    crate::sys::restore_sigbus_if_default(action);
                }
                return;
            }
            // Could not map zero pages: fall through and die as without the guard.
        }
    }
    if PREVIOUS_WAS_DEFAULT.load(Ordering::Relaxed) {
        crate::sys::die_of_sigbus();
    }
}

/// The entry whose range holds `addr`, read consistently (see [`Entry`]).
fn find(addr: usize) -> Option<&'static Entry> {
    TABLE.iter().find(|e| {
        let s1 = e.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return false;
        }
        let start = e.start.load(Ordering::Relaxed);
        let len = e.len.load(Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::Acquire);
        let s2 = e.seq.load(Ordering::Relaxed);
        s1 == s2 && len != 0 && addr >= start && addr - start < len
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_reused_and_ranges_found() {
        let a = [0u8; 64];
        let g = Guard::new(a.as_ptr(), a.len());
        assert!(g.is_active());
        let addr = a.as_ptr() as usize;
        assert!(find(addr + 63).is_some());
        assert!(!g.truncated());
        drop(g);
        assert!(find(addr).is_none());
    }
}
