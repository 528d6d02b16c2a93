//! [`Writer`]: the one handle that publishes values to a segment.

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::options::{Backend, Options};
use crate::payload;
use crate::reader::Reader;
use crate::segment::Segment;
use crate::seqlock;
use crate::sys::{self, Access};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::sync::atomic::Ordering;

/// Publishes values of `T` to a segment. There is one writer per segment at a time.
///
/// The writer holds the segment's writer lease, a kernel lock on its open file description,
/// for its whole lifetime; the kernel releases it when the writer is dropped or its process
/// dies, and another process can then take over with [`SharedState::open_writer`]. Dropping a
/// writer does not remove the segment: readers keep reading the last value.
pub struct Writer<T: SharedState> {
    seg: Segment,
    /// The last version this writer used (published, or after a takeover possibly written but
    /// never published by the previous writer); the next write is `version + 1`.
    version: u64,
    /// The newest version whose slot holds a complete value, if any: what `get` returns.
    complete: Option<u64>,
    created: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> Writer<T> {
    pub(crate) fn create(opts: &Options, name: &str, initial: &T) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = payload::NonEmpty::<T>::CHECK;
        let desc = Descriptor::from(T::LAYOUT);
        let seg = Segment::create(opts, name, &desc, T::LAYOUT_HASH, |seg| {
            payload::write(seg.slot_seq(0), seg.slot_words(0), 0, initial);
        })?;
        Ok(Writer {
            seg,
            version: 0,
            complete: Some(0),
            created: true,
            _type: PhantomData,
        })
    }

    pub(crate) fn open(opts: &Options, name: &str) -> Result<Self> {
        let desc = Descriptor::from(T::LAYOUT);
        let seg = Segment::open(opts, name, Access::ReadWrite, &desc, T::LAYOUT_HASH)?;
        let h = seg.header();
        if !sys::try_lock_writer(seg.file())? {
            return Err(Error::WriterBusy {
                pid: h.writer_pid.load(Ordering::Relaxed),
            });
        }
        // We hold the lease: nobody else writes. Record the takeover.
        h.writer_epoch.fetch_add(1, Ordering::Relaxed);
        h.writer_pid.store(sys::pid(), Ordering::Relaxed);
        let published = h.published.load(Ordering::Acquire);
        // With one slot, readers accept any complete value in it, so a version number (and
        // with it a sequence value) must never be used twice: the previous writer may have
        // written, or half-written, the version after the last one it published, and a reader
        // that loaded that write's sequence value must not find the same value after ours.
        // With two or more slots readers accept only the published version, so rewriting an
        // unpublished one is harmless, and the published slot holds the current value.
        let (version, complete) = if seg.geometry().slot_count == 1 {
            let seq = seg.slot_seq(0).load(Ordering::Acquire);
            let v = seq.saturating_sub(1) / 2;
            let complete = (seq == seqlock::complete(v)).then_some(v);
            (v.max(published), complete)
        } else {
            (published, Some(published))
        };
        let writer = Writer {
            seg,
            version,
            complete,
            created: false,
            _type: PhantomData,
        };
        // A writer that died between publishing and waking left sleepers behind: wake them.
        writer.wake_waiters();
        Ok(writer)
    }

    fn recover(opts: &Options, name: &str, initial: &T) -> Result<Option<Self>> {
        let desc = Descriptor::from(T::LAYOUT);
        let seg = Segment::recover(opts, name, &desc, T::LAYOUT_HASH, |seg| {
            payload::write(seg.slot_seq(0), seg.slot_words(0), 0, initial);
        })?;
        Ok(seg.map(|seg| Writer {
            seg,
            version: 0,
            complete: Some(0),
            created: true,
            _type: PhantomData,
        }))
    }

