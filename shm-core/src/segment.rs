//! A segment's life: creating it, recovering one whose creator died, opening and validating it,
//! and the mapped, validated segment itself. The byte layout is in `format.rs`, the read and
//! write protocol in `protocol/`.
//!
//! ## Trust model
//! Every process that can open a segment for writing can write any byte of it. Openers
//! therefore validate the header once, keep their own copy of the geometry (slot count,
//! offsets, sizes), and never re-read it: later changes by a hostile peer can make reads return
//! garbage values (which are still valid values, since every bit pattern of a `SharedState`
//! type is) but never make this process access memory outside its mapping. A peer with write
//! access can also shrink the file, after which an access would fault (SIGBUS): every mapping
//! is guarded (`fault.rs`), so the fault maps zero pages instead and the segment reports
//! itself truncated ([`Segment::check_intact`]). See `docs/threat-model.md`.

use crate::backend::Backend;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::fault;
use crate::format::{
    Control, Geometry, Header, SegmentKind, CACHE_LINE, FORMAT_VERSION, HEADER_SIZE, MAGIC,
    MAX_DESCRIPTOR, STATE_CREATING, STATE_READY,
};
use crate::layout::LayoutBuf;
use crate::protocol::{SlotIndex, Slots};
use crate::sys::{self, Access};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::time::Duration;

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
}

/// What an opener expects to find in a segment.
pub(crate) enum Expect {
    /// A segment of this type: its layout and layout hash.
    Type { layout: LayoutBuf, hash: u64 },
    /// Any valid segment (an untyped reader decodes it by its stored layout).
    Any,
    /// A stream or queue segment (`kind`) of this type: its layout and layout hash.
    Ring {
        kind: SegmentKind,
        layout: LayoutBuf,
        hash: u64,
    },
}

impl Expect {
    /// The kind of segment expected: shared state unless this is `Ring`.
    fn kind(&self) -> SegmentKind {
        match self {
            Expect::Ring { kind, .. } => *kind,
            Expect::Type { .. } | Expect::Any => SegmentKind::State,
        }
    }

    /// The expected type's layout and layout hash, if a type is expected.
    fn typed(&self) -> Option<(&LayoutBuf, u64)> {
        match self {
            Expect::Type { layout, hash } | Expect::Ring { layout, hash, .. } => {
                Some((layout, *hash))
            }
            Expect::Any => None,
        }
    }
}

/// A shared mapping of a segment file, guarded against a peer shrinking the file under it.
struct Mapping {
    /// Declared before `raw`, so that the range leaves the guard's table before it is unmapped.
    guard: fault::Guard,
    raw: MmapRaw,
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

/// What [`Segment::recover`] found.
pub(crate) enum Recovered {
    /// The segment was not ready and is now initialized; the caller is its writer.
    Initialized(Box<Segment>),
    /// The segment is ready after all. The file holds the writer lease, which the caller keeps
    /// (by opening the segment through it) rather than dropping it and starting over.
    Ready(File),
}

/// A mapped, validated segment.
pub(crate) struct Segment {
    map: Mapping,
    file: File,
    geometry: Geometry,
    index: SlotIndex,
    layout: LayoutBuf,
    /// The layout hash, validated against `layout` (this process's copy).
    hash: u64,
    name: String,
    backend: Backend,
    writable: bool,
}

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
        guard: fault::Guard::new(raw.as_ptr(), raw.len()),
        raw,
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

fn corrupt<T>(what: &'static str) -> Result<T> {
    Err(Error::Corrupt { what })
}

impl Segment {
    /// Creates the segment `name` of `backend` as `spec` says, with `fill` writing the initial
    /// value into slot 0, and returns it with the writer lease taken (on its open file
    /// description). A failed create leaves no name behind.
    pub fn create(
        backend: &Backend,
        name: &str,
        spec: &Spec<'_>,
        fill: impl FnOnce(&Segment),
    ) -> Result<Segment> {
        let file = backend.open(name, true, Access::ReadWrite, spec.mode)?;
        // Take the lease before anything else: while the creator lives, nobody can mistake its
        // half-built segment for one whose creator died (see `recover`).
        let built = match sys::try_lock_writer(&file) {
            Ok(true) => Self::initialize(backend, name, file, spec, fill),
            // A peer locked the name in the instant since we created it.
            Ok(false) => return Err(Error::WriterBusy { pid: 0 }),
            Err(e) => Err(Error::io("locking", name)(e)),
        };
        // From here on the name exists: remove it again if initialization fails.
        if built.is_err() {
            let _ = backend.unlink(name);
        }
        built
    }

