//! [`RawWriter`]: publishes payload bytes described by a [`LayoutBuf`], and the write-side
//! machinery (creation, takeover, idempotent start, publishing) that
//! [`Writer`](crate::Writer) shares.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::SegmentKind;
use crate::info::SegmentInfo;
use crate::layout::{Compat, LayoutBuf};
use crate::payload;
use crate::protocol::{self, Announce, Resume};
use crate::raw_reader::RawReader;
use crate::segment::{Expect, Recovered, Segment, Spec};
use crate::sys::{self, Access};
use crate::wait::Deadline;
use core::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The least time `open_or_create` keeps trying before it gives up with `NotReady`, however
/// short the ready wait.
const MIN_OPEN_OR_CREATE: Duration = Duration::from_millis(500);

/// How to make a new segment, and how long to wait for one being made.
pub(crate) struct Make {
    pub slots: usize,
    pub mode: u32,
    pub ready_wait: Duration,
    /// Take over a segment that holds another version of the writer's appendable type.
    pub adopt: bool,
    pub crash_before_ready: bool,
    /// Writers take turns (`Options::shared_writers`).
    pub turns: bool,
}

/// Publishes payload bytes to a segment whose type is known only by its [`LayoutBuf`]: for
/// other languages' writers and tools, which have the layout a Rust type exported but not the
/// type. There is one writer per segment at a time, typed or not.
///
/// Holds the segment's writer lease as [`Writer`](crate::Writer) does. The bytes written must be a valid value
/// of the layout (every field's bytes as the layout says); the protocol copies them as they
/// are, and readers validate helper types when they decode them.
pub struct RawWriter {
    seg: Segment,
    /// The last version this writer used: published, or after a takeover possibly written
    /// but never published by the previous writer.
    version: u64,
    /// The newest version whose slot holds a complete value, if any (see [`Complete`]).
    complete: Complete,
    created: bool,
    /// The least epoch [`set_epoch`](Self::set_epoch) may record: the epoch of the writer
    /// before this one (1 for a creator), then the last one recorded.
    epoch_floor: u64,
    /// Whether this writer takes turns with others (`Options::shared_writers`): it then
    /// publishes only inside a turn, holding the turn lock (see `turns.rs`).
    pub(crate) turns: bool,
    /// Whether this writer's thread holds the turn lock: from the start of a turn to its end,
    /// or for ever if the turn's guard was leaked.
    pub(crate) in_turn: bool,
}

impl RawWriter {
    /// A writer of the segment `seg`, which holds version 0 and nothing else yet.
    pub(crate) fn of_new_segment(seg: Segment) -> Self {
        sys::register_as_barrier_target();
        RawWriter {
            turns: seg.writers_take_turns(),
            seg,
            version: 0,
            complete: Complete::Latest,
            created: true,
            epoch_floor: 1,
            in_turn: false,
        }
    }

    /// Creates a segment as `spec` says, `fill` writing its initial value.
    pub(crate) fn create_with(
        backend: &Backend,
        name: &str,
        spec: &Spec<'_>,
        fill: impl FnOnce(&Segment),
    ) -> Result<Self> {
        Segment::create(backend, name, spec, fill).map(Self::of_new_segment)
    }