    pub(crate) fn open_or_create(opts: &Options, name: &str, initial: &T) -> Result<Self> {
        // Either create wins the `O_EXCL` race, or the segment exists and we attach to it. A
        // segment removed between the two steps sends us round again.
        loop {
            match Self::create(opts, name, initial) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(opts, name) {
                Err(Error::NotFound { .. }) => continue,
                // Its creator died before making it ready: take it over and initialize it.
                Err(Error::NotReady) => match Self::recover(opts, name, initial) {
                    Ok(Some(w)) => return Ok(w),
                    Ok(None) | Err(Error::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Publishes `value`: readers see it from now on.
    ///
    /// Writes the slot after the latest one through the seqlock, then publishes its version.
    /// No syscall unless a reader is blocked in [`Reader::wait_for_update`].
    #[inline]
    pub fn write(&mut self, value: &T) {
        let next = self.version.wrapping_add(1);
        let n = self.seg.geometry().slot_count as u64;
        let i = (next % n) as usize;
        payload::write(self.seg.slot_seq(i), self.seg.slot_words(i), next, value);
        let h = self.seg.header();
        // A SeqCst read-modify-write publishes (it is also a Release store) and orders the
        // publication before the waiter-count load below, pairing with the waiter's SeqCst
        // registration: either the waiter sees `next`, or we see it registered (see
        // `Reader::wait_for_update`). One locked instruction, cheaper than a store and a fence.
        h.published.swap(next, Ordering::SeqCst);
        self.version = next;
        self.complete = Some(next);
        if h.waiters.load(Ordering::SeqCst) != 0 {
            self.wake_waiters();
        }
    }

    /// Bumps the futex word and wakes every waiter.
    fn wake_waiters(&self) {
        let h = self.seg.header();
        h.futex.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_all(&h.futex);
    }

    /// Applies `f` to a copy of the current value (see [`get`](Self::get)) and publishes the
    /// result.
    ///
    /// # Panics
    /// If there is no complete current value: only after taking over a one-slot segment whose
    /// writer died mid-write, until the next [`write`](Self::write). Use
    /// [`try_update`](Self::try_update) to get an error instead.
    #[inline]
    pub fn update(&mut self, f: impl FnOnce(&mut T)) {
        if let Err(e) = self.try_update(f) {
            panic!("cannot update segment {:?}: {e}", self.seg.name());
        }
    }

    /// Like [`update`](Self::update), but fails with [`Error::WriterDied`] instead of panicking
    /// when there is no complete current value.
    #[inline]
    pub fn try_update(&mut self, f: impl FnOnce(&mut T)) -> Result<()> {
        let mut v = self.get()?;
        f(&mut v);
        self.write(&v);
        Ok(())
    }

    /// The newest complete value, copied from its slot: the last value this writer published
    /// or, right after a takeover, the newest value the previous writer completed.
    ///
    /// Fails with [`Error::WriterDied`] when no slot holds a complete value: only after taking
    /// over a one-slot segment whose writer died mid-write, until the next
    /// [`write`](Self::write). A half-written value is never handed out as current.
    pub fn get(&self) -> Result<T> {
        let v = self.complete.ok_or(Error::WriterDied)?;
        let n = self.seg.geometry().slot_count as u64;
        let i = (v % n) as usize;
        let mut out = MaybeUninit::uninit();
        let expected = Some(seqlock::complete(v));
        if payload::read_into(
            self.seg.slot_seq(i),
            self.seg.slot_words(i),
            expected,
            &mut out,
        ) {
            // SAFETY: a consistent copy wrote every byte of `out`; every bit pattern is a
            // valid `T` (`T: SharedState`).
            Ok(unsafe { out.assume_init() })
        } else {
            // Only this writer writes slots; another process scribbled on the segment.
            Err(Error::Corrupt {
                what: "the current slot changed under its writer",
            })
        }
    }

    /// The version this writer last wrote: the last one it published or, right after a
    /// takeover, the newest version the previous writer got to (published or not). The next
    /// write publishes `version() + 1`.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether this handle created the segment (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// This writer's epoch: 1 for the creator, one more for every takeover.
    pub fn epoch(&self) -> u64 {
        self.seg.header().writer_epoch.load(Ordering::Relaxed)
    }

    /// The segment's name (empty for anonymous segments).
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// A reader of this segment with its own open file description, so that its
    /// [`Reader::writer_alive`] sees this writer's lease. For anonymous segments, this is how
    /// `fork` children get a reader: make it before forking.
    pub fn reader(&self) -> Result<Reader<T>> {
        let file = sys::reopen(self.seg.file(), Access::ReadWrite)?;
        let desc = Descriptor::from(T::LAYOUT);
        let opts = Options::new().backend(self.seg.backend().clone());
        let seg = Segment::open_file(
            &opts,
            self.seg.name(),
            file,
            Access::ReadWrite,
            &desc,
            T::LAYOUT_HASH,
        )?;
        Ok(Reader::from_segment(seg, true))
    }

    /// Removes the segment's name; the writer and open readers keep working.
    pub fn remove(&self) -> Result<()> {
        match self.seg.backend() {
            Backend::Anonymous => Ok(()),
            b => crate::segment::unlink(b, self.seg.name()),
        }
    }
}

impl<T: SharedState + core::fmt::Debug> core::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.seg.name())
            .field("version", &self.version)
            .field("current", &self.get().ok())
            .finish()
    }
}
