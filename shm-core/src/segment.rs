//! A mapped segment: the header, the slots and the stored descriptor, created or opened and
//! validated. See `docs/segment-format.md` for the byte layout.
//!
//! ## Trust model
//! Every process that can open a segment for writing can write any byte of it. Openers
//! therefore validate the header once, keep their own copy of the geometry (slot count,
//! offsets, sizes), and never re-read it: later changes by a hostile peer can make reads return
//! garbage values (which are still valid values, since every bit pattern of a `SharedState`
//! type is) but never make this process access memory outside its mapping. One thing no
//! mapping can defend against is a peer with write access shrinking the file, after which an
//! access faults (SIGBUS); protect segments with their mode.

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::layout::FORMAT_VERSION;
use crate::options::{Backend, Options};
use crate::sys::{self, Access};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// "SHMSTATE" as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMSTATE");
/// Size of the header; slots start here.
pub const HEADER_SIZE: usize = 256;
/// The alignment unit of slots and of hot header words.
pub const CACHE_LINE: usize = 64;
/// Most slots a segment may have.
pub const MAX_SLOTS: usize = 1024;
/// Largest descriptor a segment may store.
pub const MAX_DESCRIPTOR: usize = 1 << 20;

/// `state` while the creator initializes the segment.
pub const STATE_CREATING: u32 = 0;
/// `state` once the segment is fully initialized.
pub const STATE_READY: u32 = 1;

/// The segment header, as mapped. Every field is atomic: other processes may change any byte at
/// any time.
#[repr(C)]
pub struct Header {
    pub magic: AtomicU64,
    pub format_version: AtomicU32,
    pub state: AtomicU32,
    pub layout_hash: AtomicU64,
    pub payload_size: AtomicU64,
    pub payload_align: AtomicU32,
    pub slot_count: AtomicU32,
    pub slots_offset: AtomicU64,
    pub slot_stride: AtomicU64,
    pub descriptor_offset: AtomicU64,
    pub descriptor_len: AtomicU64,
    pub total_size: AtomicU64,
    pub writer_pid: AtomicU32,
    pub creator_pid: AtomicU32,
    pub writer_epoch: AtomicU64,
    _reserved: [AtomicU64; 4],
    /// Publish counter: version `v` lives in slot `v % slot_count`. Own cache line.
    pub published: AtomicU64,
    _pad1: [AtomicU64; 7],
    /// Futex word, bumped by the writer when waiters are registered. Own cache line.
    pub futex: AtomicU32,
    /// Number of processes blocked (or about to block) on `futex`.
    pub waiters: AtomicU32,
    _pad2: [AtomicU64; 7],
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(Header, published) == 128);
const _: () = assert!(core::mem::offset_of!(Header, futex) == 192);

/// An acquire load of `a`, done as a relaxed load followed by an acquire fence: the same
/// ordering, and also sound on a read-only mapping, where only relaxed atomic loads are
/// guaranteed to work.
#[inline(always)]
pub fn load_acquire(a: &AtomicU64) -> u64 {
    let v = a.load(Ordering::Relaxed);
    core::sync::atomic::fence(Ordering::Acquire);
    v
}

/// The instant `timeout` from now, or `None` ("no deadline") if that is too far to represent,
/// as `Duration::MAX` is.
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Where things are in a segment holding one payload type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub payload_size: usize,
    pub payload_align: usize,
    pub payload_words: usize,
    pub slot_count: usize,
    pub slots_offset: usize,
    pub slot_stride: usize,
    pub descriptor_offset: usize,
    pub descriptor_len: usize,
    pub total_size: usize,
}

impl Geometry {
    /// The geometry for a payload of `size`/`align` bytes in `slots` slots.
    pub fn new(size: usize, align: usize, slots: usize, descriptor_len: usize) -> Geometry {
        let payload_words = size.div_ceil(8);
        let slot_stride = (CACHE_LINE + payload_words * 8).next_multiple_of(CACHE_LINE);
        let descriptor_offset = HEADER_SIZE + slots * slot_stride;
        Geometry {
            payload_size: size,
            payload_align: align,
            payload_words,
            slot_count: slots,
            slots_offset: HEADER_SIZE,
            slot_stride,
            descriptor_offset,
            descriptor_len,
            total_size: descriptor_offset + descriptor_len,
        }
    }
}

/// A mapped, validated segment.
pub struct Segment {
    map: MmapRaw,
    file: File,
    geometry: Geometry,
    name: String,
    backend: Backend,
    writable: bool,
}

/// Classifies an `open`/`shm_open` error for `name`.
fn open_error(name: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound {
            name: name.to_string(),
        },
        Some(libc::EEXIST) => Error::AlreadyExists {
            name: name.to_string(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
            name: name.to_string(),
        },
        Some(libc::EINVAL) | Some(libc::ENAMETOOLONG) => Error::InvalidName {
            name: name.to_string(),
            reason: "the operating system refused the name",
        },
        _ => Error::Io(e),
    }
}