    /// Creates the segment `name` as `spec` says (`fill` writes the initial value), or, if it
    /// exists and holds what `expect` says, takes it over; recovers a segment whose creator
    /// died before making it ready. Safe to race.
    pub(crate) fn open_or_create_with(
        backend: &Backend,
        name: &str,
        spec: &Spec<'_>,
        ready_wait: Duration,
        expect: &Expect,
        fill: impl Fn(&Segment),
        adopt: bool,
    ) -> Result<Self> {
        // Either create wins the `O_EXCL` race, or the segment exists and we attach to it. A
        // segment removed between the two steps sends us round again, but not for ever: a peer
        // that keeps removing and re-creating the name (or keeps a half-made segment changing)
        // gets `NotReady` after the overall deadline.
        let deadline = Deadline::after(ready_wait.max(MIN_OPEN_OR_CREATE));
        loop {
            if deadline.passed() {
                return Err(Error::NotReady);
            }
            match Self::create_with(backend, name, spec, &fill) {
                // Taken, or (`WriterBusy`) taken over by a racing recoverer the instant after
                // we created it: attach to it as to any existing segment.
                Err(Error::AlreadyExists { .. }) | Err(Error::WriterBusy { .. }) => {}
                other => return other,
            }
            match Self::open(backend, name, ready_wait, expect, spec.turns, adopt) {
                Err(Error::NotFound { .. }) => continue,
                // Its creator died before making it ready: take it over and initialize it.
                Err(Error::NotReady) => match Segment::recover(backend, name, spec, &fill) {
                    Ok(Recovered::Initialized(seg)) => return Ok(Self::of_new_segment(*seg)),
                    // Ready after all, and we hold its lease: keep it and open the segment
                    // through the same file, rather than dropping the lease and starting over
                    // (a peer that shows `ready` exactly while somebody holds the lease would
                    // keep us going round).
                    Ok(Recovered::Ready(file, lease)) => {
                        let seg = Segment::open_file(
                            backend,
                            name,
                            file,
                            Access::ReadWrite,
                            ready_wait,
                            expect,
                        )?;
                        seg.check_writers(spec.turns)?;
                        return Self::become_writer(
                            seg.with_lease(lease),
                            expect,
                            spec.turns,
                            adopt,
                        );
                    }
                    Err(Error::NotFound { .. }) => continue,
                    // A live peer holds the lease: another racer recovering it (or a slow
                    // creator). Give it a whole ready wait from now, as an opener would, and
                    // attach to what it makes; go round if it dies or hangs meanwhile.
                    Err(Error::NotReady) => {
                        match Self::open(backend, name, ready_wait, expect, spec.turns, adopt) {
                            Err(Error::NotFound { .. }) | Err(Error::NotReady) => continue,
                            other => return other,
                        }
                    }
                    Err(e) => return Err(e),
                },
                other => return other,
            }
        }
    }

    /// Creates the segment `name` holding the bytes `initial`, described by `layout`; if it
    /// exists, fails with [`Error::AlreadyExists`] or (`take_over_existing`) takes it over.
    pub(crate) fn create(
        backend: &Backend,
        name: &str,
        make: &Make,
        (layout, initial): (&LayoutBuf, &[u8]),
        take_over_existing: bool,
    ) -> Result<Self> {
        check_layout(layout, initial)?;
        let hash = layout.layout_hash();
        let spec = spec(layout, hash, make);
        if !take_over_existing {
            return Self::create_with(backend, name, &spec, fill(initial));
        }
        let expect = Expect::Type {
            layout: layout.clone(),
            hash,
        };
        Self::open_or_create_with(
            backend,
            name,
            &spec,
            make.ready_wait,
            &expect,
            fill(initial),
            false,
        )
    }

