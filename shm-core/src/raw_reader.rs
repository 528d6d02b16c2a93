//! [`RawReader`]: reads any segment by the layout it stores, and the read-side machinery
//! (retries, liveness probes, waiting) that [`Reader`](crate::Reader) shares.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::info::SegmentInfo;
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol;
use crate::segment::{Expect, Segment};
use crate::sys::Access;
use crate::wait::{self, Deadline, Pace};
use crate::SharedState;

use core::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Failed attempts `try_read` makes before it gives up.
const TRY_READ_ATTEMPTS: u32 = 1 << 12;
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

    /// Always [`Compat::Exact`](crate::Compat::Exact): an untyped reader reads the segment's
    /// payload as its stored layout describes it, whichever version of a type that is.
    pub fn compat(&self) -> crate::Compat {
        self.seg.compat()
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

    /// The writer epoch the header holds now: one more at each takeover of the writer lease.
    /// A load, unlike [`info`](Self::info), which also asks the kernel whether a writer holds
    /// the lease; a hostile peer may have stored anything there.
    #[inline]
    pub fn writer_epoch(&self) -> u64 {
        self.seg.writer_epoch()
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
        // The wait is over once the segment is found truncated, or the version passed `since`.
        let check = |registered: bool| {
            let v = wait::load_for_wait(&h.published, registered);
            match self.seg.check_intact() {
                Err(e) => Some(Err(e)),
                Ok(()) => (v > since).then_some(Ok(v)),
            }
        };
        if let Some(done) = check(false) {
            return done;
        }
        // The registration protocol of docs/segment-format.md ("Waiting for an update"), shared
        // with the streams and queues: see `wait`.
        let deadline = Deadline::after(timeout);
        let mut outcome = None;
        wait::wait_until(
            &h.futex,
            &h.waiters,
            self.can_register_waiters,
            deadline,
            Pace::State,
            |registered| {
                outcome = check(registered);
                outcome.is_some()
            },
        );
        // `wait_until` gives up only right after a check that found nothing.
        outcome.unwrap_or(Err(Error::Timeout))
    }

    /// Waits asynchronously until the version is greater than `since`, and returns it: the
    /// asynchronous [`wait_for_update`](Self::wait_for_update), shaped like
    /// `tokio::sync::watch::Receiver::changed` but with the version to wait beyond.
    ///
    /// Fails with [`Error::WriterDied`] when no writer holds the segment (at the start, or
    /// once the writer's process ends while waiting: a pidfd of the writer ends the wait at
    /// once), unless a newer version is there; with [`Error::Truncated`] once another process
    /// has shrunk the segment. Runtime-agnostic: the wait is armed on the process's shared
    /// wait engine, whose one thread wakes the task ([`WaitSet`](crate::WaitSet) says how
    /// the kernel waits). Dropping the future at any point cancels its wait; the waiter count
    /// it incremented goes back down once the kernel has let go of the wait.
    pub fn changed(&self, since: u64) -> crate::wait::Changed<'_> {
        crate::wait::Changed::new(self, since)
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
