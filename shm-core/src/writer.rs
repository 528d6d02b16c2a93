//! [`Writer`]: the one handle that publishes values to a segment.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol::{self, Resume};
use crate::reader::{expect_type, RawReader, Reader};
use crate::segment::{Segment, Spec};
use crate::sys::{self, Access};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use core::sync::atomic::Ordering;
use std::time::Duration;

/// Publishes values of `T` to a segment. There is one writer per segment at a time.
///
/// The writer holds the segment's writer lease, a kernel lock on its open file description,
/// for its whole lifetime; the kernel releases it when the writer is dropped or its process
/// dies, and another process can then take over with [`SharedState::open_writer`]. Dropping a
/// writer does not remove the segment: readers keep reading the last value (see
/// [`remove`](crate::remove)).
pub struct Writer<T: SharedState> {
    seg: Segment,
    /// Where this writer is: the last version it used (published, or after a takeover
    /// possibly written but never published by the previous writer), and the newest version
    /// whose slot holds a complete value, if any (what `get` returns).
    at: Resume,
    created: bool,
    _type: PhantomData<fn() -> T>,
}

/// How to make a new segment for a `T`, and how long to wait for one being made.
pub(crate) struct Make {
    pub slots: usize,
    pub mode: u32,
    pub ready_wait: Duration,
    pub crash_before_ready: bool,
}

impl<T: SharedState> Writer<T> {
    /// Words of a `T`: a compile-time constant, so small copies unroll.
    const WORDS: usize = payload::words(size_of::<T>());

    /// A writer of the segment `seg`, which holds version 0 and nothing else yet.
    fn of_new_segment(seg: Segment) -> Self {
        Writer {
            seg,
            at: Resume {
                version: 0,
                complete: Some(0),
            },
            created: true,
            _type: PhantomData,
        }
    }

    pub(crate) fn create(backend: &Backend, name: &str, make: &Make, initial: &T) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = payload::NonEmpty::<T>::CHECK;
        let layout = LayoutBuf::from(T::LAYOUT);
        let spec = Self::spec(&layout, make);
        let seg = Segment::create(backend, name, &spec, |seg| {
            protocol::write_initial(seg, Self::WORDS, payload::source_of(initial));
        })?;
        Ok(Self::of_new_segment(seg))
    }

    fn spec<'a>(layout: &'a LayoutBuf, make: &Make) -> Spec<'a> {
        Spec {
            layout,
            hash: T::LAYOUT_HASH,
            slots: make.slots,
            mode: make.mode,
            crash_before_ready: make.crash_before_ready,
            kind: crate::format::SegmentKind::State,
        }
    }

    pub(crate) fn open(backend: &Backend, name: &str, ready_wait: Duration) -> Result<Self> {
        let expect = expect_type::<T>();
        let seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, &expect)?;
        let h = seg.header();
        if !sys::try_lock_writer(seg.file()).map_err(Error::io("locking", name))? {
            return Err(Error::WriterBusy {
                pid: h.writer_pid.load(Ordering::Relaxed),
            });
        }
        // We hold the lease: nobody else writes. Record the takeover.
        h.writer_epoch.fetch_add(1, Ordering::Relaxed);
        h.writer_pid.store(sys::pid(), Ordering::Relaxed);
        let writer = Writer {
            at: protocol::resume(&seg),
            seg,
            created: false,
            _type: PhantomData,
        };
        // A writer that died between publishing and waking left sleepers behind: wake them.
        writer.wake_waiters();
        Ok(writer)
    }

    pub(crate) fn open_or_create(
        backend: &Backend,
        name: &str,
        make: &Make,
        initial: &T,
    ) -> Result<Self> {
        // Either create wins the `O_EXCL` race, or the segment exists and we attach to it. A
        // segment removed between the two steps sends us round again.
        loop {
            match Self::create(backend, name, make, initial) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            match Self::open(backend, name, make.ready_wait) {
                Err(Error::NotFound { .. }) => continue,
                // Its creator died before making it ready: take it over and initialize it.
                Err(Error::NotReady) => {
                    let layout = LayoutBuf::from(T::LAYOUT);
                    let spec = Self::spec(&layout, make);
                    let recovered = Segment::recover(backend, name, &spec, |seg| {
                        protocol::write_initial(seg, Self::WORDS, payload::source_of(initial));
                    });
                    match recovered {
                        Ok(Some(seg)) => return Ok(Self::of_new_segment(seg)),
                        Ok(None) | Err(Error::NotFound { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
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
        let next = self.at.version.wrapping_add(1);
        let wake = protocol::publish(&self.seg, next, Self::WORDS, payload::source_of(value));
        self.at = Resume {
            version: next,
            complete: Some(next),
        };
        if wake {
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
        let v = self.at.complete.ok_or(Error::WriterDied)?;
        let mut out = MaybeUninit::uninit();
        if protocol::read_version(&self.seg, v, Self::WORDS, payload::sink_into(&mut out)) {
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
        self.at.version
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
        let name = self.seg.name();
        let file = sys::reopen(self.seg.file(), Access::ReadWrite)
            .map_err(Error::io("reopening", name))?;
        let seg = Segment::open_file(
            self.seg.backend(),
            name,
            file,
            Access::ReadWrite,
            Duration::ZERO,
            &expect_type::<T>(),
        )?;
        Ok(Reader::from_raw(RawReader::from_segment(seg)))
    }
}

impl<T: SharedState + core::fmt::Debug> core::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.seg.name())
            .field("version", &self.at.version)
            .field("current", &self.get().ok())
            .finish()
    }
}
