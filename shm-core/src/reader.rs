//! [`Reader`]: a handle that reads consistent snapshots of a segment.

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::payload;
use crate::segment::{deadline_after, load_acquire, Segment};
use crate::seqlock;
use crate::sys::{self, Access};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Failed attempts `try_read` makes before it gives up.
const TRY_READ_ATTEMPTS: u32 = 1 << 12;
/// Longest single futex sleep in `wait_for_update`: a writer that dies between publishing and
/// waking cannot strand a waiter for longer than this.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How often a stuck `read` checks whether the writer is still alive.
const LIVENESS_PROBE_EVERY: Duration = Duration::from_millis(1);

/// Reads consistent snapshots of a `T` that another process (or this one) publishes.
///
/// Reads never lock and never make a syscall: they copy the latest published slot with atomic
/// word loads and retry if the writer overwrote it during the copy (seqlock). Created by
/// [`SharedState::open`] or [`Options::open`].
pub struct Reader<T: SharedState> {
    seg: Segment,
    slot_mask: u64,
    slot_count: u64,
    can_register_waiters: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> Reader<T> {
    pub(crate) fn open(opts: &Options, name: &str) -> Result<Self> {
        let desc = Descriptor::from(T::LAYOUT);
        // Readers map the segment writable when they may, only to register as futex waiters;
        // a read-only opener falls back to polling in `wait_for_update`.
        let seg = match Segment::open(opts, name, Access::ReadWrite, &desc, T::LAYOUT_HASH) {
            Err(Error::PermissionDenied { .. }) => {
                Segment::open(opts, name, Access::ReadOnly, &desc, T::LAYOUT_HASH)?
            }
            other => other?,
        };
        Ok(Self::from_segment(seg, true))
    }

    pub(crate) fn from_segment(seg: Segment, writable: bool) -> Self {
        let n = seg.geometry().slot_count as u64;
        let writable = writable && seg.is_writable();
        Reader {
            seg,
            slot_mask: if n.is_power_of_two() { n - 1 } else { 0 },
            slot_count: n,
            can_register_waiters: writable,
            _type: PhantomData,
        }
    }

    #[inline(always)]
    fn slot_of(&self, version: u64) -> usize {
        // `slot_mask + 1 == slot_count` exactly when the count is a power of two (1 included):
        // one comparison on the read path instead of two.
        (if self.slot_mask.wrapping_add(1) == self.slot_count {
            version & self.slot_mask
        } else {
            version % self.slot_count
        }) as usize
    }

    /// One attempt: copies the latest published value into `out`; `true` if the copy is
    /// consistent (then all of `out` is written).
    #[inline(always)]
    fn attempt(&self, out: &mut MaybeUninit<T>) -> bool {
        let v = load_acquire(&self.seg.header().published);
        let i = self.slot_of(v);
        // With two or more slots, accept only the value of version `v` itself: a later value in
        // the same slot (the writer lapped us after we loaded `published`) is not published yet,
        // and returning it would let the next read go backwards. One slot has no such case.
        let expected = (self.slot_count > 1).then(|| seqlock::complete(v));
        payload::read_into(self.seg.slot_seq(i), self.seg.slot_words(i), expected, out)
    }

    /// The latest published value, a consistent snapshot, never torn.
    ///
    /// With two or more slots this does not wait for a write in progress: it copies the last
    /// complete value. It retries only when the writer laps the copy (writes `slots - 1` new
    /// values during it), or on one-slot segments while a write is in progress. Successive
    /// reads never go backwards. A process that scribbles on the segment can make it retry
    /// without end; use [`read_timeout`](Self::read_timeout) where time must be bounded.
    ///
    /// # Panics
    /// If no consistent value can be read because the writer died in the middle of a write to
    /// a one-slot segment (with two or more slots that cannot happen). Use
    /// [`try_read`](Self::try_read) or [`read_timeout`](Self::read_timeout) to get
    /// [`Error::WriterDied`] instead.
    #[inline(always)]
    pub fn read(&self) -> T {
        let mut out = MaybeUninit::uninit();
        if !self.attempt(&mut out) {
            out = MaybeUninit::new(self.read_or_panic());
        }
        // SAFETY: the attempt returned true: one consistent copy wrote every byte of `out`,
        // and every bit pattern is a valid `T` (`T: SharedState`).
        unsafe { out.assume_init() }
    }

    /// Like [`read`](Self::read), but copies into `dst` instead of returning the value: for
    /// large payloads a caller can reuse one buffer.
    ///
    /// # Panics
    /// As [`read`](Self::read); `dst` then holds unspecified (but valid) bytes.
    #[inline]
    pub fn read_into(&self, dst: &mut T) {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the attempt only writes bytes into
        // it, and every byte pattern is a valid `T` (`T: SharedState`), so `*dst` stays a valid
        // `T` whatever is written.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        if !self.attempt(out) {
            *dst = self.read_or_panic();
        }
    }

    #[cold]
    #[inline(never)]
    fn read_or_panic(&self) -> T {
        let mut out = MaybeUninit::uninit();
        match self.read_slow(None, &mut out) {
            // SAFETY: `read_slow` returned Ok: a consistent copy wrote every byte of `out`;
            // every bit pattern is a valid `T`.
            Ok(()) => unsafe { out.assume_init() },
            Err(e) => panic!("cannot read segment {:?}: {e}", self.seg.name()),
        }
    }