    /// Takes over the segment `name`, which must hold what `expect` says, or with `turns`
    /// attaches to it as one of its turn-taking writers.
    pub(crate) fn open(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        expect: &Expect,
        turns: bool,
        adopt: bool,
    ) -> Result<Self> {
        let mut seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, expect)?;
        // Before the lease: a single writer never holds a turn-taking segment's lease
        // exclusively, not even for a moment that would turn its writers away.
        seg.check_writers(turns)?;
        if turns {
            seg.take_shared_writer_lease()?;
        } else {
            seg.take_writer_lease()?;
        }
        Self::become_writer(seg, expect, turns, adopt)
    }

    /// Becomes a writer of `seg`, whose writer lease the caller holds (exclusive, or with
    /// `turns` shared or exclusive): takes it over as its one writer, or attaches to it as one
    /// of its turn-taking writers.
    ///
    /// Turn-taking writers all write the segment's own layout: one whose type is another
    /// version of the stored one is refused, with or without `adopt` (see
    /// [`not_shared_layout`]).
    fn become_writer(seg: Segment, expect: &Expect, turns: bool, adopt: bool) -> Result<Self> {
        if !turns {
            return Self::take_over(seg, expect, adopt);
        }
        if let Some((program, hash)) = expect.typed() {
            if seg.compat() != Compat::Exact {
                return Err(not_shared_layout(&seg, program, hash));
            }
        }
        seg.share_writer_lease()?;
        sys::register_as_barrier_target();
        // Informative: the last writer that attached.
        seg.header().writer_pid.store(sys::pid(), Ordering::Relaxed);
        seg.check_intact()?;
        let at = protocol::resume(&seg);
        Ok(RawWriter {
            version: at.version,
            complete: Complete::of(at),
            epoch_floor: seg.writer_epoch().max(1),
            seg,
            created: false,
            turns: true,
            in_turn: false,
        })
    }

    /// Becomes the writer of `seg`, whose lease the caller holds: records the takeover (a new
    /// epoch) and continues where the previous writer stopped.
    ///
    /// Refuses a segment whose epoch is at its maximum ([`Error::Corrupt`], see
    /// `Segment::record_takeover`).
    fn take_over(seg: Segment, expect: &Expect, adopt: bool) -> Result<Self> {
        // Before anything is recorded: a refused writer leaves no trace in the header.
        if let (false, Some((program, hash))) = (adopt, expect.typed()) {
            if seg.compat() != Compat::Exact {
                return Err(not_adopted(&seg, program, hash, true));
            }
        }
        let previous_epoch = seg.writer_epoch();
        seg.record_takeover()?;
        sys::register_as_barrier_target();
        let mut at = protocol::resume(&seg);
        // A damaged segment's published slot may not hold the published version (see
        // `get`): then there is no current value until the next write, which repairs it.
        if let Some(v) = at.complete {
            let words = seg.geometry().payload_words;
            if !protocol::read_exact_version(&seg, v, words, |_, _| {}) {
                at.complete = None;
            }
        }
        seg.check_intact()?;
        let writer = RawWriter {
            version: at.version,
            complete: Complete::of(at),
            seg,
            created: false,
            epoch_floor: previous_epoch.max(1),
            turns: false,
            in_turn: false,
        };
        // A writer that died between publishing and waking left sleepers behind: wake them.
        writer.wake_waiters();
        Ok(writer)
    }

    /// Publishes the next version with `words` words from `source`.
    #[inline(always)]
    pub(crate) fn publish(&mut self, words: usize, source: impl protocol::Source<AtomicU64>) {
        self.seg.assert_not_inherited();
        let next = self.version.wrapping_add(1);
        let wake = protocol::publish(&self.seg, next, words, source, announce_mode());
        self.version = next;
        // Only the first publication after a takeover changes it: no store on later ones.
        if self.complete != Complete::Latest {
            self.complete = Complete::Latest;
        }
        if wake {
            self.wake_waiters();
        }
    }

    /// Starts a turn of a turn-taking writer: takes the turn lock, waiting at most `timeout`
    /// (`None`: without limit; [`Error::Timeout`] when it runs out), recovers from a writer
    /// that died holding it, and copies the current value (`words` words) into `sink`. Returns
    /// whether it recovered. The caller ends the turn with [`end_turn`](Self::end_turn), on
    /// this thread.
    ///
    /// # Panics
    /// If this writer does not take turns; if a turn of it was leaked (its lock is still held);
    /// in a `fork` child, as [`publish`](Self::publish) does.
    pub(crate) fn begin_turn(
        &mut self,
        timeout: Option<Duration>,
        words: usize,
        sink: impl protocol::Sink<AtomicU64>,
    ) -> Result<bool> {
        assert!(self.turns, "only turn-taking writers take turns");
        self.seg.assert_not_inherited();
        assert!(
            !self.in_turn,
            "a turn of this writer of segment {:?} was leaked: its lock is still held",
            self.seg.name()
        );
        self.seg.check_intact()?;
        // SAFETY: `check_writers` found the turn-taking mode and this program's lock ABI when
        // this writer was made (or it created the segment so); the mapping outlives the lock:
        // `end_turn` releases it on this thread (a `Turn` is not `Send`), and a writer dropped
        // while it is held (a leaked turn) keeps its mapping for good (see `Drop`).
        let taken = match unsafe { self.seg.lock_turn(timeout) }? {
            Some(sys::Locked::Clean) => protocol::turn::Taken::Clean,
            Some(sys::Locked::OwnerDied) => protocol::turn::Taken::OwnerDied,
            None => return Err(Error::Timeout),
        };
        self.in_turn = true;
        let seg = &self.seg;
        let mut repaired = Ok(());
        let start = protocol::turn::begin_turn(
            seg,
            taken,
            words,
            sink,
            || wake_all(seg),
            // SAFETY: this thread holds the lock (taken above).
            || repaired = unsafe { seg.repair_turn_lock() },
        );
        // A lock that could not be made consistent must not be released (it would become
        // unrecoverable): it stays held, and this writer with it.
        repaired?;
        let recovered = taken == protocol::turn::Taken::OwnerDied;
        if recovered {
            seg.header().writer_pid.store(sys::pid(), Ordering::Relaxed);
        }
        match start {
            Ok(published) => {
                self.version = published;
                self.complete = Complete::Latest;
                Ok(recovered)
            }
            Err(refused) => {
                self.end_turn(|_| {});
                Err(Error::Corrupt {
                    what: match refused {
                        protocol::turn::Refused::EpochAtMax => "the writer epoch is at its maximum",
                        protocol::turn::Refused::Damaged => {
                            "the published slot does not hold the published version"
                        }
                    },
                })
            }
        }
    }

    /// Ends the turn [`begin_turn`](Self::begin_turn) started, on the same thread: `publish`
    /// may publish (through [`publish`](Self::publish)) before the lock is released.
    pub(crate) fn end_turn(&mut self, publish: impl FnOnce(&mut Self)) {
        debug_assert!(self.in_turn);
        publish(self);
        // SAFETY: this thread holds the lock (`begin_turn` took it on this thread and a turn
        // does not leave it), and it is consistent (`begin_turn` repaired it if needed).
        let released = unsafe { self.seg.unlock_turn() };
        self.in_turn = false;
        if let Err(e) = released {
            panic!("{e}");
        }
    }

    /// Copies the newest complete value into `sink`; see [`Writer::get`](crate::Writer::get).
    pub(crate) fn current(&self, words: usize, sink: impl protocol::Sink<AtomicU64>) -> Result<()> {
        self.seg.check_intact()?;
        if self.turns && !self.in_turn {
            return self.latest(words, sink);
        }
        let v = self.complete.of_version(self.version).ok_or_else(|| {
            if self.seg.geometry().slot_count > 1 {
                Error::Corrupt {
                    what: "the published slot does not hold the published version",
                }
            } else {
                Error::WriterDied
            }
        })?;
        if protocol::read_exact_version(&self.seg, v, words, sink) {
            Ok(())
        } else {
            // Only this writer writes slots; another process scribbled on the segment.
            Err(Error::Corrupt {
                what: "the current slot changed under its writer",
            })
        }
    }

    /// The latest published value, read as a reader reads it: what a turn-taking writer
    /// outside its turn calls current (other writers may publish meanwhile).
    fn latest(&self, words: usize, mut sink: impl protocol::Sink<AtomicU64>) -> Result<()> {
        // A copy of its own first, since a failed attempt leaves `sink` half written.
        let copy: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        // Bounded: a read fails only when writers publish `slot_count - 1` versions during it.
        for _ in 0..MAX_LATEST_TRIES {
            let read = protocol::read_latest(&self.seg, words, |i: usize, w: u64| {
                copy[i].store(w, Ordering::Relaxed)
            });
            if read.is_some() {
                sink.take(&copy);
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(Error::Corrupt {
            what: "the published slot never held the published version",
        })
    }

    /// Bumps the futex word and wakes every waiter.
    fn wake_waiters(&self) {
        wake_all(&self.seg);
    }

    /// Publishes the payload bytes `value`: readers see them from now on. No syscall unless a
    /// reader is blocked waiting for an update. After a shrink by another process, see
    /// [`Writer::write`](crate::Writer::write).
    ///
    /// A writer that takes turns ([`Options::shared_writers`](crate::Options::shared_writers))
    /// writes in a turn of its own, as [`Writer::write`](crate::Writer::write) does.
    ///
    /// # Panics
    /// If `value.len()` is not [`payload_size`](Self::payload_size), and in a `fork` child as
    /// [`Writer::write`](crate::Writer::write) does; for a writer that takes turns, if its turn
    /// cannot start (a damaged segment).
    pub fn write(&mut self, value: &[u8]) {
        assert_eq!(
            value.len(),
            self.payload_size(),
            "the value must be exactly the payload size"
        );
        let words = payload::words(value.len());
        if !self.turns {
            return self.publish(words, payload::source_of_bytes(value));
        }
        if let Err(e) = self.begin_turn(None, words, |_, _| {}) {
            panic!("cannot write segment {:?}: {e}", self.seg.name());
        }
        self.end_turn(|w| w.publish(words, payload::source_of_bytes(value)));
    }

    /// Copies the newest complete value into `dst`: the last value this writer published or,
    /// right after a takeover, the newest value the previous writer completed. Fails as
    /// [`Writer::get`](crate::Writer::get) does.
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn get(&self, dst: &mut [u8]) -> Result<()> {
        assert_eq!(
            dst.len(),
            self.payload_size(),
            "the buffer must be exactly the payload size"
        );
        self.current(payload::words(dst.len()), payload::sink_into_bytes(dst))
    }

    /// The layout the segment stores.
    pub fn layout(&self) -> &LayoutBuf {
        self.seg.layout()
    }

    /// The payload's size in bytes: the length of every buffer this handle writes from and reads into (also
    /// [`SegmentInfo::payload_size`]; this is a field load, without `info()`'s lock query).
    pub fn payload_size(&self) -> usize {
        self.seg.geometry().payload_size
    }

    /// The version this writer last wrote; see [`Writer::version`](crate::Writer::version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether this handle created the segment (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Records `epoch` as this writer's epoch (`info().writer().epoch()`), for a writer that
    /// repeats the writer of another segment: a mirror of a segment on another host takes the
    /// epoch of the writer there. Returns `false`, and records nothing, if `epoch` is below
    /// the epoch of the writer before this one (1 for the writer that created the segment) or
    /// below an epoch this writer recorded already, or is `u64::MAX` (a later takeover could
    /// not record a greater one).
    ///
    /// So epochs never go backwards, but unlike a takeover, which always records a greater
    /// epoch, this may record the previous writer's epoch again: a mirror's new writer that
    /// carries on for the same remote writer keeps that writer's epoch.
    pub fn set_epoch(&mut self, epoch: u64) -> bool {
        if epoch < self.epoch_floor || epoch == u64::MAX {
            return false;
        }
        self.seg.record_epoch(epoch);
        self.epoch_floor = epoch;
        true
    }

    /// Whether another process shrank the segment's file under this writer; see
    /// [`Writer::write`](crate::Writer::write). Sticky for the life of this handle.
    pub fn is_truncated(&self) -> bool {
        self.seg.is_truncated()
    }

    /// What the segment is and who writes it (this writer: its epoch is
    /// `info().writer().epoch()`); see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.seg.info()
    }

    /// The segment, for the typed writer's messages.
    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// A reader of this segment with its own open file description; see [`Writer::reader`](crate::Writer::reader).
    pub(crate) fn reader_with(&self, expect: &Expect) -> Result<RawReader> {
        let seg = self.seg.reopen(expect)?;
        Ok(RawReader::from_segment(seg))
    }

    /// An untyped reader of this segment with its own open file description (so that its
    /// [`WriterInfo::alive`](crate::WriterInfo::alive) sees this writer's lease).
    pub fn reader(&self) -> Result<RawReader> {
        self.reader_with(&Expect::Any)
    }
}

