//! [`Writer`]: the one handle that publishes values to a segment.

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::options::{Backend, Options};
use crate::payload;
use crate::reader::Reader;
use crate::segment::Segment;
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
    version: u64,
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
        let version = h.published.load(Ordering::Acquire);
        Ok(Writer {
            seg,
            version,
            created: false,
            _type: PhantomData,
        })
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
        if h.waiters.load(Ordering::SeqCst) != 0 {
            h.futex.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake_all(&h.futex);
        }
    }

    /// Applies `f` to a copy of the current value and publishes the result.
    #[inline]
    pub fn update(&mut self, f: impl FnOnce(&mut T)) {
        let mut v = self.get();
        f(&mut v);
        self.write(&v);
    }

    /// The last published value, copied from its slot.
    ///
    /// Only the writer writes slots, so this copy does not race with a write (unless another
    /// process scribbles on the segment, in which case it returns whatever bytes are there,
    /// still a valid `T`). After taking over a one-slot segment whose writer died mid-write, it
    /// is the half-written value, which the next write replaces.
    pub fn get(&self) -> T {
        let n = self.seg.geometry().slot_count as u64;
        let i = (self.version % n) as usize;
        let mut out = MaybeUninit::uninit();
        if payload::read_into(self.seg.slot_seq(i), self.seg.slot_words(i), None, &mut out) {
            // SAFETY: a consistent copy wrote every byte of `out`; every bit pattern is a
            // valid `T` (`T: SharedState`).
            unsafe { out.assume_init() }
        } else {
            payload::read_unvalidated(self.seg.slot_words(i))
        }
    }

    /// The version of the last published value.
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
            .field("current", &self.get())
            .finish()
    }
}
