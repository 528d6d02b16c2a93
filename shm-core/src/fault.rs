//! The SIGBUS guard: a peer that shrinks a segment's file under our mapping turns the next
//! access into `Error::Truncated` instead of killing this process.
//!
//! Accessing a page of a shared file mapping that lies beyond the file's end raises SIGBUS.
//! Any process that can open a named segment for writing can `ftruncate` it, so without a guard
//! a hostile or careless peer can kill every reader and the writer. The guard owns its signal,
//! as libwayland-server's `wl_shm` does:
//!
//! - Every mapping of a segment is entered in a lock-free table of address ranges
//!   ([`Guard::new`]) and removed again before it is unmapped. The table starts with
//!   [`CHUNK`] entries in static memory and grows by further chunks allocated by
//!   [`Guard::new`] (never by the handler) and kept for the life of the process, so every
//!   mapping is guarded however many are open.
//! - The guard's own SIGBUS action (`SA_SIGINFO | SA_ONSTACK | SA_NODEFER`) runs first. For a
//!   fault on an address in one of our ranges, it maps private zero pages over the rest of that
//!   range with `mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`, marks the range truncated and
//!   returns: no other handler sees the fault. The faulting access is then restarted, reads
//!   zeros, and the call that made it sees the mark and reports
//!   [`Error::Truncated`](crate::Error::Truncated).
//! - Any other SIGBUS (a fault elsewhere, or a signal sent with `kill`) goes to the action that
//!   was installed before ours, as if we were not there: a function is called with the same
//!   arguments (three if it asked for `SA_SIGINFO`, else one) and with its own mask blocked; if
//!   it was the default disposition, the default is restored and the fault repeats when the
//!   handler returns (a sent signal is raised again), so the process dies of SIGBUS as it
//!   would have; if it was ignored, a sent signal stays ignored and a fault kills (the kernel
//!   does not let a fault be ignored). Rust's standard library installs a SIGBUS handler at
//!   startup for stack overflows; it is chained this way and still reports them. A chained
//!   handler that changes SIGBUS's disposition (std's resets it to the default for any other
//!   SIGBUS) would uninstall the guard: when it returns, the handler puts itself back in front
//!   and chains to the new disposition, which is what the next signal would have met without
//!   us.
//! - A handler installed after ours (by `sigaction` elsewhere in the program) runs first until
//!   the next mapping is registered: [`Guard::new`] checks the installed action and, if it is
//!   not ours, installs ours again in front of it, chaining to it. So a later handler sees our
//!   faults only between its installation and our next registration, and from then on only the
//!   signals that are not ours. The chained action is kept in a few static slots under an
//!   atomic index, so that a handler running on another thread while it changes reads either
//!   the old or the new action, never a mix.
//! - Several copies of this runtime in one process (a Python extension and the C library, each
//!   linking its own) each install their own action in front of the other, and each chains to
//!   the other: a fault in one copy's range reaches it through the others. Because such
//!   re-installation can make the chain return to a copy's handler for the same signal, the
//!   handler remembers the signals it is chaining (by the address of their `siginfo_t` and of
//!   its own stack frame): entered again for the same one, it chains to the action that was
//!   installed before its first installation instead, and a third time it ends the chain as
//!   the default disposition would.
//!
//! The handler only loads and stores atomics in static memory (or in table chunks that are
//! never freed) and makes the `mmap`, `sigaction`, `pthread_sigmask` and `raise` calls: no
//! allocation, no lock, no formatting, no panic; it restores `errno`.
//!
//! Limits: a handler installed after our last registration sees our faults until the next one
//! (see above). A previous action's `SA_RESETHAND` is not emulated (it is called every time).
//! A library holding this code (a Python extension, the C library) must not be unloaded while
//! its handler is installed or chained to. A chained handler that leaves with `longjmp` leaves
//! its delivery record behind; it is reused by the next delivery at the same `siginfo_t`
//! address, and at most [`DELIVERIES`] records exist: with none free, the handler chains to
//! the action installed before its first installation (skipping any installed since).
//! The zero pages stay for the life of the mapping: a segment once truncated stays truncated
//! for this handle, even if the file grows again.