    /// Re-creates a segment whose creator died before making it ready (what `open` reports as
    /// `NotReady`), as `spec` says with `fill`'s initial value. The caller becomes its writer.
    ///
    /// Only a segment nobody holds the lease of can be recovered, since a creator holds it from
    /// the moment it creates the name: `Err(NotReady)` while someone does (a live, slow
    /// creator), [`Recovered::Ready`] with the lease still held if the segment turns out to be
    /// ready after all.
    pub fn recover(
        backend: &Backend,
        name: &str,
        spec: &Spec<'_>,
        fill: impl FnOnce(&Segment),
    ) -> Result<Recovered> {
        let file = backend.open(name, false, Access::ReadWrite, 0)?;
        if !sys::try_lock_writer(&file).map_err(Error::io("locking", name))? {
            return Err(Error::NotReady);
        }
        if file_size(&file, name)? >= HEADER_SIZE as u64 {
            let map = map(&file, HEADER_SIZE, Access::ReadWrite, name)?;
            let h = header_of(&map);
            let magic = h.magic.load(Ordering::Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(Error::NotASegment { found: magic });
            }
            if magic == MAGIC && h.state.load(Ordering::Relaxed) == STATE_READY {
                drop(map);
                return Ok(Recovered::Ready(file));
            }
        }
        Self::initialize(backend, name, file, spec, fill)
            .map(|seg| Recovered::Initialized(Box::new(seg)))
    }

    /// Sizes, maps and initializes a segment whose lease the caller holds on `file`.
    ///
    /// The file is only ever grown, never shrunk: other openers may have it mapped while they
    /// wait for it to be ready.
    fn initialize(
        backend: &Backend,
        name: &str,
        file: File,
        spec: &Spec<'_>,
        fill: impl FnOnce(&Segment),
    ) -> Result<Segment> {
        let desc = spec.layout.encode();
        // What a segment stores must be what every opener accepts.
        if desc.len() > MAX_DESCRIPTOR || LayoutBuf::decode(&desc).as_ref() != Ok(spec.layout) {
            return Err(Error::InvalidLayout {
                what: "the layout is too large or too deeply nested to store (at most 1 MiB, 32 levels, 65,536 types, names of 1,024 bytes)".into(),
            });
        }
        let geometry = Geometry::of_kind(
            spec.kind,
            spec.layout.size,
            spec.layout.align,
            spec.slots,
            desc.len() as u64,
        )
        .ok_or_else(|| Error::InvalidLayout {
            what: "the payload is too large to address".into(),
        })?;
        let total = geometry.total_size as u64;
        if file_size(&file, name)? < total {
            file.set_len(total).map_err(Error::io("sizing", name))?;
        }
        // Reserve the memory now: on tmpfs `set_len` reserves nothing, and a full /dev/shm
        // would otherwise kill this process with SIGBUS at its first store instead of
        // returning an error here.
        sys::allocate(&file, total).map_err(Error::io("reserving memory for", name))?;
        if *backend == Backend::Anonymous {
            sys::seal_size(&file).map_err(Error::io("sealing", name))?;
        }
        let map = map(&file, geometry.total_size, Access::ReadWrite, name)?;
        let seg = Segment {
            map,
            file,
            geometry,
            index: SlotIndex::new(geometry.slot_count),
            layout: spec.layout.clone(),
            hash: spec.hash,
            name: name.to_string(),
            backend: backend.clone(),
            writable: true,
        };
        let h = seg.header();
        let r = Ordering::Relaxed;
        h.state.store(STATE_CREATING, r);
        h.magic.store(0, r);
        h.format_version.store(FORMAT_VERSION, r);
        h.layout_hash.store(spec.hash, r);
        h.payload_size.store(geometry.payload_size as u64, r);
        h.payload_align.store(geometry.payload_align as u32, r);
        h.slot_count.store(geometry.slot_count as u32, r);
        h.slots_offset.store(geometry.slots_offset as u64, r);
        h.slot_stride.store(geometry.slot_stride as u64, r);
        h.descriptor_offset
            .store(geometry.descriptor_offset as u64, r);
        h.descriptor_len.store(geometry.descriptor_len as u64, r);
        h.total_size.store(total, r);
        h.writer_pid.store(sys::pid(), r);
        h.creator_pid.store(sys::pid(), r);
        h.writer_epoch.store(1, r);
        h.kind.store(spec.kind.code(), r);
        h.waiters.store(0, r);
        if let Some(c) = seg.control() {
            c.consumed.store(0, r);
            c.space_waiters.store(0, r);
            c.space_wanted.store(0, r);
        }
        for (stored, b) in descriptor_of(&seg.map, &geometry).iter().zip(&desc) {
            stored.store(*b, r);
        }
        for i in 0..geometry.slot_count {
            seg.slot(i).0.store(0, r);
        }
        fill(&seg);
        h.published.store(0, r);
        h.magic.store(MAGIC, r);
        // A peer that shrank the file while we wrote it made us write into zero pages.
        seg.check_intact()?;
        if spec.crash_before_ready {
            // Test hook: stop as a creator that died mid-initialization would.
            std::process::abort();
        }
        // Publishes everything above to openers, which load `state` with Acquire.
        h.state.store(STATE_READY, Ordering::Release);
        Ok(seg)
    }

