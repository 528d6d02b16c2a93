//! The read side: [`RawReader`], which reads any segment by the layout it stores, and
//! [`Reader`], which reads a segment of a known type.

use crate::backend::Backend;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol;
use crate::segment::{Expect, Segment};
use crate::sys::{self, Access};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use core::sync::atomic::{AtomicU64, Ordering};
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
/// type use [`Reader`], which also checks that the type matches.
///
/// ```no_run
/// let r = shm_core::RawReader::open("/robot-state")?;
/// println!("{} holds `{}` ({} bytes), version {}", r.name(), r.layout(), r.payload_size(), r.version());
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
    fn attempt(&self, len: usize, sink: impl protocol::Sink<AtomicU64>) -> Option<u64> {
        protocol::read_latest(&self.seg, len, sink)
    }

    /// Calls `attempt` until it succeeds or `TRY_READ_ATTEMPTS` failed; then
    /// [`Error::WriterDied`] if the writer is gone (after one last look), else
    /// [`Error::Timeout`].
    fn try_attempts(&self, mut attempt: impl FnMut() -> bool) -> Result<()> {
        for _ in 0..TRY_READ_ATTEMPTS {
            if attempt() {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        if self.writer_alive() {
            Err(Error::Timeout)
        } else if attempt() {
            // The writer may have finished just before dying.
            Ok(())
        } else {
            Err(Error::WriterDied)
        }
    }

    /// Retries `attempt` until it succeeds, the writer is found dead ([`Error::WriterDied`]),
    /// or `deadline` ([`Error::Timeout`]).
    #[cold]
    fn retry(&self, deadline: Deadline, mut attempt: impl FnMut() -> bool) -> Result<()> {
        let mut failures = 0u32;
        let mut next_probe = Instant::now() + LIVENESS_PROBE_EVERY;
        loop {
            if attempt() {
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
                    return if attempt() {
                        Ok(())
                    } else {
                        Err(Error::WriterDied)
                    };
                }
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
        }
    }

    /// Copies a consistent snapshot of the latest published payload into `dst` and returns
    /// its version; waits at most `timeout` for one ([`Error::Timeout`]), or fails with
    /// [`Error::WriterDied`] if the writer died mid-write (one-slot segments).
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

    /// The segment's layout hash (that of [`layout`](Self::layout), checked on open).
    pub fn layout_hash(&self) -> u64 {
        self.seg.header().layout_hash.load(Ordering::Relaxed)
    }

    /// The payload's size in bytes.
    pub fn payload_size(&self) -> usize {
        self.seg.geometry().payload_size
    }

    /// The publish counter: how many values were published since creation (0 for the initial
    /// value). Monotonic.
    #[inline]
    pub fn version(&self) -> u64 {
        protocol::load_acquire(&self.seg.header().published)
    }

    /// Blocks until the version is greater than `since`, or `timeout` passes
    /// ([`Error::Timeout`]; `Duration::MAX` waits forever). Returns the new version.
    ///
    /// Sleeps on a process-shared futex in the segment; the writer wakes it, and pays for a
    /// syscall only while somebody waits. A reader that could only map the segment read-only
    /// cannot register as a waiter and polls instead.
    pub fn wait_for_update(&self, since: u64, timeout: Duration) -> Result<u64> {
        let h = self.seg.header();
        let v = self.version();
        if v > since {
            return Ok(v);
        }
        let deadline = Deadline::after(timeout);
        if !self.can_register_waiters {
            loop {
                let v = self.version();
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
        // ourselves as a waiter, then read the futex word, then re-check the version. The
        // writer publishes with a SeqCst swap, then reads the waiter count (see
        // `protocol::publish`), so either we see its new version or it sees us and bumps the
        // futex word, which makes our wait return.
        h.waiters.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let word = h.futex.load(Ordering::SeqCst);
            let v = h.published.load(Ordering::SeqCst);
            if v > since {
                break Ok(v);
            }
            let Some(left) = deadline.next_slice(WAIT_SLICE) else {
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

    /// The process id of the segment's creator (it may have exited).
    pub fn creator_pid(&self) -> u32 {
        self.seg.header().creator_pid.load(Ordering::Relaxed)
    }

    /// The writer epoch: 1 for the creator, incremented by every writer that takes over.
    pub fn writer_epoch(&self) -> u64 {
        self.seg.header().writer_epoch.load(Ordering::Relaxed)
    }

    /// The number of slots.
    pub fn slot_count(&self) -> usize {
        self.seg.geometry().slot_count
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// The segment, for the crate's test hooks.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }
}

impl core::fmt::Debug for RawReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawReader")
            .field("name", &self.name())
            .field("layout", &format_args!("{}", self.layout()))
            .field("slots", &self.slot_count())
            .field("version", &self.version())
            .finish()
    }
}

/// Reads consistent snapshots of a `T` that another process (or this one) publishes.
///
/// Reads never lock and never make a syscall: they copy the latest published slot with atomic
/// word loads and retry if the writer overwrote it during the copy (seqlock). Created by
/// [`SharedState::open`] or [`Options::open`](crate::Options::open).
pub struct Reader<T: SharedState> {
    raw: RawReader,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> Reader<T> {
    /// Words of a `T`: a compile-time constant, so small copies unroll.
    const WORDS: usize = payload::words(size_of::<T>());

    pub(crate) fn open_with(backend: &Backend, name: &str, ready_wait: Duration) -> Result<Self> {
        let expect = expect_type::<T>();
        Ok(Self::from_raw(RawReader::open_with(
            backend, name, ready_wait, &expect,
        )?))
    }

    /// A typed reader over an untyped one whose segment was checked to hold a `T`.
    pub(crate) fn from_raw(raw: RawReader) -> Self {
        Reader {
            raw,
            _type: PhantomData,
        }
    }

    /// One attempt: copies the latest published value into `out`; `true` if the copy is
    /// consistent (then all of `out` is written).
    #[inline(always)]
    pub(crate) fn attempt(&self, out: &mut MaybeUninit<T>) -> bool {
        self.raw
            .attempt(Self::WORDS, payload::sink_into(out))
            .is_some()
    }

    /// The latest published value, a consistent snapshot, never torn.
    ///
    /// With two or more slots this does not wait for a write in progress: it copies the last
    /// complete value. It retries only when the writer laps the copy (writes `slots - 1` new
    /// values during it), or on one-slot segments while a write is in progress. Successive
    /// reads never go backwards. A process that scribbles on the segment can make it retry
    /// without end; use [`read_timeout`](Self::read_timeout) where time must be bounded.
    ///
    /// The value is returned by value, which needs its size in the caller's stack frame: for
    /// large payloads (megabytes) use [`read_into`](Self::read_into) or
    /// [`read_timeout_into`](Self::read_timeout_into), which copy into a buffer of yours (a
    /// `Box<T>`) and need no stack in proportion to the payload.
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
            self.read_or_panic(&mut out);
        }
        // SAFETY: an attempt returned true: one consistent copy wrote every byte of `out`,
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
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the attempts only write bytes into
        // it, and every byte pattern is a valid `T` (`T: SharedState`), so `*dst` stays a valid
        // `T` whatever is written.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        if !self.attempt(out) {
            self.read_or_panic(out);
        }
    }

    /// Retries into `out` until a consistent copy is there; panics if the writer died mid-write.
    #[cold]
    #[inline(never)]
    fn read_or_panic(&self, out: &mut MaybeUninit<T>) {
        if let Err(e) = self.raw.retry(Deadline::never(), || self.attempt(out)) {
            panic!("cannot read segment {:?}: {e}", self.name());
        }
    }

    /// Like [`read_timeout`](Self::read_timeout), but copies into `dst`, as
    /// [`read_into`](Self::read_into) does: bounded in time, and no copy of the payload on the
    /// stack. On an error `dst` holds unspecified (but valid) bytes.
    pub fn read_timeout_into(&self, dst: &mut T, timeout: Duration) -> Result<()> {
        // SAFETY: as in `read_into`: only bytes are written, and any bytes are a valid `T`.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        if self.attempt(out) {
            return Ok(());
        }
        self.raw
            .retry(Deadline::after(timeout), || self.attempt(out))
    }

    /// Like [`read`](Self::read), but gives up after a bounded number of attempts: with
    /// [`Error::WriterDied`] if the writer died mid-write, else [`Error::Timeout`].
    pub fn try_read(&self) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        self.raw.try_attempts(|| self.attempt(&mut out))?;
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written; every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// Like [`read`](Self::read), but waits at most `timeout` for a consistent value: fails with
    /// [`Error::WriterDied`] if the writer died mid-write, or [`Error::Timeout`].
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        if !self.attempt(&mut out) {
            self.raw
                .retry(Deadline::after(timeout), || self.attempt(&mut out))?;
        }
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written; every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// The publish counter: how many values were published since creation (0 for the initial
    /// value). Monotonic.
    #[inline]
    pub fn version(&self) -> u64 {
        self.raw.version()
    }

    /// Blocks until the version is greater than `since`, or `timeout` passes; see
    /// [`RawReader::wait_for_update`].
    pub fn wait_for_update(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.raw.wait_for_update(since, timeout)
    }

    /// Whether a writer currently holds the segment's writer lease; see
    /// [`RawReader::writer_alive`].
    pub fn writer_alive(&self) -> bool {
        self.raw.writer_alive()
    }

    /// The process id recorded by the last writer that took the lease (it may have exited).
    pub fn writer_pid(&self) -> u32 {
        self.raw.writer_pid()
    }

    /// The writer epoch: 1 for the creator, incremented by every writer that takes over.
    pub fn writer_epoch(&self) -> u64 {
        self.raw.writer_epoch()
    }

    /// The number of slots.
    pub fn slot_count(&self) -> usize {
        self.raw.slot_count()
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// The layout the segment stores (equal to `T::LAYOUT` in everything the layout hash
    /// covers: opening checked it).
    pub fn stored_layout(&self) -> &LayoutBuf {
        self.raw.layout()
    }

    /// The untyped reader underneath, for the crate's test hooks.
    pub(crate) fn raw(&self) -> &RawReader {
        &self.raw
    }
}

impl<T: SharedState> core::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.name())
            .field("slots", &self.slot_count())
            .field("version", &self.version())
            .finish()
    }
}