impl core::fmt::Debug for RawWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawWriter")
            .field("name", &self.seg.name())
            .field("layout", &format_args!("{}", self.layout()))
            .field("version", &self.version)
            .finish()
    }
}

impl Drop for RawWriter {
    fn drop(&mut self) {
        if self.in_turn {
            // A leaked turn: its thread still holds the turn lock (see `begin_turn`).
            self.seg.leak_mapping();
        }
    }
}

/// The newest version whose slot holds a complete value, as a writer knows it: kept so that
/// publishing, which makes its own version the newest complete one, stores nothing but the
/// version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Complete {
    /// The writer's last version: it published it (or created the segment with it, or found
    /// it published when its turn began).
    Latest,
    /// What a takeover found before this writer published: the newest complete version, if
    /// any (see [`Resume`]).
    Found(Option<u64>),
}

impl Complete {
    /// What a takeover found, as `resume` (and the check of the published slot) says.
    fn of(at: Resume) -> Complete {
        if at.complete == Some(at.version) {
            Complete::Latest
        } else {
            Complete::Found(at.complete)
        }
    }

    /// The newest complete version, for a writer whose last version is `version`.
    fn of_version(self, version: u64) -> Option<u64> {
        match self {
            Complete::Latest => Some(version),
            Complete::Found(v) => v,
        }
    }
}