    /// Opens the segment `name` of `backend`, waits at most `ready_wait` for it to be ready,
    /// validates it and checks it holds what `expect` says.
    pub fn open(
        backend: &Backend,
        name: &str,
        access: Access,
        ready_wait: Duration,
        expect: &Expect,
    ) -> Result<Segment> {
        let file = backend.open(name, false, access, 0)?;
        Self::open_file(backend, name, file, access, ready_wait, expect)
    }

    /// [`open`](Self::open) for an already open segment file.
    pub fn open_file(
        backend: &Backend,
        name: &str,
        file: File,
        access: Access,
        ready_wait: Duration,
        expect: &Expect,
    ) -> Result<Segment> {
        let map = Self::map_when_ready(&file, name, access, Deadline::after(ready_wait))?;
        let h = header_of(&map);
        let mapped = map.len() as u64;
        let geometry = validate_header(h, mapped)?;
        if geometry.kind != expect.kind() {
            return Err(Error::WrongKind {
                expected: expect.kind(),
                found: geometry.kind,
            });
        }
        let found = h.layout_hash.load(Ordering::Relaxed);
        let bytes: Vec<u8> = descriptor_of(&map, &geometry)
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let stored = LayoutBuf::decode(&bytes);
        // Another type: name the first field that differs.
        let mismatch = |program: &LayoutBuf, expected: u64, stored: &Result<LayoutBuf, _>| {
            let first_difference = match stored {
                Ok(stored) => stored.first_difference(program).unwrap_or_else(|| {
                    "the stored layout matches this program's but the header does not".to_string()
                }),
                Err(e) => format!("the segment's {e}"),
            };
            Err(Error::LayoutMismatch {
                expected,
                found,
                first_difference,
            })
        };
        if let Some((layout, hash)) = expect.typed() {
            if found != hash {
                return mismatch(layout, hash, &stored);
            }
        }
        let layout = match stored {
            Ok(layout) => layout,
            Err(_) => return corrupt("the stored layout descriptor is malformed"),
        };
        if layout.layout_hash() != found {
            return corrupt("the stored layout does not have the stored layout hash");
        }
        if layout.size != geometry.payload_size as u64
            || layout.align != geometry.payload_align as u64
        {
            return corrupt("the payload size or alignment does not match the stored layout");
        }
        if let Some((program, hash)) = expect.typed() {
            // The hash matches, and the segment agrees with itself, yet the payload is not the
            // opener's size: a hash collision a peer forged. Refused as another type, so that the
            // opener's type never meets slots it does not fit.
            if program.size != layout.size || program.align != layout.align {
                return mismatch(program, hash, &Ok(layout));
            }
        }
        let seg = Segment {
            map,
            file,
            geometry,
            index: SlotIndex::new(geometry.slot_count),
            layout,
            hash: found,
            name: name.to_string(),
            backend: backend.clone(),
            writable: access == Access::ReadWrite,
        };
        // A peer that shrank the file while we validated it made us read zero pages.
        seg.check_intact()?;
        Ok(seg)
    }