/// Checks a POSIX shared-memory name: `/` then 1 to 254 bytes, no other `/`, no NUL.
pub fn validate_shm_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if !name.starts_with('/') {
        return bad("a shared-memory name starts with `/`, e.g. \"/robot-state\"");
    }
    if name.len() < 2 {
        return bad("a shared-memory name has at least one character after `/`");
    }
    if name.len() > 255 {
        return bad("a shared-memory name is at most 255 bytes");
    }
    if name[1..].contains('/') {
        return bad("a shared-memory name has no `/` after the first character");
    }
    if name.contains('\0') {
        return bad("a shared-memory name cannot contain NUL");
    }
    if name == "/." || name == "/.." {
        return bad("`.` and `..` are not segment names");
    }
    Ok(())
}

fn open_file(
    backend: &Backend,
    name: &str,
    create: bool,
    access: Access,
    mode: u32,
) -> Result<File> {
    match backend {
        Backend::Shm => {
            validate_shm_name(name)?;
            sys::shm_open(name, create, access, mode).map_err(|e| open_error(name, e))
        }
        Backend::File => {
            if name.is_empty() || name.contains('\0') {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "a file path is non-empty and has no NUL",
                });
            }
            let file = sys::file_open(Path::new(name), create, access, mode)
                .map_err(|e| open_error(name, e))?;
            if !file.metadata()?.is_file() {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "a file-backed segment must be a regular file",
                });
            }
            Ok(file)
        }
        Backend::Anonymous => Err(Error::InvalidName {
            name: name.to_string(),
            reason: "anonymous segments have no name; use `Options::create_anonymous`",
        }),
    }
}

/// Removes the name of a segment of `backend` (mapped segments stay usable until unmapped).
pub fn unlink(backend: &Backend, name: &str) -> Result<()> {
    let r = match backend {
        Backend::Shm => {
            validate_shm_name(name)?;
            sys::shm_unlink(name)
        }
        Backend::File => std::fs::remove_file(name),
        Backend::Anonymous => return Ok(()),
    };
    r.map_err(|e| open_error(name, e))
}

fn map(file: &File, len: usize, access: Access) -> Result<MmapRaw> {
    let mut o = MmapOptions::new();
    o.len(len);
    Ok(match access {
        Access::ReadWrite => o.map_raw(file)?,
        Access::ReadOnly => o.map_raw_read_only(file)?,
    })
}

impl Segment {
    /// Creates a segment holding `descriptor` (of hash `hash`) with `initial` in slot 0, and
    /// returns it with the writer lease taken (on `file`'s open file description).
    ///
    /// `fill` writes the initial payload into slot 0 (through the seqlock).
    pub fn create(
        opts: &Options,
        name: &str,
        descriptor: &Descriptor,
        hash: u64,
        fill: impl FnOnce(&Segment),
    ) -> Result<Segment> {
        let file = match opts.backend_ref() {
            Backend::Anonymous => sys::memfd()?,
            b => open_file(b, name, true, Access::ReadWrite, opts.file_mode())?,
        };
        // Take the lease before anything else: while the creator lives, nobody can mistake its
        // half-built segment for one whose creator died (see `recover`).
        if !sys::try_lock_writer(&file)? {
            return Err(Error::Io(io::Error::other(
                "a freshly created segment is already locked",
            )));
        }
        // From here on the name exists: remove it again if initialization fails, so a failed
        // create leaves nothing behind.
        let built = Self::initialize(opts, name, file, descriptor, hash, fill);
        if built.is_err() {
            let _ = unlink(opts.backend_ref(), name);
        }
        built
    }

    /// Re-creates a segment whose creator died before making it ready (what `open` reports as
    /// `NotReady`), holding `descriptor` with `fill`'s initial value. The caller becomes its
    /// writer.
    ///
    /// Only a segment nobody holds the lease of can be recovered, since a creator holds it from
    /// the moment it creates the name: `Err(NotReady)` while someone does (a live, slow
    /// creator), `Ok(None)` if the segment turns out to be ready after all.
    pub fn recover(
        opts: &Options,
        name: &str,
        descriptor: &Descriptor,
        hash: u64,
        fill: impl FnOnce(&Segment),
    ) -> Result<Option<Segment>> {
        let file = open_file(opts.backend_ref(), name, false, Access::ReadWrite, 0)?;
        if !sys::try_lock_writer(&file)? {
            return Err(Error::NotReady);
        }
        let size = sys::file_size(&file)?;
        if size >= HEADER_SIZE as u64 {
            let map = map(&file, HEADER_SIZE, Access::ReadWrite)?;
            // SAFETY: the mapping is HEADER_SIZE bytes, page-aligned; `Header` is all atomics,
            // valid for any bytes; the reference is dropped with `map` at the end of the block.
            let h = unsafe { &*(map.as_ptr() as *const Header) };
            let magic = h.magic.load(Ordering::Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(Error::NotASegment { found: magic });
            }
            if magic == MAGIC && h.state.load(Ordering::Relaxed) == STATE_READY {
                return Ok(None);
            }
        }
        Self::initialize(opts, name, file, descriptor, hash, fill).map(Some)
    }

