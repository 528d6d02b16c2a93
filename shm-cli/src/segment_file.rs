//! A segment's file in `/dev/shm`, read as docs/segment-format.md lays it out: the header fields
//! and slot sequence words that `shm_core`'s readers validate and keep to themselves, for
//! listing foreign or damaged segments and for `shm check`.
//!
//! The file is mapped read-only and every load is a relaxed atomic load, as the format asks:
//! other processes may change any byte at any time. The mapping is guarded as the runtime's
//! are: a peer shrinking the file under it makes the loads beyond the new end read zeros
//! instead of killing the tool with SIGBUS, and from then on every accessor answers `None`
//! (see [`SegmentFile::truncated`]).

use shm_core::__private::MappingGuard;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Where POSIX shared-memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// `"SHMSTATE"` read as a native-endian `u64`: the value of the `magic` field.
pub const MAGIC: u64 = u64::from_ne_bytes(*b"SHMSTATE");
/// Size of the header.
pub const HEADER_SIZE: u64 = 256;
/// Cache line size the format aligns slots to.
pub const CACHE_LINE: u64 = 64;
/// Most slots a segment may have.
pub const MAX_SLOTS: u64 = 1024;
/// Most slots of a stream or queue segment (its capacity in messages).
pub const MAX_STREAM_CAPACITY: u64 = 1 << 24;
/// Longest descriptor.
pub const MAX_DESCRIPTOR: u64 = 1 << 20;
/// `state` value of a segment being created.
pub const STATE_CREATING: u32 = 0;
/// `state` value of a segment ready to use.
pub const STATE_READY: u32 = 1;

/// Header field offsets, from the table in docs/segment-format.md.
pub mod offset {
    /// `magic`, u64.
    pub const MAGIC: u64 = 0;
    /// `format_version`, u32.
    pub const FORMAT_VERSION: u64 = 8;
    /// `state`, u32.
    pub const STATE: u64 = 12;
    /// `layout_hash`, u64.
    pub const LAYOUT_HASH: u64 = 16;
    /// `payload_size`, u64.
    pub const PAYLOAD_SIZE: u64 = 24;
    /// `payload_align`, u32.
    pub const PAYLOAD_ALIGN: u64 = 32;
    /// `slot_count`, u32.
    pub const SLOT_COUNT: u64 = 36;
    /// `slots_offset`, u64.
    pub const SLOTS_OFFSET: u64 = 40;
    /// `slot_stride`, u64.
    pub const SLOT_STRIDE: u64 = 48;
    /// `descriptor_offset`, u64.
    pub const DESCRIPTOR_OFFSET: u64 = 56;
    /// `descriptor_len`, u64.
    pub const DESCRIPTOR_LEN: u64 = 64;
    /// `total_size`, u64.
    pub const TOTAL_SIZE: u64 = 72;
    /// `writer_pid`, u32.
    pub const WRITER_PID: u64 = 80;
    /// `creator_pid`, u32.
    pub const CREATOR_PID: u64 = 84;
    /// `writer_epoch`, u64.
    pub const WRITER_EPOCH: u64 = 88;
    /// `kind`, u32: 0 state, 1 broadcast stream, 2 queue.
    pub const KIND: u64 = 96;
    /// `published`, u64.
    pub const PUBLISHED: u64 = 128;
    /// Queues: `consumed`, u64, the first word of the control line.
    pub const CONSUMED: u64 = 256;
}

/// A segment name as given (`/x` or `x`) turned into the `/x` form `shm_core` takes, or why it
/// is not a valid name.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare.contains('/') || bare == "." || bare == ".." {
        return Err(format!(
            "{name:?} is not a segment name (one path component, e.g. /robot-state)"
        ));
    }
    Ok(format!("/{bare}"))
}

/// The file of segment `name` (`/x` form).
pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(name.trim_start_matches('/'))
}

/// A segment's file, mapped read-only.
pub struct SegmentFile {
    /// The mapping's SIGBUS guard (`None` when the file is empty); dropped before the unmap.
    guard: Option<MappingGuard>,
    /// Start of the mapping; null when the file is empty.
    map: *const u8,
    /// Bytes mapped: the file's size when it was opened.
    len: usize,
    file: File,
}