use crate::sys::{self, SigAction, SIGSET_WORDS};
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many mappings one chunk of the table holds (the first chunk is static).
pub(crate) const CHUNK: usize = 1024;

/// One guarded mapping's address range, as a small seqlock: `seq` is odd while the range is
/// being written, so that the signal handler (which may interrupt a registration on the same or
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
    /// Set by the signal handler once it has mapped zero pages over part of this range.
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

/// A chunk of the table, and the next one (null until the table grows past this one).
struct Chunk {
    entries: [Entry; CHUNK],
    /// Null, or a chunk leaked from a `Box`, never freed.
    next: AtomicPtr<Chunk>,
}

static FIRST: Chunk = Chunk {
    entries: [FREE; CHUNK],
    next: AtomicPtr::new(core::ptr::null_mut()),
};

/// The table's chunks, in order. Async-signal-safe (atomic loads).
fn chunks() -> impl Iterator<Item = &'static Chunk> {
    let mut next = Some(&FIRST);
    core::iter::from_fn(move || {
        let chunk = next?;
        // SAFETY: `next` is null or a chunk leaked by `claim` (published with Release after
        // it was fully built), which is never freed.
        next = unsafe { chunk.next.load(Ordering::Acquire).as_ref() };
        Some(chunk)
    })
}

