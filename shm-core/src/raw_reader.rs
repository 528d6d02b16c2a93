//! [`RawReader`]: reads any segment by the layout it stores, and the read-side machinery
//! (retries, liveness probes, waiting) that [`Reader`](crate::Reader) shares.

use crate::backend::Backend;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::info::SegmentInfo;
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol;
use crate::segment::{Expect, Segment};
use crate::sys::{self, Access};
use crate::SharedState;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failed attempts `try_read` makes before it gives up.
const TRY_READ_ATTEMPTS: u32 = 1 << 12;
/// Longest single futex sleep in `wait_for_update`: a writer that dies between publishing and
/// waking cannot strand a waiter for longer than this.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Longest sleep of a reader that polls (it could only map the segment read-only).
const POLL_SLICE: Duration = Duration::from_micros(200);
/// How often a stuck read checks whether the writer is still alive.
const LIVENESS_PROBE_EVERY: Duration = Duration::from_millis(1);

/// What an opener of a segment holding a `T` expects.
pub(crate) fn expect_type<T: SharedState>() -> Expect {
    Expect::Type {
        layout: LayoutBuf::from(T::LAYOUT),
        hash: T::LAYOUT_HASH,
    }
}

/// Reads any segment of this format without knowing its Rust type: the layout it stores, its
/// header facts and consistent snapshots of its payload bytes.
///
/// For tools and other languages, which decode the bytes by [`layout`](Self::layout). Opening
/// validates the header and checks the stored layout against the stored layout hash, so a
/// segment whose description is damaged is refused ([`Error::Corrupt`]). Programs that know the
/// type use [`Reader`](crate::Reader), which also checks that the type matches.
///
/// ```no_run
/// let r = shm_core::RawReader::open("/robot-state")?;
/// println!("{} holds `{}`, version {}", r.info().name(), r.layout(), r.version());
/// let mut bytes = vec![0u8; r.payload_size()];
/// r.read_timeout(&mut bytes, std::time::Duration::from_millis(100))?;
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct RawReader {
    seg: Segment,
    can_register_waiters: bool,
}

impl RawReader {
    /// Opens the named shared-memory segment `name` for reading, whatever type it holds.
    pub fn open(name: &str) -> Result<RawReader> {
        crate::Options::new().open_raw(name)
    }

    /// Opens a segment as [`open`](Self::open) does; readers map the segment writable when
    /// they may, only to register as futex waiters, and fall back to read-only.
    pub(crate) fn open_with(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        expect: &Expect,
    ) -> Result<RawReader> {
        let seg = match Segment::open(backend, name, Access::ReadWrite, ready_wait, expect) {
            Err(Error::PermissionDenied { .. }) => {
                Segment::open(backend, name, Access::ReadOnly, ready_wait, expect)?
            }
            other => other?,
        };
        Ok(Self::from_segment(seg))
    }

    pub(crate) fn from_segment(seg: Segment) -> RawReader {
        RawReader {
            can_register_waiters: seg.is_writable(),
            seg,
        }
    }

    /// One attempt to copy the latest published value, `len` words, into `sink`; the version
    /// if the copy is consistent.
    #[inline(always)]
    pub(crate) fn attempt(&self, len: usize, sink: impl protocol::Sink<AtomicU64>) -> Option<u64> {
        protocol::read_latest(&self.seg, len, sink)
    }

    /// Calls `attempt` until it succeeds or `TRY_READ_ATTEMPTS` failed; then the error
    /// [`stuck`](Self::stuck) gives if the writer is gone (after one last look), else
    /// [`Error::Timeout`]. [`Error::Truncated`] whenever the segment was shrunk.
    pub(crate) fn try_attempts(&self, mut attempt: impl FnMut() -> bool) -> Result<()> {
        for _ in 0..TRY_READ_ATTEMPTS {
            if attempt() {
                return self.seg.check_intact();
            }
            core::hint::spin_loop();
        }
        self.seg.check_intact()?;
        if self.seg.writer_alive() {
            Err(Error::Timeout)
        } else if attempt() {
            // The writer may have finished just before dying.
            self.seg.check_intact()
        } else {
            Err(self.stuck())
        }
    }

