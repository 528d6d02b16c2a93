//! [`Reader`]: reads consistent snapshots of a segment of a known type.

use crate::backend::Backend;
use crate::error::Result;
use crate::info::SegmentInfo;
use crate::layout::{Compat, LayoutBuf};
use crate::payload;
use crate::protocol;
use crate::raw_reader::{expect_type, RawReader};
use crate::wait::Deadline;
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use std::time::Duration;

/// Reads consistent snapshots of a `T` that another process (or this one) publishes.
///
/// Reads never lock and never make a syscall: they copy the latest published slot with atomic
/// word loads and retry if the writer overwrote it during the copy (seqlock). Created by
/// [`SharedState::open`] or [`Options::open`](crate::Options::open).
pub struct Reader<T: SharedState> {
    raw: RawReader,
    /// The segment's payload size: `size_of::<T>()`, or that of another version of an
    /// appendable `T` (see [`compat`](Self::compat)).
    stored: usize,
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
            stored: raw.segment().geometry().payload_size,
            raw,
            _type: PhantomData,
        }
    }

    /// How the segment's stored layout relates to `T`: [`Compat::Exact`], or another
    /// version of an appendable `T`. A later version ([`Compat::SegmentNewer`]) is read as
    /// far as `T` goes; of an earlier one ([`Compat::SegmentOlder`]) the fields `T` has
    /// beyond it read as zero.
    pub fn compat(&self) -> Compat {
        self.raw.segment().compat()
    }

    /// One attempt: copies the latest published value into `out`; `true` if the copy is
    /// consistent (then all of `out` is written).
    #[inline(always)]
    pub(crate) fn attempt(&self, out: &mut MaybeUninit<T>) -> bool {
        if size_of::<T>() <= self.stored {
            // The segment holds a whole `T` (always, but for an earlier version of an
            // appendable `T`): this branch's length is a compile-time constant, so a small
            // copy is straight-line moves. Through `sink_for` the length was a runtime value
            // on every read, and a 64-byte read took a third longer.
            self.raw
                .attempt(Self::WORDS, payload::sink_into(out))
                .is_some()
        } else {
            self.attempt_prefix(out)
        }
    }

    /// [`attempt`](Self::attempt) on a segment of an earlier, shorter version of an
    /// appendable `T`: copies the prefix it holds and zeroes the rest.
    #[inline(never)]
    fn attempt_prefix(&self, out: &mut MaybeUninit<T>) -> bool {
        let (words, sink) = payload::sink_for(out, self.stored);
        self.raw.attempt(words, sink).is_some()
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
    /// # When nothing consistent can be read
    /// `read` never panics. For payloads over 8 bytes, when the published value cannot be read and no writer is alive to
    /// publish another one, it returns the best value the segment still holds: the newest slot
    /// that copies consistently (possibly older than the published version), else the
    /// published slot's bytes as they are. This happens only
    /// - after the writer died in the middle of a write to a one-slot segment (the value may
    ///   then mix the previous value and the interrupted one);
    /// - on a segment another process damaged (its `published` counter or a sequence word);
    /// - after another process shrank the segment ([`is_truncated`](Self::is_truncated)
    ///   turns true; the lost part reads as zeros).
    ///
    /// The value is then a valid `T` but not a published one. Callers that must know use
    /// [`try_read`](Self::try_read) or [`read_timeout`](Self::read_timeout), which report
    /// [`Error::WriterDied`](crate::Error::WriterDied), [`Error::Corrupt`](crate::Error::Corrupt) or [`Error::Truncated`](crate::Error::Truncated) instead.
    ///
    /// A payload of 8 bytes or less is read with one atomic load of a copy of the latest value
    /// that the writer keeps beside the publish counter: always consistent, never retried. It
    /// is the published value or, if the writer is about to publish (or died just before
    /// publishing), the complete value it publishes next, so it may be one version ahead of
    /// [`version`](Self::version). Every read of such a payload ([`try_read`](Self::try_read),
    /// [`read_timeout`](Self::read_timeout) and the `_into` forms too) loads that word, so
    /// successive reads never go backwards whichever of them are mixed.
    #[inline(always)]
    pub fn read(&self) -> T {
        let mut out = MaybeUninit::uninit();
        self.read_to(&mut out);
        // SAFETY: `read_to` writes every byte of `out` on all its paths. Every bit pattern is
        // a valid `T` (`T: SharedState`).
        unsafe { out.assume_init() }
    }

    /// What [`read`](Self::read) and [`read_into`](Self::read_into) do: writes every byte of
    /// `out` on every path.
    #[inline(always)]
    fn read_to(&self, out: &mut MaybeUninit<T>) {
        if !self.first_attempt(out) {
            self.read_or_salvage(out);
        }
    }

    /// The attempt [`read`](Self::read) makes before it retries: for a payload of one word,
    /// the load of the `inline` word, which always succeeds; otherwise [`attempt`](Self::attempt).
    /// `true` if every byte of `out` is written with a consistent copy.
    #[inline(always)]
    pub(crate) fn first_attempt(&self, out: &mut MaybeUninit<T>) -> bool {
        if Self::WORDS == 1 && self.stored <= 8 {
            // One word, in the segment too (only then does the writer keep `inline`): every
            // byte of `out` comes from the one load, or is zeroed past a shorter payload (see
            // `payload::sink_for`).
            if size_of::<T>() <= self.stored {
                // A compile-time length (as in `attempt`): one load and one store.
                protocol::read_inline(self.raw.segment(), payload::sink_into(out));
            } else {
                let (_, sink) = payload::sink_for(out, self.stored);
                protocol::read_inline(self.raw.segment(), sink);
            }
            true
        } else {
            self.attempt(out)
        }
    }

    /// Like [`read`](Self::read), but copies into `dst` instead of returning the value: for
    /// large payloads a caller can reuse one buffer.
    ///
    /// Never panics; see [`read`](Self::read) for what it copies when nothing consistent can
    /// be read.
    #[inline]
    pub fn read_into(&self, dst: &mut T) {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the attempts only write bytes into
        // it, and every byte pattern is a valid `T` (`T: SharedState`), so `*dst` stays a valid
        // `T` whatever is written.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        self.read_to(out);
    }

    /// Retries into `out` until a consistent copy is there; if none can come (see
    /// [`read`](Self::read)), salvages the best value the segment holds. Writes every byte of
    /// `out` on every path.
    #[cold]
    #[inline(never)]
    fn read_or_salvage(&self, out: &mut MaybeUninit<T>) {
        if self
            .raw
            .retry(Deadline::never(), || self.attempt(out))
            .is_ok()
        {
            return;
        }
        let seg = self.raw.segment();
        let (words, sink) = payload::sink_for(out, self.stored);
        if !protocol::read_newest_complete(seg, words, sink) {
            let (words, sink) = payload::sink_for(out, self.stored);
            protocol::copy_published(seg, words, sink);
        }
    }

    /// Like [`read_timeout`](Self::read_timeout), but copies into `dst`, as
    /// [`read_into`](Self::read_into) does: bounded in time, and no copy of the payload on the
    /// stack. On an error `dst` holds unspecified (but valid) bytes.
    pub fn read_timeout_into(&self, dst: &mut T, timeout: Duration) -> Result<()> {
        // SAFETY: as in `read_into`: only bytes are written, and any bytes are a valid `T`.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        if self.first_attempt(out) {
            return self.raw.segment().check_intact();
        }
        self.raw
            .retry(Deadline::after(timeout), || self.attempt(out))
    }

    /// Like [`read`](Self::read), but gives up after a bounded number of attempts: with
    /// [`Error::WriterDied`](crate::Error::WriterDied) if the writer died mid-write (one-slot segments),
    /// [`Error::Corrupt`](crate::Error::Corrupt) if no writer is alive and the published slot was damaged, else
    /// [`Error::Timeout`](crate::Error::Timeout); and with [`Error::Truncated`](crate::Error::Truncated) once another process has shrunk the
    /// segment.
    pub fn try_read(&self) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        // Attempts as `read` makes them, so that a one-word payload comes from the same word
        // whichever read is called (reads never go backwards across calls).
        self.raw.try_attempts(|| self.first_attempt(&mut out))?;
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written (see `payload::sink_into`); every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// Like [`read`](Self::read), but waits at most `timeout` for a consistent value: fails as
    /// [`try_read`](Self::try_read) does, or with [`Error::Timeout`](crate::Error::Timeout).
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        if self.first_attempt(&mut out) {
            self.raw.segment().check_intact()?;
        } else {
            self.raw
                .retry(Deadline::after(timeout), || self.attempt(&mut out))?;
        }
        // SAFETY: an attempt returned true: `out` holds one consistent copy, every byte
        // written (see `payload::sink_into`); every bit pattern is a valid `T`.
        Ok(unsafe { out.assume_init() })
    }

    /// The publish counter: how many values were published since creation (0 for the initial
    /// value). Monotonic while only the writer writes the segment; see
    /// [`RawReader::version`]. A read that follows may return a newer value than this
    /// version's: the writer may have written more since (a payload of 8 bytes or less: the
    /// value it is about to publish, see [`read`](Self::read)), never an older one.
    #[inline]
    pub fn version(&self) -> u64 {
        self.raw.version()
    }

    /// Whether another process shrank the segment under this reader; see
    /// [`RawReader::is_truncated`].
    pub fn is_truncated(&self) -> bool {
        self.raw.is_truncated()
    }

    /// Blocks until the version is greater than `since`, or `timeout` passes; see
    /// [`RawReader::wait_for_update`].
    pub fn wait_for_update(&self, since: u64, timeout: Duration) -> Result<u64> {
        self.raw.wait_for_update(since, timeout)
    }

    /// Waits asynchronously until the version is greater than `since`; see
    /// [`RawReader::changed`].
    ///
    /// ```no_run
    /// # async fn f() -> shm_core::Result<()> {
    /// use shm_core::SharedState;
    /// let r = u64::open("/ticks")?;
    /// let mut v = r.version();
    /// loop {
    ///     v = r.changed(v).await?;
    ///     println!("{} at version {v}", r.read());
    /// }
    /// # }
    /// ```
    pub fn changed(&self, since: u64) -> crate::wait::Changed<'_> {
        self.raw.changed(since)
    }

    /// What the segment is and who writes it (the writer's liveness is a lock query); see
    /// [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.raw.info()
    }

    /// The layout the segment stores (equal to `T::LAYOUT` in everything the layout hash
    /// covers when [`compat`](Self::compat) is [`Compat::Exact`]; otherwise another version of
    /// `T`: opening checked it).
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
            .field("name", &self.raw.segment().name())
            .field("slots", &self.raw.segment().geometry().slot_count)
            .field("version", &self.version())
            .finish()
    }
}