    /// Sizes, maps and initializes a segment whose lease the caller holds on `file`.
    ///
    /// The file is only ever grown, never shrunk: other openers may have it mapped while they
    /// wait for it to be ready.
    fn initialize(
        opts: &Options,
        name: &str,
        file: File,
        descriptor: &Descriptor,
        hash: u64,
        fill: impl FnOnce(&Segment),
    ) -> Result<Segment> {
        let desc = descriptor.encode();
        let geometry = Geometry::new(
            descriptor.size as usize,
            descriptor.align as usize,
            opts.slot_count(),
            desc.len(),
        );
        if sys::file_size(&file)? < geometry.total_size as u64 {
            file.set_len(geometry.total_size as u64)?;
        }
        // Reserve the memory now: on tmpfs `set_len` reserves nothing, and a full /dev/shm
        // would otherwise kill this process with SIGBUS at its first store instead of
        // returning an error here.
        sys::allocate(&file, geometry.total_size as u64)?;
        if *opts.backend_ref() == Backend::Anonymous {
            sys::seal_size(&file)?;
        }
        let map = map(&file, geometry.total_size, Access::ReadWrite)?;
        let seg = Segment {
            map,
            file,
            geometry,
            name: name.to_string(),
            backend: opts.backend_ref().clone(),
            writable: true,
        };
        let h = seg.header();
        let r = Ordering::Relaxed;
        h.state.store(STATE_CREATING, r);
        h.magic.store(0, r);
        h.format_version.store(FORMAT_VERSION, r);
        h.layout_hash.store(hash, r);
        h.payload_size.store(geometry.payload_size as u64, r);
        h.payload_align.store(geometry.payload_align as u32, r);
        h.slot_count.store(geometry.slot_count as u32, r);
        h.slots_offset.store(geometry.slots_offset as u64, r);
        h.slot_stride.store(geometry.slot_stride as u64, r);
        h.descriptor_offset
            .store(geometry.descriptor_offset as u64, r);
        h.descriptor_len.store(geometry.descriptor_len as u64, r);
        h.total_size.store(geometry.total_size as u64, r);
        h.writer_pid.store(sys::pid(), r);
        h.creator_pid.store(sys::pid(), r);
        h.writer_epoch.store(1, r);
        h.waiters.store(0, r);
        for (i, b) in desc.iter().enumerate() {
            seg.descriptor_byte(i).store(*b, r);
        }
        for i in 0..geometry.slot_count {
            seg.slot_seq(i).store(0, r);
        }
        fill(&seg);
        h.published.store(0, r);
        h.magic.store(MAGIC, r);
        if opts.crashes_before_ready() {
            // Test hook: stop as a creator that died mid-initialization would.
            std::process::abort();
        }
        // Publishes everything above to openers, which load `state` with Acquire.
        h.state.store(STATE_READY, Ordering::Release);
        Ok(seg)
    }

    /// Opens an existing segment, waits (bounded) for it to be ready, validates its header
    /// against `descriptor`/`hash` and maps it.
    pub fn open(
        opts: &Options,
        name: &str,
        access: Access,
        descriptor: &Descriptor,
        hash: u64,
    ) -> Result<Segment> {
        let file = open_file(opts.backend_ref(), name, false, access, 0)?;
        Self::open_file(opts, name, file, access, descriptor, hash)
    }