/// Bumps the futex word of `seg` and wakes every waiter.
fn wake_all(seg: &Segment) {
    let h = seg.header();
    h.futex.fetch_add(1, Ordering::SeqCst);
    sys::futex_wake_all(&h.futex);
}

/// How often a turn-taking writer outside its turn tries to read the latest value.
const MAX_LATEST_TRIES: u32 = 100_000;

/// The refusal of a writer to take over a segment holding another version of its appendable
/// type without [`Options::adopt_stored_layout`](crate::Options::adopt_stored_layout), or of
/// a queue producer, which cannot adopt (`adoptable` false: the message says so instead of
/// suggesting the option).
pub(crate) fn not_adopted(seg: &Segment, program: &LayoutBuf, hash: u64, adoptable: bool) -> Error {
    let stored = seg.layout();
    let which = if seg.compat() == Compat::SegmentOlder {
        "an older"
    } else {
        "a newer"
    };
    let remedy = if adoptable {
        "remove and re-create the segment, or allow adoption of its layout with `Options::adopt_stored_layout(true)`"
    } else {
        "a queue producer writes only its segment's exact layout (adoption is for state writers and broadcast streams): let the consumer drain the queue, then remove and re-create it"
    };
    Error::LayoutMismatch {
        expected: hash,
        found: stored.layout_hash(),
        first_difference: format!(
            "segment {:?} holds {which} version of `{stored}` ({} bytes); this program writes `{program}` of {} bytes: {remedy}",
            seg.name(),
            stored.size,
            program.size
        ),
    }
}

