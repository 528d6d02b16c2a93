//! A segment's life and the mapped, validated segment itself: `create.rs` creates a segment or
//! recovers one whose creator died, `open.rs` opens and validates one, and this file holds what
//! both produce. The byte layout is in `format.rs`, the read and write protocol in `protocol/`.
//!
//! ## Trust model
//! Every process that can open a segment for writing can write any byte of it. Openers
//! therefore validate the header once, keep their own copy of the geometry (slot count,
//! offsets, sizes), and never re-read it: later changes by a hostile peer can make reads return
//! garbage values (which are still valid values, since every bit pattern of a `SharedState`
//! type is) but never make this process access memory outside its mapping. A peer with write
//! access can also shrink the file, after which an access would fault (SIGBUS): every mapping
//! is guarded (`fault/`), so the fault maps zero pages instead and the segment reports
//! itself truncated ([`Segment::check_intact`]). See `docs/threat-model.md`.

mod create;
mod open;
mod turns;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::fault;
use crate::format::{
    Control, Geometry, Header, LaneDirectory, SegmentKind, CACHE_LINE, HEADER_SIZE,
};
use crate::info::{SegmentInfo, WriterInfo};
use crate::layout::{Compat, LayoutBuf};
use crate::lease::LeaseFile;
use crate::protocol::{Inline, SlotIndex, Slots};
use crate::sys::{self, Access};
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::sync::Arc;

/// What a new segment holds and how it is made.
pub(crate) struct Spec<'a> {
    /// The payload type's layout, stored in the segment.
    pub layout: &'a LayoutBuf,
    /// Its layout hash.
    pub hash: u64,
    /// The number of slots.
    pub slots: usize,
    /// Permission bits of a created name.
    pub mode: u32,
    /// Test hook: abort the process just before marking the segment ready.
    pub crash_before_ready: bool,
    /// What the segment holds (the slots are a stream's ring for streams and queues).
    pub kind: SegmentKind,
    /// Whether its writers take turns (shared state only; see `turns.rs`).
    pub turns: bool,
}

/// What an opener expects to find in a segment.
pub(crate) enum Expect {
    /// A segment of this type: its layout and layout hash.
    Type { layout: LayoutBuf, hash: u64 },
    /// Any valid segment (an untyped reader decodes it by its stored layout).
    Any,
    /// Any valid stream or queue segment (an untyped stream reader decodes its messages by
    /// the stored layout).
    AnyRing,
    /// A stream or queue segment (`kind`) of this type: its layout and layout hash (also a
    /// lanes directory, `kind` [`SegmentKind::Lanes`], of this message type).
    Ring {
        kind: SegmentKind,
        layout: LayoutBuf,
        hash: u64,
    },
    /// Any valid lanes directory (an untyped tool reads its lanes by their stored layout).
    AnyLanes,
}

impl Expect {
    /// The kind of segment expected (for `AnyRing`, a stream: what a refusal names).
    fn kind(&self) -> SegmentKind {
        match self {
            Expect::Ring { kind, .. } => *kind,
            Expect::AnyRing => SegmentKind::Stream,
            Expect::AnyLanes => SegmentKind::Lanes,
            Expect::Type { .. } | Expect::Any => SegmentKind::State,
        }
    }

    /// Whether a segment of kind `found` is what is expected.
    fn accepts(&self, found: SegmentKind) -> bool {
        match self {
            Expect::AnyRing => matches!(found, SegmentKind::Stream | SegmentKind::Queue),
            _ => found == self.kind(),
        }
    }

    /// The expected type's layout and layout hash, if a type is expected.
    pub fn typed(&self) -> Option<(&LayoutBuf, u64)> {
        match self {
            Expect::Type { layout, hash } | Expect::Ring { layout, hash, .. } => {
                Some((layout, *hash))
            }
            Expect::Any | Expect::AnyRing | Expect::AnyLanes => None,
        }
    }
}

