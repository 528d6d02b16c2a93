//! Opening a segment: waiting (bounded) for it to be ready, validating its header and stored
//! layout, and checking it holds what the opener expects (`docs/segment-format.md`, "Opening").

use super::{corrupt, descriptor_of, file_size, header_of, map, Expect, Mapping, Segment};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{
    Geometry, Header, SegmentKind, FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_DESCRIPTOR, STATE_READY,
};
use crate::layout::{Compat, LayoutBuf};
use crate::protocol::SlotIndex;
use crate::sys::{self, Access};
use crate::wait::Deadline;
use core::sync::atomic::Ordering;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

impl Segment {
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
        if !expect.accepts(geometry.kind) {
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
            if found != hash && stored.is_err() {
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
        let mut compat = Compat::Exact;
        if let Some((program, hash)) = expect.typed() {
            if found != hash {
                // Another layout: two versions of one appendable type share the segment, by
                // the one rule of the layout model; anything else is refused, saying why.
                compat = match layout.compatibility(program) {
                    Ok(c) => c,
                    Err(first_difference) => {
                        return Err(Error::LayoutMismatch {
                            expected: hash,
                            found,
                            first_difference,
                        })
                    }
                };
            } else if program.size != layout.size || program.align != layout.align {
                // The hash matches, and the segment agrees with itself, yet the payload is not
                // the opener's size: a hash collision a peer forged. Refused as another type,
                // so that the opener's type never meets slots it does not fit.
                return mismatch(program, hash, &Ok(layout));
            }
        }
        let seg = Segment {
            base: super::Base::of(&map),
            map: Arc::new(map),
            file,
            geometry,
            index: SlotIndex::new(geometry.slot_count),
            layout,
            compat,
            hash: found,
            name: name.into(),
            backend: backend.clone(),
            writable: access == Access::ReadWrite,
            lease: None,
            lease_generation: super::NO_LEASE,
        };
        // A peer that shrank the file while we validated it made us read zero pages.
        seg.check_intact()?;
        Ok(seg)
    }

    /// The same segment through a new open file description of its file, holding no lease
    /// (a writer's own readers: lease queries through it see the writer's lease, which is on a
    /// description of its own). Read-write, or read-only if the file's permission bits allow
    /// only that (a segment created without owner write), as a reader opened by name would be.
    pub fn reopen(&self, expect: &Expect) -> Result<Segment> {
        let (file, access) = match sys::reopen(&self.file, Access::ReadWrite) {
            Ok(file) => (file, Access::ReadWrite),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => (
                sys::reopen(&self.file, Access::ReadOnly)
                    .map_err(Error::io("reopening", &self.name))?,
                Access::ReadOnly,
            ),
            Err(e) => return Err(Error::io("reopening", &self.name)(e)),
        };
        Self::open_file(
            &self.backend,
            &self.name,
            file,
            access,
            Duration::ZERO,
            expect,
        )
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