/// The refusal of a turn-taking writer whose type is another version of the segment's
/// appendable type: turns share one value, so every turn-taking writer writes the stored
/// layout exactly.
fn not_shared_layout(seg: &Segment, program: &LayoutBuf, hash: u64) -> Error {
    let stored = seg.layout();
    Error::LayoutMismatch {
        expected: hash,
        found: stored.layout_hash(),
        first_difference: format!(
            "segment {:?} holds another version of `{stored}` ({} bytes) than this program's `{program}` ({} bytes), and its writers take turns: turn-taking writers must all write the segment's exact layout (adoption is for a single writer)",
            seg.name(),
            stored.size,
            program.size
        ),
    }
}

/// How this process's writers publish (see [`Announce`]): without a locked instruction once
/// the process is registered as a `membarrier` target, which every writer asks for when it
/// takes the writer lease; with one where the kernel or a sandbox refuses.
#[inline(always)]
pub(crate) fn announce_mode() -> Announce {
    if sys::is_barrier_target() {
        Announce::Asymmetric
    } else {
        Announce::Locked
    }
}

/// Writes the payload bytes `initial` into a new segment as its initial value.
fn fill(initial: &[u8]) -> impl Fn(&Segment) + '_ {
    move |seg| {
        let words = payload::words(initial.len());
        protocol::write_initial(seg, words, payload::source_of_bytes(initial));
    }
}

/// The creation spec for `layout` of hash `hash`, as `make` says.
///
/// # Panics
/// If writers take turns in one slot (see `Options::shared_writers`).
pub(crate) fn spec<'a>(layout: &'a LayoutBuf, hash: u64, make: &Make) -> Spec<'a> {
    assert!(
        !make.turns || make.slots >= 2,
        "writers that take turns need two or more slots, got {}",
        make.slots
    );
    Spec {
        layout,
        hash,
        slots: make.slots,
        mode: make.mode,
        crash_before_ready: make.crash_before_ready,
        kind: SegmentKind::State,
        turns: make.turns,
    }
}

/// Checks that a caller's layout can describe a payload and that `initial` is one.
fn check_layout(layout: &LayoutBuf, initial: &[u8]) -> Result<()> {
    let what = if layout.size == 0 {
        "a layout of size 0 holds nothing to share"
    } else if layout.align > 4096 {
        "a layout's alignment must be at most 4096"
    } else if initial.len() as u64 != layout.size {
        "the initial value must be exactly the layout's size"
    } else {
        return layout
            .check()
            .map_err(|what| Error::InvalidLayout { what: what.into() });
    };
    Err(Error::InvalidLayout { what: what.into() })
}