/// A free entry, claimed; grows the table when every entry is taken.
fn claim() -> &'static Entry {
    loop {
        let mut last = &FIRST;
        for chunk in chunks() {
            let free = chunk.entries.iter().find(|e| {
                e.claimed
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            });
            if let Some(e) = free {
                return e;
            }
            last = chunk;
        }
        let fresh = Box::into_raw(Box::new(Chunk {
            entries: [FREE; CHUNK],
            next: AtomicPtr::new(core::ptr::null_mut()),
        }));
        if last
            .next
            .compare_exchange(
                core::ptr::null_mut(),
                fresh,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // Another thread grew the table first; use its chunk.
            // SAFETY: `fresh` came from `Box::into_raw` above and was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }
}

/// How many chunks the table has (for tests).
#[cfg(test)]
fn chunk_count() -> usize {
    chunks().count()
}

/// The page size, read before the handler is installed (`sysconf` is not async-signal-safe).
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// Test hook: mappings made after this is set are not guarded (see `__private::hooks`).
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes every later mapping of this process unguarded, so tests can show what the guard
/// prevents.
pub(crate) fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// A signal action in static memory, as a seqlock: written by the one thread that owns the
/// slot, read by the handler, which retries or gives up on a torn read.
struct ActionSlot {
    /// Whether a writer or the publication owns the slot (see [`set_chained`]).
    owned: AtomicBool,
    seq: AtomicUsize,
    handler: AtomicUsize,
    flags: AtomicUsize,
    mask: [AtomicU64; SIGSET_WORDS],
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: ActionSlot = ActionSlot {
    owned: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    handler: AtomicUsize::new(libc::SIG_DFL),
    flags: AtomicUsize::new(0),
    mask: [const { AtomicU64::new(0) }; SIGSET_WORDS],
};

#[allow(clippy::declare_interior_mutable_const)]
const PUBLISHED_SLOT: ActionSlot = ActionSlot {
    owned: AtomicBool::new(true),
    ..EMPTY_SLOT
};

impl ActionSlot {
    /// Stores `a` (the caller owns the slot, so there is one writer).
    fn store(&self, a: &SigAction) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.handler.store(a.handler, Ordering::Relaxed);
        self.flags.store(a.flags as u32 as usize, Ordering::Relaxed);
        for (w, v) in self.mask.iter().zip(a.mask) {
            w.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// The stored action, or `None` if a store was in progress. Async-signal-safe.
    fn load(&self) -> Option<SigAction> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let mut a = SigAction {
            handler: self.handler.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed) as u32 as libc::c_int,
            mask: [0; SIGSET_WORDS],
        };
        for (v, w) in a.mask.iter_mut().zip(&self.mask) {
            *v = w.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s1).then_some(a)
    }
}

/// How many slots hold the chained action: one published, the others free for writers. A
/// handler reading one slot is disturbed only if the action is replaced while it reads.
const CHAIN_SLOTS: usize = 8;
/// The action our handler chains to: `CHAINED[CHAINED_INDEX]`, which owns its slot.
static CHAINED: [ActionSlot; CHAIN_SLOTS] = [
    PUBLISHED_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
    EMPTY_SLOT,
];
static CHAINED_INDEX: AtomicUsize = AtomicUsize::new(0);
/// The action installed before our first installation (written under [`INSTALL`] before our
/// handler is first installed, and again only if that installation raced with another).
static ROOT: ActionSlot = EMPTY_SLOT;
/// Whether our handler has been installed at least once (then `ROOT` is set).
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Serializes installations by [`Guard::new`] (never taken by the handler).
static INSTALL: Mutex<()> = Mutex::new(());

/// Publishes `a` as the action to chain to. Lock-free and async-signal-safe: the writer claims
/// a free slot, fills it, publishes its index and frees the slot published before. `false` if
/// every slot is busy (as many writers at once as there are slots).
fn set_chained(a: &SigAction) -> bool {
    let Some((i, slot)) = CHAINED.iter().enumerate().find(|(_, s)| {
        s.owned
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }) else {
        return false;
    };
    slot.store(a);
    let before = CHAINED_INDEX.swap(i, Ordering::AcqRel);
    if let Some(old) = CHAINED.get(before) {
        old.owned.store(false, Ordering::Release);
    }
    true
}

/// The action to chain to. Async-signal-safe.
fn chained() -> Option<SigAction> {
    (0..CHAIN_SLOTS).find_map(|_| {
        let i = CHAINED_INDEX.load(Ordering::Acquire);
        CHAINED.get(i)?.load()
    })
}

/// Puts our handler back in front if the installed action is no longer ours, chaining to the
/// one that replaced it. The handler calls this after a chained handler returns: a handler
/// that changes SIGBUS's disposition (std's resets it to the default when a SIGBUS is not a
/// stack overflow) changes what would happen to the next signal without us, which is what we
/// chain to; it must not uninstall the guard. Async-signal-safe.
fn reclaim_front() {
    let Some(current) = sys::sigbus_action() else {
        return;
    };
    if current.handler == ours() {
        return;
    }
    let mine = SigAction::new_handler(on_sigbus, current.flags & libc::SA_RESTART != 0);
    // SAFETY: as in `install`.
    let Some(replaced) = (unsafe { sys::set_sigbus_action(&mine) }) else {
        return;
    };
    if replaced.handler != ours() {
        set_chained(&replaced);
    }
}

/// Our handler, installed in front of whatever SIGBUS action is installed now unless it is
/// already ours. `false` if `sigaction` failed.
fn install() -> bool {
    let _lock = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(current) = sys::sigbus_action() else {
        return INSTALLED.load(Ordering::Relaxed);
    };
    if current.handler == ours() {
        return true;
    }
    let first = !INSTALLED.load(Ordering::Relaxed);
    if first {
        let page = sys::page_size();
        if page.is_power_of_two() {
            PAGE_SIZE.store(page, Ordering::Relaxed);
        }
        ROOT.store(&current);
    }
    set_chained(&current);
    let mine = SigAction::new_handler(on_sigbus, current.flags & libc::SA_RESTART != 0);
    // SAFETY: `on_sigbus` is async-signal-safe (see the module documentation), takes the
    // three `SA_SIGINFO` arguments, and is a function of this program (a library holding it
    // must not be unloaded, see the module documentation).
    let Some(replaced) = (unsafe { sys::set_sigbus_action(&mine) }) else {
        return INSTALLED.load(Ordering::Relaxed);
    };
    if replaced != current && replaced.handler != ours() {
        // Another action was installed between the query and ours: chain to it instead.
        if first {
            ROOT.store(&replaced);
        }
        set_chained(&replaced);
    }
    INSTALLED.store(true, Ordering::Release);
    true
}

/// A guarded mapping's entry in the table; removes the entry on drop. Drop it before the
/// mapping is unmapped (declare it before the mapping in a struct).
#[derive(Debug)]
pub(crate) struct Guard {
    /// The entry, or `None` when the mapping is not guarded (the test hook, or `sigaction`
    /// failed).
    entry: Option<&'static Entry>,
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Entry")
            .field("start", &self.start.load(Ordering::Relaxed))
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl Guard {
    /// Guards the mapping of `len` bytes at `start`, installing the SIGBUS handler in front if
    /// it is not the installed action.
    pub fn new(start: *const u8, len: usize) -> Guard {
        if DISABLED.load(Ordering::Relaxed) || len == 0 || !install() {
            return Guard { entry: None };
        }
        let e = claim();
        let s = e.seq.load(Ordering::Relaxed);
        e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        e.start.store(start as usize, Ordering::Relaxed);
        e.len.store(len, Ordering::Relaxed);
        e.truncated.store(false, Ordering::Relaxed);
        e.seq.store(s.wrapping_add(2), Ordering::Release);
        Guard { entry: Some(e) }
    }

    /// Whether a peer truncated the file under this mapping and an access faulted (the
    /// faulting page and the rest of the range now read as zeros).
    #[inline]
    pub fn truncated(&self) -> bool {
        self.entry
            .is_some_and(|e| e.truncated.load(Ordering::Acquire))
    }

    /// Whether the mapping is guarded at all.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        self.entry.is_some()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(e) = self.entry {
            let s = e.seq.load(Ordering::Relaxed);
            e.seq.store(s.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            e.len.store(0, Ordering::Relaxed);
            e.start.store(0, Ordering::Relaxed);
            e.truncated.store(false, Ordering::Relaxed);
            e.seq.store(s.wrapping_add(2), Ordering::Release);
            e.claimed.store(false, Ordering::Release);
        }
    }
}

/// The entry whose range holds `addr`, with that range (`start`, `len`) as validated by the
/// entry's seqlock. Async-signal-safe.
fn find(addr: usize) -> Option<(&'static Entry, usize, usize)> {
    chunks().find_map(|chunk| {
        chunk.entries.iter().find_map(|e| {
            let s1 = e.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                return None;
            }
            let start = e.start.load(Ordering::Relaxed);
            let len = e.len.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let s2 = e.seq.load(Ordering::Relaxed);
            let inside = addr >= start && addr - start < len;
            (s1 == s2 && inside).then_some((e, start, len))
        })
    })
}