/// A shared mapping of a segment file, guarded against a peer shrinking the file under it.
struct Mapping {
    /// Dropped before `raw`, so that the range leaves the guard's table before it is unmapped.
    guard: ManuallyDrop<fault::Guard>,
    raw: ManuallyDrop<MmapRaw>,
    /// Set when the mapping must outlive its handle (see `Segment::leak_mapping`): then it is
    /// never unmapped.
    leaked: AtomicBool,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.leaked.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: dropped once, here, and never used again; the guard first (see above).
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        // SAFETY: as above.
        unsafe { ManuallyDrop::drop(&mut self.raw) };
    }
}

impl Mapping {
    fn as_ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether an access faulted because the file was shrunk under the mapping.
    fn truncated(&self) -> bool {
        self.guard.truncated()
    }
}

/// The start of a segment's mapping, a copy of [`Mapping::as_ptr`] kept in the handle: the
/// publish and read paths reach the header and the slots with one load, without following the
/// reference count to the mapping and checking its length again on every access.
#[derive(Clone, Copy)]
struct Base(core::ptr::NonNull<u8>);

// SAFETY: `Base` is only an address; it is dereferenced only through `Segment`, which owns
// (through its `Arc`) the mapping the address points into, and everything reached through it
// is atomics, which any thread may access.
unsafe impl Send for Base {}
// SAFETY: as for `Send`.
unsafe impl Sync for Base {}

impl Base {
    /// The start of `map`.
    ///
    /// # Panics
    /// If `map` is shorter than a header: a `Segment` whose base this is can then hand out its
    /// header without checking again.
    fn of(map: &Mapping) -> Base {
        assert!(map.len() >= HEADER_SIZE);
        Base(core::ptr::NonNull::new(map.as_ptr()).expect("a mapping is never at address 0"))
    }
}

/// A strong reference to a segment's mapping: keeps its words mapped (and guarded) while an
/// asynchronous wait that the kernel (or a waiting thread) still holds refers to them, even
/// after the handle that started the wait is gone.
#[derive(Clone)]
pub(crate) struct Pinned(Arc<Mapping>);

impl Pinned {
    /// The 32-bit word at byte `offset` of the mapping.
    ///
    /// # Panics
    /// If the word does not lie inside the mapping or is not 4-aligned.
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.0.len());
        // SAFETY: the word lies inside the mapping and is aligned (asserted; the mapping is
        // page-aligned); any bytes are a valid `AtomicU32`, and other processes changing them
        // is what atomics are for; the borrow is tied to `self`, which keeps the mapping.
        unsafe { &*(self.0.as_ptr().add(offset) as *const AtomicU32) }
    }

    /// The 64-bit word at byte `offset` of the mapping.
    ///
    /// # Panics
    /// If the word does not lie inside the mapping or is not 8-aligned.
    pub fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.0.len());
        // SAFETY: as in `u32_at`, for an 8-byte word.
        unsafe { &*(self.0.as_ptr().add(offset) as *const AtomicU64) }
    }
}

/// What [`Segment::recover`] found.
pub(crate) enum Recovered {
    /// The segment was not ready and is now initialized; the caller is its writer.
    Initialized(Box<Segment>),
    /// The segment is ready after all: its file, and the writer lease, which the caller keeps
    /// (see [`Segment::with_lease`]) rather than dropping it and starting over.
    Ready(File, LeaseFile),
}

/// A mapped, validated segment.
pub(crate) struct Segment {
    /// Shared with every [`Pinned`] of this segment (an asynchronous wait the kernel still
    /// holds), so that its words stay mapped until the last of them ends.
    map: Arc<Mapping>,
    /// The start of `map` (at least a header long: checked by [`Base::of`]).
    base: Base,
    file: File,
    geometry: Geometry,
    index: SlotIndex,
    layout: LayoutBuf,
    /// How `layout` relates to the opener's type (`Exact` for creators and untyped openers).
    compat: Compat,
    /// The layout hash, validated against `layout` (this process's copy).
    hash: u64,
    /// Shared with every [`SegmentInfo`] this segment reports.
    name: Arc<str>,
    backend: Backend,
    writable: bool,
    /// The open file description that holds this process's lease (writer or consumer), if it
    /// holds one: never the mapped `file` (see `lease.rs`).
    lease: Option<LeaseFile>,
    /// The process generation `lease` was taken in ([`NO_LEASE`] without one), beside the
    /// other fields the publish paths read: checking it is one load of the process's.
    lease_generation: u64,
}

