//! The table of guarded address ranges, and the [`Guard`] that enters a mapping in it: lock-free,
//! read by the signal handler, grown by chunks that are never freed.

use super::action::install;
use super::DISABLED;
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// How many mappings one chunk of the table holds (the first chunk is static).
pub(super) const CHUNK: usize = 1024;

/// One guarded mapping's address range, as a small seqlock: `seq` is odd while the range is
/// being written, so that the signal handler (which may interrupt a registration on the same or
/// another thread) never acts on a half-written range.
pub(super) struct Entry {
    /// Whether a [`Guard`] owns this entry (claimed with a compare-and-swap).
    claimed: AtomicBool,
    /// Even when `start` and `len` are stable; odd while they change.
    seq: AtomicUsize,
    /// The first address of the mapping.
    start: AtomicUsize,
    /// The length of the mapping in bytes; 0 when the entry is free.
    len: AtomicUsize,
    /// Set by the signal handler before it maps zero pages over part of this range.
    pub(super) truncated: AtomicBool,
    /// Whether the mapping is writable (the zero pages then are too).
    pub(super) writable: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Entry = Entry {
    claimed: AtomicBool::new(false),
    seq: AtomicUsize::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicBool::new(false),
    writable: AtomicBool::new(false),
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
    /// Guards the mapping of `len` bytes at `start` (`writable` if it was mapped writable),
    /// installing the SIGBUS handler (see [`install`]).
    ///
    /// The owner of the mapping must make every access to it through a borrow of the value
    /// that owns this guard and the mapping, and drop the guard before it unmaps (see
    /// [`repair`](super::repair)).
    pub fn new(start: *const u8, len: usize, writable: bool) -> Guard {
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
        e.writable.store(writable, Ordering::Relaxed);
        e.seq.store(s.wrapping_add(2), Ordering::Release);
        Guard { entry: Some(e) }
    }

    /// Whether a peer truncated the file under this mapping and an access faulted (the
    /// faulting page and the rest of the range now read, or are about to read, as zeros).
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
pub(super) fn find(addr: usize) -> Option<(&'static Entry, usize, usize)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_reused_and_ranges_found() {
        let a = [0u8; 64];
        let g = Guard::new(a.as_ptr(), a.len(), false);
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
        let guards: Vec<Guard> = (0..CHUNK + 10)
            .map(|_| Guard::new(a.as_ptr(), 1, false))
            .collect();
        assert!(guards.iter().all(Guard::is_active));
        assert!(chunk_count() >= 2);
    }
}