/// If `addr` lies in one of our ranges, maps zero pages from its page to the end of the range
/// and marks the range truncated. Async-signal-safe; no arithmetic that can overflow.
fn repair(addr: usize) -> bool {
    let Some((e, start, len)) = find(addr) else {
        return false;
    };
    let page = PAGE_SIZE.load(Ordering::Relaxed);
    // `page` is a power of two (checked when stored), so the mask is exact.
    let from = addr & !(page - 1);
    let Some(to) = start
        .checked_add(len)
        .and_then(|end| end.checked_next_multiple_of(page))
    else {
        return false;
    };
    // `from <= addr < start + len <= to`, and `from >= start` because mappings start on a
    // page boundary; checked anyway.
    let Some(n) = to.checked_sub(from).filter(|&n| n > 0 && from >= start) else {
        return false;
    };
    if !sys::map_zero_pages(from, n) {
        return false;
    }
    e.truncated.store(true, Ordering::Release);
    true
}

/// A signal this handler is chaining on some thread: the address of its `siginfo_t` (on the
/// signal frame, so unique among the deliveries in progress) and of the handler's own frame.
struct Delivery {
    info: AtomicUsize,
    frame: AtomicUsize,
}

/// How many chaining deliveries are remembered at once (concurrent SIGBUS deliveries that are
/// not ours, across all threads).
const DELIVERIES: usize = 128;
#[allow(clippy::declare_interior_mutable_const)]
const NO_DELIVERY: Delivery = Delivery {
    info: AtomicUsize::new(0),
    frame: AtomicUsize::new(0),
};
static IN_FLIGHT: [Delivery; DELIVERIES] = [NO_DELIVERY; DELIVERIES];

/// How many times this handler is already running for the delivery `info`, whose frame is
/// at `frame`: records with the same `info` and a frame above ours (the stack grows down) are
/// outer calls of the same delivery reached again through the chain. A record with the same
/// `info` at or below our frame is left over from a delivery a handler left with `longjmp`.
fn depth(info: usize, frame: usize) -> usize {
    IN_FLIGHT
        .iter()
        .filter(|d| {
            d.info.load(Ordering::Relaxed) == info && d.frame.load(Ordering::Relaxed) > frame
        })
        .count()
}

