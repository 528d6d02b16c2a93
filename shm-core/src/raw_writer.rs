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
    /// Where this writer is: the last version it used (published, or after a takeover
    /// possibly written but never published by the previous writer), and the newest version
    /// whose slot holds a complete value, if any.
    at: Resume,
    created: bool,
}

impl RawWriter {
    /// A writer of the segment `seg`, which holds version 0 and nothing else yet.
    pub(crate) fn of_new_segment(seg: Segment) -> Self {
        sys::register_as_barrier_target();
        RawWriter {
            seg,
            at: Resume {
                version: 0,
                complete: Some(0),
            },
            created: true,
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
            match Self::open(backend, name, ready_wait, expect, adopt) {
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
                        return Self::take_over(seg.with_lease(lease), expect, adopt);
                    }
                    Err(Error::NotFound { .. }) => continue,
                    // A live peer holds the lease: another racer recovering it (or a slow
                    // creator). Give it a whole ready wait from now, as an opener would, and
                    // attach to what it makes; go round if it dies or hangs meanwhile.
                    Err(Error::NotReady) => {
                        match Self::open(backend, name, ready_wait, expect, adopt) {
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

    /// Takes over the segment `name`, which must hold what `expect` says.
    pub(crate) fn open(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        expect: &Expect,
        adopt: bool,
    ) -> Result<Self> {
        let mut seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, expect)?;
        seg.take_writer_lease()?;
        Self::take_over(seg, expect, adopt)
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
                return Err(not_adopted(&seg, program, hash));
            }
        }
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
            at,
            seg,
            created: false,
        };
        // A writer that died between publishing and waking left sleepers behind: wake them.
        writer.wake_waiters();
        Ok(writer)
    }

    /// Publishes the next version with `words` words from `source`.
    #[inline(always)]
    pub(crate) fn publish(&mut self, words: usize, source: impl protocol::Source<AtomicU64>) {
        self.seg.assert_not_inherited();
        let next = self.at.version.wrapping_add(1);
        let wake = protocol::publish(&self.seg, next, words, source, announce_mode());
        self.at = Resume {
            version: next,
            complete: Some(next),
        };
        if wake {
            self.wake_waiters();
        }
    }

    /// Copies the newest complete value into `sink`; see [`Writer::get`](crate::Writer::get).
    pub(crate) fn current(&self, words: usize, sink: impl protocol::Sink<AtomicU64>) -> Result<()> {
        self.seg.check_intact()?;
        let v = self.at.complete.ok_or_else(|| {
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

    /// Bumps the futex word and wakes every waiter.
    fn wake_waiters(&self) {
        let h = self.seg.header();
        h.futex.fetch_add(1, Ordering::SeqCst);
        sys::futex_wake_all(&h.futex);
    }

    /// Publishes the payload bytes `value`: readers see them from now on. No syscall unless a
    /// reader is blocked waiting for an update. After a shrink by another process, see
    /// [`Writer::write`](crate::Writer::write).
    ///
    /// # Panics
    /// If `value.len()` is not [`payload_size`](Self::payload_size), and in a `fork` child as
    /// [`Writer::write`](crate::Writer::write) does.
    pub fn write(&mut self, value: &[u8]) {
        assert_eq!(
            value.len(),
            self.payload_size(),
            "the value must be exactly the payload size"
        );
        self.publish(payload::words(value.len()), payload::source_of_bytes(value));
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
        self.at.version
    }

    /// Whether this handle created the segment (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.created
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
            .field("version", &self.at.version)
            .finish()
    }
}

/// How this process's writers publish (see [`Announce`]): without a locked instruction once
/// the process is registered as a `membarrier` target, which every writer asks for when it
/// takes the writer lease; with one where the kernel or a sandbox refuses.
#[inline(always)]
/// The refusal of a writer to take over a segment holding another version of its appendable
/// type without [`Options::adopt_stored_layout`](crate::Options::adopt_stored_layout).
pub(crate) fn not_adopted(seg: &Segment, program: &LayoutBuf, hash: u64) -> Error {
    let stored = seg.layout();
    let which = if seg.compat() == Compat::SegmentOlder {
        "an older"
    } else {
        "a newer"
    };
    Error::LayoutMismatch {
        expected: hash,
        found: stored.layout_hash(),
        first_difference: format!(
            "segment {:?} holds {which} version of `{stored}` ({} bytes); this program writes `{program}` of {} bytes: remove and re-create the segment, or allow adoption of its layout with `Options::adopt_stored_layout(true)`",
            seg.name(),
            stored.size,
            program.size
        ),
    }
}

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
pub(crate) fn spec<'a>(layout: &'a LayoutBuf, hash: u64, make: &Make) -> Spec<'a> {
    Spec {
        layout,
        hash,
        slots: make.slots,
        mode: make.mode,
        crash_before_ready: make.crash_before_ready,
        kind: SegmentKind::State,
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