    /// Why nothing consistent can be read although no writer is alive: the segment was shrunk
    /// ([`Error::Truncated`]); with one slot, the writer died mid-write ([`Error::WriterDied`]);
    /// with two or more slots a dying writer cannot cause this (its slot is never the published
    /// one), so another process damaged `published` or a sequence word ([`Error::Corrupt`]).
    pub(crate) fn stuck(&self) -> Error {
        if let Err(e) = self.seg.check_intact() {
            e
        } else if self.seg.geometry().slot_count > 1 {
            Error::Corrupt {
                what: "the published slot does not hold the published version, and no writer is alive to rewrite it",
            }
        } else {
            Error::WriterDied
        }
    }

    /// Retries `attempt` until it succeeds, the writer is found dead (the error
    /// [`stuck`](Self::stuck) gives), the segment is found truncated ([`Error::Truncated`]), or
    /// `deadline` ([`Error::Timeout`]).
    #[cold]
    pub(crate) fn retry(
        &self,
        deadline: Deadline,
        mut attempt: impl FnMut() -> bool,
    ) -> Result<()> {
        let mut failures = 0u32;
        let mut next_probe = Instant::now() + LIVENESS_PROBE_EVERY;
        loop {
            if attempt() {
                return self.seg.check_intact();
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
                self.seg.check_intact()?;
                if !self.seg.writer_alive() {
                    return if attempt() {
                        self.seg.check_intact()
                    } else {
                        Err(self.stuck())
                    };
                }
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
        }
    }

    /// Copies a consistent snapshot of the latest published payload into `dst` and returns
    /// its version, the version of exactly those bytes; waits at most `timeout` for one
    /// ([`Error::Timeout`]). On a one-slot segment the snapshot may be newer than the
    /// [`version`](Self::version) loaded before it (the writer wrote on meanwhile, or is
    /// about to publish it): the version returned is then that newer one, so that
    /// [`wait_for_update`](Self::wait_for_update) with it waits for newer bytes. Fails with
    /// [`Error::WriterDied`] if the writer died mid-write (one-slot segments),
    /// [`Error::Corrupt`] if no writer is alive and another process damaged the published
    /// slot, or [`Error::Truncated`] once another process has shrunk the segment.
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn read_timeout(&self, dst: &mut [u8], timeout: Duration) -> Result<u64> {
        let len = self.checked_words(dst);
        let mut version = 0;
        self.retry(Deadline::after(timeout), || {
            self.attempt(len, payload::sink_into_bytes(dst))
                .map(|v| version = v)
                .is_some()
        })?;
        Ok(version)
    }

    /// Like [`read_timeout`](Self::read_timeout), but gives up after a bounded number of
    /// attempts instead of a time.
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn try_read(&self, dst: &mut [u8]) -> Result<u64> {
        let len = self.checked_words(dst);
        let mut version = 0;
        self.try_attempts(|| {
            self.attempt(len, payload::sink_into_bytes(dst))
                .map(|v| version = v)
                .is_some()
        })?;
        Ok(version)
    }

    fn checked_words(&self, dst: &[u8]) -> usize {
        assert_eq!(
            dst.len(),
            self.payload_size(),
            "the buffer must be exactly the payload size"
        );
        payload::words(dst.len())
    }

    /// The layout the segment stores: its type's fields, offsets and kinds, enough to decode
    /// the payload bytes without the Rust type.
    pub fn layout(&self) -> &LayoutBuf {
        self.seg.layout()
    }

    /// The payload's size in bytes: the length of every buffer this handle reads into (also
    /// [`SegmentInfo::payload_size`]; this is a field load, without `info()`'s lock query).
    pub fn payload_size(&self) -> usize {
        self.seg.geometry().payload_size
    }

    /// The publish counter: how many values were published since creation (0 for the initial
    /// value). Monotonic, as long as only the writer writes the segment: a hostile peer can
    /// store anything there, and once another process has shrunk the segment (see
    /// [`is_truncated`](Self::is_truncated)) it reads whatever is left, possibly 0.
    #[inline]
    pub fn version(&self) -> u64 {
        protocol::load_acquire(&self.seg.header().published)
    }

    /// Whether another process shrank the segment's file under this reader and an access
    /// faulted on the lost part. The process survives such a fault: the lost pages read as
    /// zeros from then on, the bounded calls ([`try_read`](Self::try_read),
    /// [`read_timeout`](Self::read_timeout), [`wait_for_update`](Self::wait_for_update))
    /// fail with [`Error::Truncated`], and values read are meaningless. It stays true for the
    /// life of this handle; open the segment again once it is re-created.
    pub fn is_truncated(&self) -> bool {
        self.seg.is_truncated()
    }

    /// Blocks until the version is greater than `since`, or `timeout` passes
    /// ([`Error::Timeout`]; `Duration::MAX` waits forever). Returns the new version, or
    /// [`Error::Truncated`] once another process has shrunk the segment.
    ///
    /// Sleeps on a process-shared futex in the segment; the writer wakes it, and pays for a
    /// syscall only while somebody waits. A reader that could only map the segment read-only
    /// cannot register as a waiter and polls instead, and so does a reader that finds the
    /// waiter count at its maximum (a hostile value: counting one more would wrap it to 0 and
    /// the writer would stop waking anybody).
    pub fn wait_for_update(&self, since: u64, timeout: Duration) -> Result<u64> {
        let h = self.seg.header();
        let v = self.version();
        self.seg.check_intact()?;
        if v > since {
            return Ok(v);
        }
        let deadline = Deadline::after(timeout);
        if !self.can_register_waiters || !register_waiter(&h.waiters) {
            loop {
                let v = self.version();
                self.seg.check_intact()?;
                if v > since {
                    return Ok(v);
                }
                let Some(left) = deadline.next_slice(POLL_SLICE) else {
                    return Err(Error::Timeout);
                };
                std::thread::sleep(left);
            }
        }
        // Registration protocol (see docs/segment-format.md, "Waiting for an update"): count
        // ourselves as a waiter, make the writer's half of the barrier a full one, then read
        // the futex word, then re-check the version. The writer publishes, then reads the
        // waiter count (see `protocol::Announce`), so either we see its new version or it sees
        // us and bumps the futex word, which makes our wait return.
        barrier_after_registering();
        let result = loop {
            let word = h.futex.load(Ordering::SeqCst);
            let v = h.published.load(Ordering::SeqCst);
            if let Err(e) = self.seg.check_intact() {
                break Err(e);
            }
            if v > since {
                break Ok(v);
            }
            let Some(left) = deadline.next_slice(WAIT_SLICE) else {
                break Err(Error::Timeout);
            };
            sys::futex_wait(&h.futex, word, left);
        };
        unregister_waiter(&h.waiters);
        result
    }

    /// What the segment is and who writes it; see [`SegmentInfo`]. Which facts are fixed and
    /// which are live snapshots is said there; the writer's liveness costs a lock query.
    pub fn info(&self) -> SegmentInfo {
        self.seg.info()
    }

    /// The segment, for the crate's test hooks.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

/// Counts one more waiter (SeqCst, see `wait_for_update`; streams and queues count their
/// waiters in `waiters` and `space_waiters` with it too), unless the count is at its maximum:
/// then `false`, and the caller polls. A compare-and-swap loop rather than `fetch_add`, so that
/// a hostile count of `u32::MAX` cannot wrap to 0 (with 0 waiters the writer skips the wake).
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
    sys::barrier_on_registered_processes();
}

/// Counts one waiter less, never below 0 (a hostile peer may have zeroed the count meanwhile).
pub(crate) fn unregister_waiter(waiters: &AtomicU32) {
    let _ = waiters.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}

impl core::fmt::Debug for RawReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawReader")
            .field("name", &self.seg.name())
            .field("layout", &format_args!("{}", self.layout()))
            .field("slots", &self.seg.geometry().slot_count)
            .field("version", &self.version())
            .finish()
    }
}
