//! Creating a segment, and recovering one whose creator died before making it ready.

use super::{descriptor_of, file_size, header_of, map, Recovered, Segment, Spec};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{
    Geometry, FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_DESCRIPTOR, STATE_CREATING, STATE_READY,
};
use crate::layout::LayoutBuf;
use crate::lease::LeaseFile;
use crate::protocol::{SlotIndex, Slots};
use crate::sys::{self, Access};
use core::sync::atomic::Ordering;
use std::fs::File;
use std::sync::Arc;

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
        // Created with owner read and write whatever `mode` says: the lease is taken on a
        // description opened again for reading and writing, which the kernel checks against
        // the file's permissions (even for its owner). `apply_mode` sets the exact bits after.
        let file = backend.open(name, true, Access::ReadWrite, spec.mode | 0o600)?;
        let lease = match LeaseFile::of(&file, name) {
            Ok(lease) => lease,
            Err(e) => {
                // Removed only while holding the lease (on the file's own description, for
                // this instant): otherwise a peer may have recovered the name meanwhile.
                if sys::try_lock_writer(&file).unwrap_or(false) {
                    let _ = backend.unlink(name);
                }
                return Err(e);
            }
        };
        // Take the lease before anything else: while the creator lives, nobody can mistake its
        // half-built segment for one whose creator died (see `recover`).
        match sys::try_lock_writer(&lease) {
            Ok(true) => {}
            // A peer locked the name in the instant since we created it.
            Ok(false) => return Err(Error::WriterBusy { pid: 0 }),
            Err(e) => return Err(Error::io("locking", name)(e)),
        }
        // A collector (`shm gc`) may have removed the name before we locked it: it is then
        // no one's, nor ours to remove.
        Self::check_linked(backend, name, &file)?;
        // From here on the name is ours: remove it again (holding the lease, so that no peer
        // recovered it meanwhile) if initialization fails.
        if let Err(e) = Self::apply_mode(backend, name, &file, spec.mode) {
            let _ = backend.unlink(name);
            return Err(e);
        }
        Self::initialize(backend, name, file, lease, spec, fill, true)
    }

    /// `Err(NotFound)` if the name of `file`, whose writer lease the caller just took, was
    /// removed since it was opened (a collector removes a dead segment while holding its
    /// lease): becoming the writer of a segment no one can open by name would be useless, and
    /// a new segment may have the name by now. Anonymous segments have no name to remove.
    pub(super) fn check_linked(backend: &Backend, name: &str, file: &File) -> Result<()> {
        if *backend != Backend::Anonymous
            && sys::unlinked(file).map_err(Error::io("checking", name))?
        {
            return Err(Error::NotFound {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Gives a newly created name exactly the permission bits `mode`: the exclusive create
    /// applied the process's umask to them (0o666 under umask 022 becomes 0o644, and another
    /// user could not take the segment over), and owner read and write were added (see
    /// `create`). Nothing to do when the bits already match: some file systems refuse `chmod`.
    fn apply_mode(backend: &Backend, name: &str, file: &File, mode: u32) -> Result<()> {
        if *backend == Backend::Anonymous {
            // No name: only holders of the descriptor reach it.
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        let current = file
            .metadata()
            .map_err(Error::io("reading the permissions of", name))?
            .permissions()
            .mode();
        if current & 0o777 == mode & 0o777 {
            return Ok(());
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(Error::io("setting the permissions of", name))
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
        let lease = LeaseFile::of(&file, name)?;
        if !sys::try_lock_writer(&lease).map_err(Error::io("locking", name))? {
            return Err(Error::NotReady);
        }
        Self::check_linked(backend, name, &file)?;
        if file_size(&file, name)? >= HEADER_SIZE as u64 {
            let map = map(&file, HEADER_SIZE, Access::ReadWrite, name)?;
            let h = header_of(&map);
            let magic = h.magic.load(Ordering::Relaxed);
            if magic != 0 && magic != MAGIC {
                return Err(Error::NotASegment { found: magic });
            }
            if magic == MAGIC && h.state.load(Ordering::Relaxed) == STATE_READY {
                drop(map);
                return Ok(Recovered::Ready(file, lease));
            }
        }
        Self::initialize(backend, name, file, lease, spec, fill, false)
            .map(|seg| Recovered::Initialized(Box::new(seg)))
    }

    /// Sizes, maps and initializes a segment whose lease the caller holds on `lease`. On
    /// failure, with `remove`, removes the name while still holding the lease.
    ///
    /// The file is only ever grown, never shrunk: other openers may have it mapped while they
    /// wait for it to be ready.
    fn initialize(
        backend: &Backend,
        name: &str,
        file: File,
        lease: LeaseFile,
        spec: &Spec<'_>,
        fill: impl FnOnce(&Segment),
        remove: bool,
    ) -> Result<Segment> {
        // Runs while `lease` (a parameter, or the segment that owns it) is still alive.
        let fail = |e: Error| {
            if remove {
                let _ = backend.unlink(name);
            }
            e
        };
        let desc = spec.layout.encode();
        // What a segment stores must be what every opener accepts.
        if desc.len() > MAX_DESCRIPTOR || LayoutBuf::decode(&desc).as_ref() != Ok(spec.layout) {
            return Err(fail(Error::InvalidLayout {
                what: "the layout is too large or too deeply nested to store (at most 1 MiB, 32 levels, 65,536 types, names of 1,024 bytes)".into(),
            }));
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
        })
        .map_err(fail)?;
        let total = geometry.total_size as u64;
        if file_size(&file, name).map_err(fail)? < total {
            file.set_len(total)
                .map_err(Error::io("sizing", name))
                .map_err(fail)?;
        }
        // Reserve the memory now: on tmpfs `set_len` reserves nothing, and a full /dev/shm
        // would otherwise kill this process with SIGBUS at its first store instead of
        // returning an error here.
        sys::allocate(&file, total)
            .map_err(Error::io("reserving memory for", name))
            .map_err(fail)?;
        if *backend == Backend::Anonymous {
            sys::seal_size(&file)
                .map_err(Error::io("sealing", name))
                .map_err(fail)?;
        }
        let map = map(&file, geometry.total_size, Access::ReadWrite, name).map_err(fail)?;
        let mut seg = Segment {
            base: super::Base::of(&map),
            map: Arc::new(map),
            file,
            geometry,
            index: SlotIndex::new(geometry.slot_count),
            layout: spec.layout.clone(),
            compat: crate::layout::Compat::Exact,
            hash: spec.hash,
            name: name.into(),
            backend: backend.clone(),
            writable: true,
            lease: None,
            lease_generation: super::NO_LEASE,
        };
        seg.keep_lease(lease);
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
        h.published.store(0, r);
        seg.init_writers(spec.turns).map_err(fail)?;
        // After `published`: a fill may set it (a stream created after message `n`).
        fill(&seg);
        h.magic.store(MAGIC, r);
        // A peer that shrank the file while we wrote it made us write into zero pages.
        seg.check_intact().map_err(fail)?;
        if spec.crash_before_ready {
            // Test hook: stop as a creator that died mid-initialization would.
            std::process::abort();
        }
        if spec.turns {
            // Before `ready`: a turn-taking writer that sees it must find the lease shareable.
            seg.share_writer_lease().map_err(fail)?;
        }
        // Publishes everything above to openers, which load `state` with Acquire.
        h.state.store(STATE_READY, Ordering::Release);
        Ok(seg)
    }
}