/// Records this call for `info`; `None` if the record is full. Reuses a record left over by
/// a `longjmp` (same `info`, frame at or below ours).
fn enter(info: usize, frame: usize) -> Option<&'static Delivery> {
    let d = IN_FLIGHT.iter().find(|d| {
        let other = d.info.load(Ordering::Relaxed);
        let stale = other == info && d.frame.load(Ordering::Relaxed) <= frame;
        (other == 0 || stale)
            && d.info
                .compare_exchange(other, info, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    })?;
    d.frame.store(frame, Ordering::Relaxed);
    Some(d)
}

/// Ends the chain as the default disposition would: a fault repeats when the handler returns
/// and kills the process; a sent signal is raised again.
fn end_chain(kernel: bool) {
    sys::set_sigbus_default();
    if !kernel {
        sys::raise_sigbus();
    }
}

/// The address of [`on_sigbus`], as `sigaction` reports it when it is installed.
fn ours() -> usize {
    on_sigbus as *const () as usize
}

/// The SIGBUS handler. Async-signal-safe (see the module documentation).
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let errno = sys::errno();
    // SAFETY: `info` is what the kernel (or a handler chaining to us with the kernel's
    // arguments) passed to a SIGBUS handler.
    let addr = unsafe { sys::sigbus_fault_address(info) };
    if !addr.is_some_and(repair) {
        pass_on(sig, info, context);
    }
    sys::set_errno(errno);
}

/// Hands a SIGBUS that is not ours to the action installed before ours.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: as in `on_sigbus`.
    let kernel = unsafe { sys::is_kernel_signal(info) };
    let marker = 0u8;
    let frame = core::hint::black_box(&marker) as *const u8 as usize;
    let key = info as usize;
    let record = enter(key, frame);
    let action = match (depth(key, frame), record) {
        // Torn eight times over by concurrent replacements: the first previous action.
        (0, Some(_)) => chained().or_else(|| ROOT.load()),
        // Reached again through the chain (or unrecorded): the actions installed after our
        // first installation were already run for this signal.
        (0 | 1, _) => ROOT.load(),
        _ => None,
    };
    match action {
        Some(a) if a.is_ignore() => {
            if kernel {
                // The kernel does not let a fault be ignored: it would kill the process.
                end_chain(true);
            }
        }
        Some(a) if !a.is_default() && a.handler != ours() => {
            // SAFETY: `a` was read back from the kernel as SIGBUS's disposition before ours
            // was installed, so it is a handler of this program of the kind its flags say;
            // `info` and `context` are the arguments we were given.
            unsafe { a.call(sig, info, context) };
            reclaim_front();
        }
        _ => end_chain(kernel),
    }
    if let Some(d) = record {
        d.info.store(0, Ordering::Relaxed);
    }
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
        let (_, start, len) = find(addr + 63).unwrap();
        assert_eq!((start, len), (addr, 64));
        assert!(find(addr + 64).is_none_or(|(_, s, _)| s != addr));
        assert!(!g.truncated());
        drop(g);
        assert!(find(addr).is_none());
    }

    #[test]
    fn the_table_grows_past_its_first_chunk() {
        let a = [0u8; 64];
        let guards: Vec<Guard> = (0..CHUNK + 10).map(|_| Guard::new(a.as_ptr(), 1)).collect();
        assert!(guards.iter().all(Guard::is_active));
        assert!(chunk_count() >= 2);
    }

    #[test]
    fn a_delivery_reached_again_through_the_chain_is_nested() {
        let (info, outer, inner) = (0x1000, 0x9000, 0x8000);
        let d = enter(info, outer).unwrap();
        assert_eq!(depth(info, inner), 1);
        // A record at or below our frame is left over (a handler left with longjmp).
        assert_eq!(depth(info, outer), 0);
        let again = enter(info, outer).unwrap();
        assert!(core::ptr::eq(d, again), "the left-over record is reused");
        d.info.store(0, Ordering::Relaxed);
    }
}