impl SegmentFile {
    /// Opens and maps the file of segment `name` (`/x` form), read-only.
    pub fn open(name: &str) -> io::Result<SegmentFile> {
        // Non-blocking, so that a FIFO someone put in /dev/shm cannot hang the open; not
        // following symbolic links, as `shm_open` would not find a segment through one.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path_of(name))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = usize::try_from(meta.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
        if len == 0 {
            return Ok(SegmentFile {
                guard: None,
                map: std::ptr::null(),
                len: 0,
                file,
            });
        }
        // SAFETY: a fresh read-only shared mapping chosen by the kernel (address null), of
        // `len > 0` bytes of a file descriptor we own and keep open for the mapping's life; it
        // aliases no Rust object. The result is checked against MAP_FAILED below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = map as *const u8;
        // SAFETY: `map..map + len` is the shared mapping of the file made just above, which
        // `self` owns, unmaps only after dropping the guard (see `Drop`), and reads only
        // through atomic loads.
        let guard = unsafe { MappingGuard::new(map, len) };
        Ok(SegmentFile {
            guard: Some(guard),
            map,
            len,
            file,
        })
    }

    /// The file's size in bytes (when it was opened).
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether a peer shrank the file under the mapping and a load faulted: what was read
    /// since may be zeros, so every accessor answers `None` from then on.
    pub fn truncated(&self) -> bool {
        self.guard.as_ref().is_some_and(MappingGuard::truncated)
    }

    /// Whether `width` bytes at `offset` are mapped, and `offset` is aligned to `width`.
    fn in_bounds(&self, offset: u64, width: u64) -> bool {
        offset % width == 0
            && offset
                .checked_add(width)
                .is_some_and(|end| end <= self.len())
    }

    /// The native-endian `u32` at `offset`, if mapped and aligned.
    pub fn u32_at(&self, offset: u64) -> Option<u32> {
        if !self.in_bounds(offset, 4) {
            return None;
        }
        // SAFETY: `offset..offset + 4` lies within the mapping (checked above), which stays
        // mapped while `self` lives; the mapping is page-aligned and `offset` a multiple of 4,
        // so the pointer is aligned for `AtomicU32`. Other processes may write these bytes at any
        // time, which is why it is only ever accessed atomically.
        let word = unsafe { &*(self.map.add(offset as usize) as *const AtomicU32) };
        let value = word.load(Ordering::Relaxed);
        (!self.truncated()).then_some(value)
    }

    /// The native-endian `u64` at `offset`, if mapped and aligned.
    pub fn u64_at(&self, offset: u64) -> Option<u64> {
        if !self.in_bounds(offset, 8) {
            return None;
        }
        // SAFETY: as in `u32_at`, with 8-byte bounds and alignment checked above.
        let word = unsafe { &*(self.map.add(offset as usize) as *const AtomicU64) };
        let value = word.load(Ordering::Relaxed);
        (!self.truncated()).then_some(value)
    }

    /// A copy of `len` bytes at `offset`, if they are all mapped.
    pub fn bytes(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|end| end > self.len()) {
            return None;
        }
        let start = offset as usize;
        let copy: Vec<u8> = (start..start + len as usize)
            .map(|i| {
                // SAFETY: `i < offset + len <= self.len`, so the byte is mapped (while
                // `self` lives); `AtomicU8` has no alignment requirement; other processes
                // may write it, so it is loaded atomically.
                let byte = unsafe { &*(self.map.add(i) as *const AtomicU8) };
                byte.load(Ordering::Relaxed)
            })
            .collect();
        (!self.truncated()).then_some(copy)
    }

    /// The header, if the file is large enough to hold one.
    pub fn header(&self) -> Option<RawHeader> {
        if self.len() < HEADER_SIZE {
            return None;
        }
        use offset as o;
        Some(RawHeader {
            format_version: self.u32_at(o::FORMAT_VERSION)?,
            state: self.u32_at(o::STATE)?,
            layout_hash: self.u64_at(o::LAYOUT_HASH)?,
            payload_size: self.u64_at(o::PAYLOAD_SIZE)?,
            payload_align: self.u32_at(o::PAYLOAD_ALIGN)?,
            slot_count: self.u32_at(o::SLOT_COUNT)?,
            slots_offset: self.u64_at(o::SLOTS_OFFSET)?,
            slot_stride: self.u64_at(o::SLOT_STRIDE)?,
            descriptor_offset: self.u64_at(o::DESCRIPTOR_OFFSET)?,
            descriptor_len: self.u64_at(o::DESCRIPTOR_LEN)?,
            total_size: self.u64_at(o::TOTAL_SIZE)?,
            writer_pid: self.u32_at(o::WRITER_PID)?,
            creator_pid: self.u32_at(o::CREATOR_PID)?,
            writer_epoch: self.u64_at(o::WRITER_EPOCH)?,
            kind: self.u32_at(o::KIND)?,
        })
    }

    /// The publish counter.
    pub fn published(&self) -> Option<u64> {
        self.u64_at(offset::PUBLISHED)
    }

    /// Whether some process holds the writer lease (an open-file-description write lock on
    /// byte 0): a query that takes no lock and disturbs no one.
    pub fn writer_lease_held(&self) -> io::Result<bool> {
        // SAFETY: `flock` is plain old data for which all-zero bytes are a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 0;
        fl.l_len = 1;
        // SAFETY: `file` is an open descriptor for the call's duration; `fl` is a valid,
        // writable `flock` that outlives the call; F_OFD_GETLK only writes into it (l_pid must
        // be 0 for OFD locks, which zeroing gave).
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// The first 8 bytes, if there are 8.
    pub fn magic(&self) -> Option<u64> {
        self.u64_at(offset::MAGIC)
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        // The range leaves the guard's table before it is unmapped.
        drop(self.guard.take());
        if !self.map.is_null() {
            // SAFETY: `map` and `len` are exactly what `mmap` returned and was given; no
            // reference into the mapping outlives `&self` borrows, which have all ended.
            unsafe { libc::munmap(self.map as *mut libc::c_void, self.len) };
        }
    }
}