/// [`Segment::lease_generation`] of a segment that holds no lease: never a process generation.
const NO_LEASE: u64 = u64::MAX;

/// The header at the start of `map`.
///
/// # Panics
/// If `map` is shorter than a header.
#[inline(always)]
fn header_of(map: &Mapping) -> &Header {
    assert!(map.len() >= HEADER_SIZE);
    // SAFETY: the mapping is at least HEADER_SIZE bytes (asserted) and page-aligned, so it
    // holds an aligned `Header`; `Header` is all atomics, valid for any bytes, and other
    // processes changing them concurrently is what atomics are for; the borrow is tied to
    // `map`, which owns the mapping.
    unsafe { &*(map.as_ptr() as *const Header) }
}

/// Maps the first `len` bytes of `file`, guarded (see [`Mapping`]).
fn map(file: &File, len: usize, access: Access, name: &str) -> Result<Mapping> {
    let mut o = MmapOptions::new();
    o.len(len);
    let raw = match access {
        Access::ReadWrite => o.map_raw(file),
        Access::ReadOnly => o.map_raw_read_only(file),
    }
    .map_err(Error::io("mapping", name))?;
    Ok(Mapping {
        guard: ManuallyDrop::new(fault::Guard::new(
            raw.as_ptr(),
            raw.len(),
            access == Access::ReadWrite,
        )),
        raw: ManuallyDrop::new(raw),
        leaked: AtomicBool::new(false),
    })
}

/// The stored descriptor's bytes in `map`, as atomics: a peer may be writing them.
fn descriptor_of<'a>(map: &'a Mapping, g: &Geometry) -> &'a [AtomicU8] {
    assert!(g.descriptor_offset + g.descriptor_len <= map.len());
    // SAFETY: the range lies within the mapping (asserted); `AtomicU8` has alignment 1 and is
    // valid for any byte; the borrow is tied to `map`, which owns the mapping.
    unsafe {
        core::slice::from_raw_parts(
            map.as_ptr().add(g.descriptor_offset) as *const AtomicU8,
            g.descriptor_len,
        )
    }
}

fn file_size(file: &File, name: &str) -> Result<u64> {
    sys::file_size(file).map_err(Error::io("reading the size of", name))
}

/// See [`Segment::assert_not_inherited`].
#[cold]
#[inline(never)]
fn inherited(name: &str) -> ! {
    panic!(
        "this handle of segment {name:?} was copied by fork from the process that opened it, \
         which keeps its lease; open a writer (or consumer) in this process instead"
    )
}

fn corrupt<T>(what: &'static str) -> Result<T> {
    Err(Error::Corrupt { what })
}

impl Segment {
    /// `Err(Truncated)` once a peer has shrunk the file under this segment's mapping and an
    /// access of this process faulted on it (the guard then mapped zero pages there, so what
    /// was read or written since is meaningless). Sticky: a truncated segment stays truncated.
    pub fn check_intact(&self) -> Result<()> {
        if !self.map.truncated() {
            return Ok(());
        }
        Err(Error::Truncated {
            expected: self.geometry.total_size as u64,
            found: sys::file_size(&self.file).unwrap_or(0),
        })
    }