    /// Maps `file` once its creator has marked it ready, waiting until `deadline`; fails with
    /// `NotReady` after it. Re-reads the size and re-maps on every try: the creator may still be
    /// sizing the file.
    fn map_when_ready(
        file: &File,
        name: &str,
        access: Access,
        deadline: Deadline,
    ) -> Result<Mapping> {
        let mut pause = Duration::from_micros(50);
        loop {
            let size = file_size(file, name)?;
            if size >= HEADER_SIZE as u64 {
                let map = map(file, size as usize, access, name)?;
                let h = header_of(&map);
                let magic = h.magic.load(Ordering::Relaxed);
                let state = h.state.load(Ordering::Relaxed);
                // Acquire, as a fence (see `protocol::load_acquire`): pairs with the creator's
                // Release store of `state`.
                core::sync::atomic::fence(Ordering::Acquire);
                if map.truncated() {
                    return Err(Error::Truncated {
                        expected: size,
                        found: file_size(file, name)?,
                    });
                }
                if magic == MAGIC && state == STATE_READY {
                    return Ok(map);
                }
                if magic != 0 && magic != MAGIC {
                    return Err(Error::NotASegment { found: magic });
                }
            } else if size != 0 {
                return Err(Error::Truncated {
                    expected: HEADER_SIZE as u64,
                    found: size,
                });
            }
            // Size 0, or a zero magic: the creator is still initializing (or died doing so).
            if deadline.passed() {
                return Err(Error::NotReady);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

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
        header_of(&self.map)
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

    /// The layout the segment stores (validated against its layout hash on open).
    pub fn layout(&self) -> &LayoutBuf {
        &self.layout
    }

    /// The segment's layout hash, as validated on open (never re-read from the header).
    pub fn layout_hash(&self) -> u64 {
        self.hash
    }

    /// The segment's file (its open file description carries the writer lease, if taken).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The name the segment was created or opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
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
            let base = self.map.as_ptr().cast_const().add(off);
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
    fn waiters_registered(&self) -> bool {
        self.header().waiters.load(Ordering::SeqCst) != 0
    }
}

/// Checks a ready header against the mapped size and itself (`docs/segment-format.md`,
/// "Opening", step 3) and returns the geometry it describes.
fn validate_header(h: &Header, mapped: u64) -> Result<Geometry> {
    let r = Ordering::Relaxed;
    let version = h.format_version.load(r);
    if version != FORMAT_VERSION {
        return Err(Error::FormatVersion {
            expected: FORMAT_VERSION,
            found: version,
        });
    }
    let total = h.total_size.load(r);
    if total > mapped {
        return Err(Error::Truncated {
            expected: total,
            found: mapped,
        });
    }
    let Some(kind) = SegmentKind::from_code(h.kind.load(r)) else {
        return corrupt("unknown segment kind");
    };
    let slots = h.slot_count.load(r) as usize;
    if slots == 0 || slots > kind.max_slots() {
        return corrupt("slot count out of range");
    }
    let desc_len = h.descriptor_len.load(r);
    if desc_len > MAX_DESCRIPTOR as u64 {
        return corrupt("descriptor too large");
    }
    let payload_size = h.payload_size.load(r);
    if payload_size == 0 || payload_size > mapped {
        return corrupt("payload size out of range");
    }
    let payload_align = h.payload_align.load(r);
    if !payload_align.is_power_of_two() {
        return corrupt("payload alignment is not a power of two");
    }
    let Some(geometry) =
        Geometry::of_kind(kind, payload_size, payload_align as u64, slots, desc_len)
    else {
        return corrupt("slot geometry overflows");
    };
    let stored = (
        h.slots_offset.load(r),
        h.slot_stride.load(r),
        h.descriptor_offset.load(r),
        total,
    );
    let expected = (
        geometry.slots_offset as u64,
        geometry.slot_stride as u64,
        geometry.descriptor_offset as u64,
        geometry.total_size as u64,
    );
    if stored != expected {
        return corrupt("slot geometry does not match the payload size and slot count");
    }
    Ok(geometry)
}
