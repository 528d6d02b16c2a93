//! [`Writer`]: the one handle that publishes values of a known type to a segment.

use crate::backend::Backend;
use crate::error::Result;
use crate::info::SegmentInfo;
use crate::layout::{Compat, LayoutBuf};
use crate::payload;
use crate::protocol;
use crate::raw_reader::expect_type;
use crate::raw_writer::{spec, Make, RawWriter};
use crate::reader::Reader;
use crate::segment::Segment;
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::{size_of, MaybeUninit};
use std::time::Duration;

/// Payloads larger than this are never copied onto the stack by `update`.
const LARGE_PAYLOAD: usize = 16 << 10;

/// Publishes values of `T` to a segment. There is one writer per segment at a time, unless the
/// segment was made for writers that take turns
/// ([`Options::shared_writers`](crate::Options::shared_writers)): then any number of writers
/// hold it at once, each writing in [`turn`](Self::turn)s.
///
/// The writer holds the segment's writer lease, a kernel lock on its open file description,
/// for its whole lifetime; the kernel releases it when the writer is dropped or its process
/// dies, and another process can then take over with [`SharedState::open_writer`]. The lease
/// stays with the process that took it: a child made by `fork` does not hold it, and the copy
/// of the writer it inherits panics rather than publish (its readers keep reading). Dropping a
/// writer does not remove the segment: readers keep reading the last value (see
/// [`remove`](crate::remove)).
pub struct Writer<T: SharedState> {
    raw: RawWriter,
    /// The value a turn works on (turn-taking writers; allocated at the first turn).
    turn_value: Option<Box<MaybeUninit<T>>>,
    /// Set when this writer adopted a segment holding another version of `T` (never for a
    /// turn-taking writer: those write the stored layout exactly).
    adopted: Option<Box<Adopted>>,
    _type: PhantomData<fn() -> T>,
}

/// What a writer (of state or of a stream) that adopted another version's layout writes
/// differently.
pub(crate) struct Adopted {
    /// The segment's payload size.
    pub stored: usize,
    /// Byte ranges of `T`'s `#[shm(deprecated)]` fields, zeroed in every value written.
    pub deprecated: Vec<(usize, usize)>,
}

impl Adopted {
    /// What a writer of `T` on `seg` writes differently, if it adopted another version.
    pub(crate) fn of<T: SharedState>(seg: &Segment) -> Option<Box<Adopted>> {
        (seg.compat() != Compat::Exact).then(|| {
            let mut deprecated = Vec::new();
            deprecated_ranges(T::LAYOUT, 0, &mut deprecated);
            Box::new(Adopted {
                stored: seg.geometry().payload_size,
                deprecated,
            })
        })
    }
}

/// The byte ranges (from the start of `layout`, which starts at `at`) of its fields marked
/// `#[shm(deprecated)]`, nested ones included.
fn deprecated_ranges(layout: &crate::Layout, at: usize, out: &mut Vec<(usize, usize)>) {
    for f in layout.fields() {
        let start = at + f.offset;
        if f.deprecated {
            out.push((start, start + f.layout.size));
        } else {
            deprecated_ranges(f.layout, start, out);
        }
    }
}

impl<T: SharedState> Writer<T> {
    /// Words of a `T`: a compile-time constant, so small copies unroll.
    const WORDS: usize = payload::words(size_of::<T>());

    /// The untyped writer underneath, for the crate's test and bench hooks.
    pub(crate) fn raw_mut(&mut self) -> &mut RawWriter {
        &mut self.raw
    }

    fn of_raw(raw: RawWriter) -> Self {
        let adopted = Adopted::of::<T>(raw.segment());
        Writer {
            raw,
            turn_value: None,
            adopted,
            _type: PhantomData,
        }
    }