    /// Whether a peer shrank the file under this segment (see [`check_intact`](Self::check_intact)).
    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.map.truncated()
    }

    /// The header.
    #[inline(always)]
    pub fn header(&self) -> &Header {
        // SAFETY: `base` is the start of the mapping `self` owns, which is at least HEADER_SIZE
        // bytes (checked when `base` was made) and page-aligned, so it holds an aligned
        // `Header`; `Header` is all atomics, valid for any bytes, and other processes changing
        // them concurrently is what atomics are for; the borrow is tied to `self`.
        unsafe { &*(self.base.0.as_ptr() as *const Header) }
    }

    /// A strong reference to the mapping, for a wait that may outlive this handle.
    pub fn pin(&self) -> Pinned {
        Pinned(Arc::clone(&self.map))
    }

    /// The validated geometry (this process's copy, never re-read from the header).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The control line of a stream or queue segment (`None` for shared state).
    pub fn control(&self) -> Option<&Control> {
        if !self.geometry.kind.is_ring() {
            return None;
        }
        assert!(HEADER_SIZE + CACHE_LINE <= self.geometry.slots_offset);
        // SAFETY: ring geometries put slot 0 one cache line after the header (asserted), so
        // the line at HEADER_SIZE lies inside the mapping (validated or built total size); it
        // is 64-aligned in a page-aligned mapping; `Control` is all atomics, valid for any
        // bytes; the borrow is tied to `self`, which owns the mapping.
        Some(unsafe { &*(self.map.as_ptr().add(HEADER_SIZE) as *const Control) })
    }

    /// The directory line of a lanes segment (`None` for other kinds).
    pub fn lane_directory(&self) -> Option<&LaneDirectory> {
        if self.geometry.kind != SegmentKind::Lanes {
            return None;
        }
        assert!(HEADER_SIZE + CACHE_LINE <= self.geometry.slots_offset);
        // SAFETY: as for `control`: a lanes geometry puts slot 0 one cache line after the
        // header (asserted), inside the mapping; 64-aligned; all atomics; tied to `self`.
        Some(unsafe { &*(self.map.as_ptr().add(HEADER_SIZE) as *const LaneDirectory) })
    }

    /// The layout the segment stores (validated against its layout hash on open).
    pub fn layout(&self) -> &LayoutBuf {
        &self.layout
    }

    /// How the stored layout relates to the opener's type (see [`Compat`]).
    pub fn compat(&self) -> Compat {
        self.compat
    }

    /// Records a takeover by this process, whose writer lease the caller holds: the next
    /// `writer_epoch` and this process as `writer_pid`. Shared by every kind of writer (state,
    /// stream, queue producer).
    ///
    /// Refuses a segment whose epoch is at its maximum ([`Error::Corrupt`]): only a hostile
    /// peer writes that, and wrapping to 0 would make a takeover look like no writer ever ran.
    pub fn record_takeover(&self) -> Result<()> {
        let h = self.header();
        // We hold the lease: nobody else writes these.
        let epoch = h.writer_epoch.load(Ordering::Relaxed);
        let Some(next) = epoch.checked_add(1) else {
            return corrupt("the writer epoch is at its maximum");
        };
        h.writer_epoch.store(next, Ordering::Relaxed);
        h.writer_pid.store(sys::pid(), Ordering::Relaxed);
        Ok(())
    }

    /// The writer epoch in the header now (a hostile peer may have stored anything there).
    pub fn writer_epoch(&self) -> u64 {
        self.header().writer_epoch.load(Ordering::Relaxed)
    }

    /// Records `epoch` as the writer epoch, for a writer whose lease the caller holds and that
    /// repeats another segment's writer epoch (see `RawWriter::set_epoch`); the caller checked
    /// that it is not below the epoch of the writer before it.
    pub fn record_epoch(&self, epoch: u64) {
        // We hold the lease: nobody else writes it.
        self.header().writer_epoch.store(epoch, Ordering::Relaxed);
    }

    /// Panics if this handle was copied into this process by `fork`: its lease, if it had one,
    /// stayed with the process that opened it, and publishing or taking through the copy would
    /// race with that process. Called before every publish and take: one relaxed load, in any
    /// process.
    #[inline(always)]
    pub fn assert_not_inherited(&self) {
        if self.lease_generation != crate::lease::generation() && self.lease_generation != NO_LEASE
        {
            inherited(&self.name);
        }
    }

    /// Keeps `lease`, and the process generation it was taken in.
    fn keep_lease(&mut self, lease: LeaseFile) {
        self.lease_generation = lease.generation();
        self.lease = Some(lease);
    }

    /// Takes a lease on the segment with `lock` (writer or consumer), on an open file
    /// description of its own; `Ok(false)` if another description holds it, `Err(NotFound)`
    /// if its name was removed since it was opened (see `Segment::check_linked`).
    pub fn take_lease(&mut self, lock: fn(&File) -> std::io::Result<bool>) -> Result<bool> {
        let lease = LeaseFile::of(&self.file, &self.name)?;
        if !lock(&lease).map_err(Error::io("locking", &self.name))? {
            return Ok(false);
        }
        Self::check_linked(&self.backend, &self.name, &self.file)?;
        self.keep_lease(lease);
        Ok(true)
    }

    /// Takes the writer lease (see [`take_lease`](Self::take_lease)), or fails with
    /// [`Error::WriterBusy`] naming the writer that holds it.
    pub fn take_writer_lease(&mut self) -> Result<()> {
        if self.take_lease(sys::try_lock_writer)? {
            return Ok(());
        }
        Err(Error::WriterBusy {
            pid: self.header().writer_pid.load(Ordering::Relaxed),
        })
    }

    /// This segment holding `lease` (from [`Recovered::Ready`]).
    pub fn with_lease(mut self, lease: LeaseFile) -> Segment {
        self.keep_lease(lease);
        self
    }

    /// The name the segment was created or opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What every handle reports about this segment: the validated geometry, the creator and
    /// the writer as the header says now, and whether a writer holds the lease (a lock query).
    pub fn info(&self) -> SegmentInfo {
        let h = self.header();
        SegmentInfo {
            name: Arc::clone(&self.name),
            kind: self.geometry.kind,
            layout_hash: self.hash,
            payload_size: self.geometry.payload_size,
            slots: self.geometry.slot_count,
            creator_pid: h.creator_pid.load(Ordering::Relaxed),
            writer: WriterInfo {
                pid: h.writer_pid.load(Ordering::Relaxed),
                epoch: h.writer_epoch.load(Ordering::Relaxed),
                alive: self.writer_alive(),
            },
        }
    }

    /// Whether a writer holds the segment's writer lease (presumed so if the kernel cannot
    /// answer; see [`WriterInfo::alive`]).
    pub fn writer_alive(&self) -> bool {
        sys::writer_lock_held(&self.file).unwrap_or(true)
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }
}