    /// Validates and maps an already open segment file.
    pub fn open_file(
        opts: &Options,
        name: &str,
        file: File,
        access: Access,
        descriptor: &Descriptor,
        hash: u64,
    ) -> Result<Segment> {
        let deadline = deadline_after(opts.ready_wait_time());
        let mut pause = Duration::from_micros(50);
        let map = loop {
            let size = sys::file_size(&file)?;
            if size >= HEADER_SIZE as u64 {
                let map = map(&file, size as usize, access)?;
                // SAFETY: the mapping is at least HEADER_SIZE bytes and page-aligned, `Header`
                // is all atomics (valid for any bytes, alignment 8) and the reference does not
                // outlive `map` (it is dropped at the end of this block).
                let h = unsafe { &*(map.as_ptr() as *const Header) };
                let magic = h.magic.load(Ordering::Relaxed);
                let state = h.state.load(Ordering::Relaxed);
                // Acquire, as a fence (see `load_acquire`): pairs with the creator's Release
                // store of `state`.
                core::sync::atomic::fence(Ordering::Acquire);
                if magic == MAGIC && state == STATE_READY {
                    break map;
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
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::NotReady);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        let h = {
            // SAFETY: as above: the mapping holds a header and outlives this borrow.
            unsafe { &*(map.as_ptr() as *const Header) }
        };
        let r = Ordering::Relaxed;
        let version = h.format_version.load(r);
        if version != FORMAT_VERSION {
            return Err(Error::FormatVersion {
                expected: FORMAT_VERSION,
                found: version,
            });
        }
        let mapped = map.len() as u64;
        let total = h.total_size.load(r);
        if total > mapped {
            return Err(Error::Truncated {
                expected: total,
                found: mapped,
            });
        }
        let corrupt = |what| Err(Error::Corrupt { what });
        let slots = h.slot_count.load(r) as usize;
        if slots == 0 || slots > MAX_SLOTS {
            return corrupt("slot count out of range");
        }
        let desc_len = h.descriptor_len.load(r);
        if desc_len > MAX_DESCRIPTOR as u64 {
            return corrupt("descriptor too large");
        }
        let payload_size = h.payload_size.load(r);
        let payload_align = h.payload_align.load(r);
        if payload_size == 0 || payload_size > mapped || payload_align == 0 {
            return corrupt("payload size out of range");
        }
        let geometry = Geometry::new(
            payload_size as usize,
            payload_align as usize,
            slots,
            desc_len as usize,
        );
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
        let seg = Segment {
            map,
            file,
            geometry,
            name: name.to_string(),
            backend: opts.backend_ref().clone(),
            writable: access == Access::ReadWrite,
        };
        let found = h.layout_hash.load(r);
        if found != hash || payload_size != descriptor.size {
            let first_difference = match Descriptor::decode(&seg.stored_descriptor_bytes()) {
                Ok(stored) => stored.first_difference(descriptor).unwrap_or_else(|| {
                    "the stored descriptor matches this program's but the layout hash does not (corrupt header)".to_string()
                }),
                Err(e) => format!("the segment's {e}"),
            };
            return Err(Error::LayoutMismatch {
                expected: hash,
                found,
                first_difference,
            });
        }
        Ok(seg)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        // SAFETY: every segment's mapping is at least HEADER_SIZE bytes (checked on open,
        // sized on create) and page-aligned; `Header` is all atomics, valid for any bytes; the
        // borrow is tied to `self`, which owns the mapping.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// The validated geometry (this process's copy, never re-read from the header).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The sequence word of slot `i`.
    ///
    /// # Panics
    /// If `i >= slot_count`.
    #[inline(always)]
    pub fn slot_seq(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.geometry.slot_count);
        let off = self.geometry.slots_offset + i * self.geometry.slot_stride;
        // SAFETY: `off + 8 <= total_size <= map.len()` by the geometry validated on open (or
        // built on create); `off` is a multiple of 64 in a page-aligned mapping, so the
        // `AtomicU64` is aligned; the borrow is tied to `self`, which owns the mapping.
        unsafe { &*(self.map.as_ptr().add(off) as *const AtomicU64) }
    }

    /// The payload words of slot `i`.
    ///
    /// # Panics
    /// If `i >= slot_count`.
    #[inline(always)]
    pub fn slot_words(&self, i: usize) -> &[AtomicU64] {
        assert!(i < self.geometry.slot_count);
        let off = self.geometry.slots_offset + i * self.geometry.slot_stride + CACHE_LINE;
        // SAFETY: the slot's payload spans `payload_words * 8` bytes from `off`, inside
        // `total_size <= map.len()` by the validated geometry; `off` is 8-aligned (a multiple
        // of 64 plus 64); atomics are valid for any bytes; the borrow is tied to `self`.
        unsafe {
            core::slice::from_raw_parts(
                self.map.as_ptr().add(off) as *const AtomicU64,
                self.geometry.payload_words,
            )
        }
    }

    fn descriptor_byte(&self, i: usize) -> &AtomicU8 {
        assert!(i < self.geometry.descriptor_len);
        // SAFETY: `descriptor_offset + i < total_size <= map.len()` by the validated geometry;
        // `AtomicU8` has alignment 1 and is valid for any byte; the borrow is tied to `self`.
        unsafe { &*(self.map.as_ptr().add(self.geometry.descriptor_offset + i) as *const AtomicU8) }
    }

    /// A copy of the stored descriptor's bytes (read atomically, byte by byte).
    pub fn stored_descriptor_bytes(&self) -> Vec<u8> {
        (0..self.geometry.descriptor_len)
            .map(|i| self.descriptor_byte(i).load(Ordering::Relaxed))
            .collect()
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