    /// Like [`read`](Self::read), but gives up after a bounded number of attempts: with
    /// [`Error::WriterDied`] if the writer died mid-write, else [`Error::Timeout`].
    pub fn try_read(&self) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        let mut consistent = false;
        for _ in 0..TRY_READ_ATTEMPTS {
            if self.attempt(&mut out) {
                consistent = true;
                break;
            }
            core::hint::spin_loop();
        }
        if !consistent {
            if self.writer_alive() {
                return Err(Error::Timeout);
            }
            // The writer may have finished just before dying: one more look.
            if !self.attempt(&mut out) {
                return Err(Error::WriterDied);
            }
        }
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written; every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// Like [`read`](Self::read), but waits at most `timeout` for a consistent value: fails with
    /// [`Error::WriterDied`] if the writer died mid-write, or [`Error::Timeout`].
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        if !self.attempt(&mut out) {
            self.read_slow(deadline_after(timeout), &mut out)?;
        }
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written; every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// Retries until a consistent copy is in `out`, the writer is found dead, or `deadline`.
    #[cold]
    fn read_slow(&self, deadline: Option<Instant>, out: &mut MaybeUninit<T>) -> Result<()> {
        let mut failures = 0u32;
        let mut next_probe = Instant::now() + LIVENESS_PROBE_EVERY;
        loop {
            if self.attempt(out) {
                return Ok(());
            }
            failures += 1;
            if failures < 64 {
                core::hint::spin_loop();
                continue;
            }
            std::thread::yield_now();
            let now = Instant::now();
            if now >= next_probe {
                next_probe = now + LIVENESS_PROBE_EVERY;
                if !self.writer_alive() {
                    return if self.attempt(out) {
                        Ok(())
                    } else {
                        Err(Error::WriterDied)
                    };
                }
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
        }
    }

    /// Test hook: copies the latest published slot WITHOUT the seqlock's consistency check, so
    /// tests can show that the check is what prevents torn reads.
    #[doc(hidden)]
    pub fn read_unvalidated(&self) -> T {
        let v = load_acquire(&self.seg.header().published);
        payload::read_unvalidated::<T>(self.seg.slot_words(self.slot_of(v)))
    }

    /// The sequence word of every slot, in slot order: even when the slot is complete, odd
    /// while (or since) a write to it is in progress. For tools and tests.
    #[doc(hidden)]
    pub fn slot_sequences(&self) -> Vec<u64> {
        (0..self.slot_count as usize)
            .map(|i| self.seg.slot_seq(i).load(Ordering::Relaxed))
            .collect()
    }

    /// The publish counter: how many values were published since creation (0 for the initial
    /// value). Monotonic.
    #[inline]
    pub fn version(&self) -> u64 {
        load_acquire(&self.seg.header().published)
    }

    /// Blocks until the version is greater than `since`, or `timeout` passes
    /// ([`Error::Timeout`]). Returns the new version.
    ///
    /// Sleeps on a process-shared futex in the segment; the writer wakes it, and pays for a
    /// syscall only while somebody waits. A reader that could only map the segment read-only
    /// polls instead.
    pub fn wait_for_update(&self, since: u64, timeout: Duration) -> Result<u64> {
        let h = self.seg.header();
        let v = load_acquire(&h.published);
        if v > since {
            return Ok(v);
        }
        let deadline = deadline_after(timeout);
        // What is left of the wait, at most one slice (see `WAIT_SLICE`); `None` when over.
        let slice = || match deadline {
            None => Some(WAIT_SLICE),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(WAIT_SLICE))
            }
        };
        if !self.can_register_waiters {
            loop {
                let v = load_acquire(&h.published);
                if v > since {
                    return Ok(v);
                }
                let Some(left) = slice() else {
                    return Err(Error::Timeout);
                };
                std::thread::sleep(left.min(Duration::from_micros(200)));
            }
        }
        // Registration protocol (see docs/segment-format.md): count ourselves as a waiter,
        // then read the futex word, then re-check the version. The writer publishes with a
        // SeqCst swap, then reads the waiter count, so either we see its new version or it
        // sees us and bumps the futex word, which makes our wait return.
        h.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let word = h.futex.load(Ordering::SeqCst);
            let v = h.published.load(Ordering::SeqCst);
            if v > since {
                break Ok(v);
            }
            let Some(left) = slice() else {
                break Err(Error::Timeout);
            };
            sys::futex_wait(&h.futex, word, left);
        };
        h.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Whether a writer currently holds the segment's writer lease. Only asks the kernel
    /// (an open-file-description lock query): it neither takes a lock nor disturbs the writer.
    ///
    /// If the kernel cannot answer (an error no supported file system gives), the writer is
    /// presumed alive: a reader never reports [`Error::WriterDied`] without evidence.
    pub fn writer_alive(&self) -> bool {
        sys::writer_lock_held(self.seg.file()).unwrap_or(true)
    }

    /// The process id recorded by the last writer that took the lease (it may have exited;
    /// see [`writer_alive`](Self::writer_alive)).
    pub fn writer_pid(&self) -> u32 {
        self.seg.header().writer_pid.load(Ordering::Relaxed)
    }

    /// The writer epoch: 1 for the creator, incremented by every writer that takes over.
    pub fn writer_epoch(&self) -> u64 {
        self.seg.header().writer_epoch.load(Ordering::Relaxed)
    }

    /// The number of slots.
    pub fn slot_count(&self) -> usize {
        self.slot_count as usize
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }
}

impl<T: SharedState> core::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.seg.name())
            .field("slots", &self.slot_count)
            .field("version", &self.version())
            .finish()
    }
}