impl Slots for Segment {
    type Word = AtomicU64;

    #[inline(always)]
    fn index(&self) -> SlotIndex {
        self.index
    }

    #[inline(always)]
    fn published(&self) -> &AtomicU64 {
        &self.header().published
    }

    /// # Panics
    /// If `i >= slot_count`.
    #[inline(always)]
    fn slot(&self, i: usize) -> (&AtomicU64, &[AtomicU64]) {
        assert!(i < self.geometry.slot_count);
        let off = self.geometry.slot_offset(i);
        // SAFETY: the slot spans `CACHE_LINE + payload_words * 8 <= slot_stride` bytes from
        // `off`, inside `total_size <= map.len()` by the geometry validated on open (or built
        // on create); `off` is a multiple of 64 in a page-aligned mapping, so both the sequence
        // word and the payload words (from `off + 64`) are 8-aligned; atomics are valid for any
        // bytes; the borrows are tied to `self`, which owns the mapping.
        unsafe {
            let base = self.base.0.as_ptr().cast_const().add(off);
            (
                &*(base as *const AtomicU64),
                core::slice::from_raw_parts(
                    base.add(CACHE_LINE) as *const AtomicU64,
                    self.geometry.payload_words,
                ),
            )
        }
    }

    #[inline(always)]
    fn waiters_registered(&self, order: Ordering) -> bool {
        self.header().waiters.load(order) != 0
    }
}

impl Inline for Segment {
    #[inline(always)]
    fn inline(&self) -> &AtomicU64 {
        &self.header().inline
    }
}