    /// How the segment's stored layout relates to `T`: [`Compat::Exact`] unless this writer
    /// adopted another version of its appendable type (see
    /// [`Options::adopt_stored_layout`](crate::Options::adopt_stored_layout)).
    pub fn compat(&self) -> Compat {
        self.raw.segment().compat()
    }

    /// What [`write`](Self::write) does for a writer that adopted another version's layout:
    /// the segment's payload words, from the common prefix of `value`, zero past it and in
    /// deprecated fields.
    #[cold]
    fn write_adopted(&mut self, value: &T, adopted: &Adopted) {
        let len = size_of::<T>().min(adopted.stored);
        // SAFETY: the first `len <= size_of::<T>()` bytes of `value`, initialized (no padding:
        // `T: SharedState`) and immutably borrowed for the call.
        let bytes = unsafe { payload::FromBytes::new(value as *const T as *const u8, len) };
        let source = payload::ZeroRanges {
            inner: bytes,
            zero: &adopted.deprecated,
        };
        self.raw.publish(payload::words(adopted.stored), source);
    }

    pub(crate) fn create(backend: &Backend, name: &str, make: &Make, initial: &T) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = payload::NonEmpty::<T>::CHECK;
        let layout = LayoutBuf::from(T::LAYOUT);
        let spec = spec(&layout, T::LAYOUT_HASH, make);
        RawWriter::create_with(backend, name, &spec, Self::fill(initial)).map(Self::of_raw)
    }

    /// Writes `initial` into a new segment as its initial value.
    fn fill(initial: &T) -> impl Fn(&Segment) + '_ {
        move |seg| protocol::write_initial(seg, Self::WORDS, payload::source_of(initial))
    }

    pub(crate) fn open(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        turns: bool,
        adopt: bool,
    ) -> Result<Self> {
        RawWriter::open(backend, name, ready_wait, &expect_type::<T>(), turns, adopt)
            .map(Self::of_raw)
    }

    /// Starts a turn (see [`turn`](Self::turn)): takes the turn lock within `timeout` and
    /// copies the current value into `turn_value`; returns whether it recovered from a writer
    /// that died in its turn.
    pub(crate) fn begin_turn(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let value = self.turn_value.get_or_insert_with(Box::new_uninit);
        self.raw
            .begin_turn(timeout, Self::WORDS, payload::sink_into(value))
    }

    /// The value of the turn in progress.
    pub(crate) fn turn_value(&mut self) -> &mut T {
        let value = self.turn_value.as_mut().expect("a turn is in progress");
        // SAFETY: a turn is in progress: `begin_turn` succeeded, and its consistent copy wrote
        // every byte of the value (see `payload::sink_into`); every bit pattern is a valid `T`
        // (`T: SharedState`), so whatever the turn's code stored since keeps it valid.
        unsafe { value.assume_init_mut() }
    }

    /// The value of the turn in progress, shared.
    pub(crate) fn turn_value_ref(&self) -> &T {
        let value = self.turn_value.as_ref().expect("a turn is in progress");
        // SAFETY: as in `turn_value`.
        unsafe { value.assume_init_ref() }
    }

    /// Ends the turn in progress, publishing its value if `publish`.
    pub(crate) fn end_turn(&mut self, publish: bool) {
        let value = &self.turn_value;
        self.raw.end_turn(|raw| {
            if publish {
                let value = value.as_ref().expect("a turn is in progress");
                // SAFETY: as in `turn_value`: the turn's value is initialized.
                let value = unsafe { value.assume_init_ref() };
                raw.publish(Self::WORDS, payload::source_of(value));
            }
        });
    }

    pub(crate) fn open_or_create(
        backend: &Backend,
        name: &str,
        make: &Make,
        initial: &T,
    ) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = payload::NonEmpty::<T>::CHECK;
        let layout = LayoutBuf::from(T::LAYOUT);
        let spec = spec(&layout, T::LAYOUT_HASH, make);
        let expect = expect_type::<T>();
        let fill = Self::fill(initial);
        RawWriter::open_or_create_with(
            backend,
            name,
            &spec,
            make.ready_wait,
            &expect,
            fill,
            make.adopt,
        )
        .map(Self::of_raw)
    }

    /// Publishes `value`: readers see it from now on.
    ///
    /// Writes the slot after the latest one through the seqlock, then publishes its version.
    /// No syscall unless a reader is blocked in [`Reader::wait_for_update`], and no locked
    /// instruction where the kernel offers `membarrier` (the writer registers its process for
    /// it when it takes the lease; a waiter then pays for the barrier instead).
    ///
    /// Once another process has shrunk the segment ([`is_truncated`](Self::is_truncated)),
    /// writes land in private zero pages that no reader sees; the process is not killed.
    /// [`try_update`](Self::try_update) and [`get`](Self::get) report [`Error::Truncated`](crate::Error::Truncated).
    ///
    /// # Panics
    /// In a process made by `fork` after this writer was made: the copy the child inherited
    /// does not hold the lease (it stayed with the parent) and must not publish beside it.
    ///
    /// A writer that takes turns ([`Options::shared_writers`](crate::Options::shared_writers))
    /// writes in a turn of its own (see [`turn`](Self::turn)), waiting for it without limit,
    /// and panics if the turn cannot start (a damaged segment).
    #[inline]
    pub fn write(&mut self, value: &T) {
        // One test for the uncommon writers, and nothing stored in the handle on the common
        // path but the version.
        if self.raw.turns | self.adopted.is_some() {
            return self.write_uncommon(value);
        }
        self.raw.publish(Self::WORDS, payload::source_of(value));
    }

    /// [`write`](Self::write) for a writer that takes turns or adopted another version's
    /// layout.
    #[cold]
    fn write_uncommon(&mut self, value: &T) {
        if self.raw.turns {
            return self.write_in_turn(value);
        }
        if let Some(adopted) = self.adopted.take() {
            self.write_adopted(value, &adopted);
            self.adopted = Some(adopted);
        }
    }

    /// A sink for a `T` from the segment's slots, and the number of words to copy (see
    /// `payload::sink_for`).
    #[inline(always)]
    fn sink<'a>(&self, out: &'a mut MaybeUninit<T>) -> (usize, payload::ToBytes<'a>) {
        match &self.adopted {
            None => (Self::WORDS, payload::sink_into(out)),
            Some(a) => payload::sink_for(out, a.stored),
        }
    }

    #[cold]
    fn write_in_turn(&mut self, value: &T) {
        if let Err(e) = self.raw.begin_turn(None, Self::WORDS, |_, _| {}) {
            panic!("cannot write segment {:?}: {e}", self.raw.segment().name());
        }
        self.raw
            .end_turn(|raw| raw.publish(Self::WORDS, payload::source_of(value)));
    }

    /// Applies `f` to a copy of the current value (see [`get`](Self::get)) and publishes the
    /// result.
    ///
    /// # Panics
    /// If there is no complete current value (see [`get`](Self::get)): after taking over a
    /// one-slot segment whose writer died mid-write, or a segment another process damaged or
    /// shrank. Use [`try_update`](Self::try_update) to get the error instead. In a `fork`
    /// child, as [`write`](Self::write) does.
    #[inline]
    pub fn update(&mut self, f: impl FnOnce(&mut T)) {
        if let Err(e) = self.try_update(f) {
            panic!("cannot update segment {:?}: {e}", self.raw.segment().name());
        }
    }

    /// Like [`update`](Self::update), but fails with the error [`get`](Self::get) gives instead
    /// of panicking when there is no complete current value.
    ///
    /// A payload larger than 16 KiB is copied into a heap buffer rather than onto the stack,
    /// so that updating a megabytes-large state works on any thread.
    ///
    /// A writer that takes turns updates in a turn of its own (see [`turn`](Self::turn)),
    /// waiting for it without limit: the update applies to the latest value, whichever writer
    /// published it.
    #[inline]
    pub fn try_update(&mut self, f: impl FnOnce(&mut T)) -> Result<()> {
        if self.raw.turns {
            let mut turn = self.turn_within(None)?;
            f(&mut turn);
            return Ok(());
        }
        if size_of::<T>() > LARGE_PAYLOAD {
            let mut v = Box::<T>::new_uninit();
            let (words, sink) = self.sink(&mut v);
            self.raw.current(words, sink)?;
            // SAFETY: `current` succeeded: a consistent copy wrote every byte of `v`; every
            // bit pattern is a valid `T` (`T: SharedState`).
            let mut v = unsafe { v.assume_init() };
            f(&mut v);
            self.write(&v);
        } else {
            let mut v = self.get()?;
            f(&mut v);
            self.write(&v);
        }
        Ok(())
    }

    /// Copies the newest complete value into `dst` (see [`get`](Self::get)), without a copy of
    /// the payload on the stack: for large payloads. On an error `dst` holds unspecified (but
    /// valid) bytes.
    pub fn get_into(&self, dst: &mut T) -> Result<()> {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the copy only writes bytes into it,
        // and every byte pattern is a valid `T` (`T: SharedState`), so `*dst` stays a valid `T`
        // whatever is written.
        let out = unsafe { &mut *(dst as *mut T as *mut MaybeUninit<T>) };
        let (words, sink) = self.sink(out);
        self.raw.current(words, sink)
    }

    /// The newest complete value, copied from its slot: the last value this writer published
    /// or, right after a takeover, the newest value the previous writer completed. Returned by
    /// value: for large payloads see [`get_into`](Self::get_into).
    ///
    /// Fails, until the next [`write`](Self::write), when there is no complete current value:
    /// [`Error::WriterDied`](crate::Error::WriterDied) after taking over a one-slot segment whose writer died mid-write,
    /// [`Error::Corrupt`](crate::Error::Corrupt) after taking over a segment whose published slot another process
    /// damaged. Fails with [`Error::Truncated`](crate::Error::Truncated) once another process has shrunk the segment. A
    /// half-written value is never handed out as current.
    pub fn get(&self) -> Result<T> {
        let mut out = MaybeUninit::uninit();
        let (words, sink) = self.sink(&mut out);
        self.raw.current(words, sink)?;
        // SAFETY: `current` succeeded: a consistent copy wrote every byte of `out` (see
        // `payload::sink_into`); every bit
        // pattern is a valid `T` (`T: SharedState`).
        Ok(unsafe { out.assume_init() })
    }

    /// The version this writer last wrote: the last one it published or, right after a
    /// takeover, the newest version the previous writer got to (published or not). The next
    /// write publishes `version() + 1`.
    pub fn version(&self) -> u64 {
        self.raw.version()
    }

    /// Whether this handle created the segment (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.raw.created()
    }

    /// Whether another process shrank the segment's file under this writer (see
    /// [`write`](Self::write)). Sticky for the life of this handle.
    pub fn is_truncated(&self) -> bool {
        self.raw.is_truncated()
    }

    /// What the segment is and who writes it (this writer: its epoch is
    /// `info().writer().epoch()`); see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.raw.info()
    }

    /// A reader of this segment with its own open file description, so that its
    /// [`WriterInfo::alive`](crate::WriterInfo::alive) sees this writer's lease. For anonymous segments, this is how
    /// `fork` children get a reader: make it before forking.
    pub fn reader(&self) -> Result<Reader<T>> {
        Ok(Reader::from_raw(self.raw.reader_with(&expect_type::<T>())?))
    }
}

impl<T: SharedState + core::fmt::Debug> core::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Writer")
            .field("name", &self.raw.segment().name())
            .field("version", &self.version())
            .field("current", &self.get().ok())
            .finish()
    }
}