/// The header fields, as stored (not validated).
#[derive(Clone, Copy, Debug)]
pub struct RawHeader {
    /// `format_version`
    pub format_version: u32,
    /// `state`
    pub state: u32,
    /// `layout_hash`
    pub layout_hash: u64,
    /// `payload_size`
    pub payload_size: u64,
    /// `payload_align`
    pub payload_align: u32,
    /// `slot_count`
    pub slot_count: u32,
    /// `slots_offset`
    pub slots_offset: u64,
    /// `slot_stride`
    pub slot_stride: u64,
    /// `descriptor_offset`
    pub descriptor_offset: u64,
    /// `descriptor_len`
    pub descriptor_len: u64,
    /// `total_size`
    pub total_size: u64,
    /// `writer_pid`
    pub writer_pid: u32,
    /// `creator_pid`
    pub creator_pid: u32,
    /// `writer_epoch`
    pub writer_epoch: u64,
    /// `kind`
    pub kind: u32,
}

/// Where the slots and the descriptor are, computed from the payload size, slot count and
/// descriptor length as the format specifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `slots_offset`
    pub slots_offset: u64,
    /// `slot_stride`
    pub slot_stride: u64,
    /// `descriptor_offset`
    pub descriptor_offset: u64,
    /// `total_size`
    pub total_size: u64,
}

impl Geometry {
    /// The geometry for these values, or `None` if a computation overflows.
    ///
    /// Stream and queue segments (`ring`) have a control line between the header and the
    /// slots.
    pub fn compute(
        payload_size: u64,
        slot_count: u64,
        descriptor_len: u64,
        ring: bool,
    ) -> Option<Geometry> {
        let words = payload_size.checked_add(7)? / 8 * 8;
        let slot_stride =
            CACHE_LINE.checked_add(words)?.checked_add(CACHE_LINE - 1)? / CACHE_LINE * CACHE_LINE;
        let slots_offset = HEADER_SIZE + if ring { CACHE_LINE } else { 0 };
        let descriptor_offset = slots_offset.checked_add(slot_count.checked_mul(slot_stride)?)?;
        Some(Geometry {
            slots_offset,
            slot_stride,
            descriptor_offset,
            total_size: descriptor_offset.checked_add(descriptor_len)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_spec_and_overflow_is_none() {
        let g = Geometry::compute(12, 2, 100, false).expect("small");
        assert_eq!(g.slot_stride, 128);
        assert_eq!(g.descriptor_offset, 256 + 256);
        assert_eq!(g.total_size, 612);
        let ring = Geometry::compute(12, 2, 100, true).expect("small");
        assert_eq!(ring.slots_offset, 320);
        assert_eq!(ring.total_size, 676);
        assert_eq!(Geometry::compute(u64::MAX - 3, 2, 0, false), None);
        assert_eq!(Geometry::compute(1 << 62, 1024, 0, false), None);
    }

    #[test]
    fn names_are_normalized_and_paths_refused() {
        assert_eq!(normalize_name("x").as_deref(), Ok("/x"));
        assert_eq!(normalize_name("/x").as_deref(), Ok("/x"));
        assert!(normalize_name("/a/b").is_err());
        assert!(normalize_name("/").is_err());
        assert!(normalize_name("..").is_err());
    }
}
