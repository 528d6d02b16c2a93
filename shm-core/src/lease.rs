//! Leases a `fork` child does not inherit: the descriptors of this process that carry a writer
//! or consumer lease, and the process generation that tells a handle copied by `fork` from one
//! its process opened.
//!
//! A lease is an OFD lock, held by an open file description, and `fork` gives the child a
//! descriptor of every description the parent has open. Without care, a child forked by a
//! writer (the anonymous-segment recipe does exactly that) would keep the description alive
//! after the writer's process died: the lease would outlive its writer, a reader's `WriterInfo::alive` would
//! stay true and no takeover would succeed. The child would also hold a byte copy of the
//! writer, able to publish beside it.
//!
//! So a lease is taken on an open file description of its own, which is never mapped (a
//! mapping refers to the description it was made through, and a child inherits the parent's
//! mappings), and whose descriptor is registered here, with the identity of its file, from its
//! opening to its closing; a `fork` child handler points each registered descriptor that still
//! refers to that file at a placeholder (`/dev/null`, or an empty memfd), which drops the
//! child's only reference to the description (and not the parent's: its descriptor is its
//! own), and empties the child's registry: the child owns none of those descriptors, and may
//! close them and reuse their numbers. The handler also bumps the process generation, which
//! every handle records when it is opened and checks before it publishes or takes: a copied
//! handle panics instead.
//!
//! A child made without the `fork` handlers (the raw `fork` or `clone` system calls, `_Fork`,
//! a `vfork` child) keeps its reference to the description until it execs or exits: a lease
//! handle dropped in such a child (it knows by its process id) releases nothing.
//!
//! The registry is a chain of fixed tables of atomics, never freed, so that the child handler
//! reads it without a lock (a lock another thread held at the fork would never be released in
//! the child). A description opened while another thread forks is detected (the fork's prepare
//! handler counts forks begun) and replaced by a new one, which no child has.

use crate::error::{Error, Result};
use crate::sys::{self, Access};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// This process's generation: bumped in every child `fork` makes, so that a handle made before
/// the fork (which records the generation it was made in) knows it was copied.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Forks this process began (its prepare handler ran).
static FORKS_BEGUN: AtomicU64 = AtomicU64::new(0);
/// Forks in progress: begun, and the parent handler not run yet.
static FORKING: AtomicU32 = AtomicU32::new(0);
/// The descriptor a child puts in place of each registered one; -1 until the first
/// registration opens it.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(-1);
/// The identity (device, inode) of the placeholder's file: the process may have closed the
/// placeholder's descriptor and reused its number since, which [`placeholder`] detects.
static PLACEHOLDER_DEV: AtomicU64 = AtomicU64::new(0);
static PLACEHOLDER_INO: AtomicU64 = AtomicU64::new(0);

/// A free entry of the registry.
const FREE: RawFd = -1;
/// An entry being filled in: taken, its descriptor not stored yet.
const CLAIMED: RawFd = -2;
/// Descriptors per table of the registry.
const TABLE: usize = 32;
/// How often a descriptor is opened again because a fork began meanwhile, before giving up.
const MAX_REOPENS: u32 = 1000;
/// How long to wait for a fork in another thread to finish before giving up.
const MAX_FORK_WAIT: Duration = Duration::from_secs(10);

/// One registered descriptor: its number ([`FREE`], [`CLAIMED`] or a descriptor), and the
/// identity (device, inode) of the file it was opened on, stored before the number is.
struct Entry {
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
}

/// One table of the registry, and the next one.
struct Table {
    entries: [Entry; TABLE],
    next: AtomicPtr<Table>,
}

impl Table {
    const fn new() -> Table {
        Table {
            entries: [const {
                Entry {
                    fd: AtomicI32::new(FREE),
                    dev: AtomicU64::new(0),
                    ino: AtomicU64::new(0),
                }
            }; TABLE],
            next: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The next table, if one was added.
    fn next(&self) -> Option<&'static Table> {
        let next = self.next.load(Ordering::Acquire);
        // SAFETY: a non-null `next` was stored from `Box::into_raw` of a fully built table
        // (published with Release, loaded with Acquire), and tables are never freed.
        (!next.is_null()).then(|| unsafe { &*next })
    }
}

/// The first table of the registry; further ones are chained from it.
static REGISTRY: Table = Table::new();

/// Every entry of the registry, in the order of the tables.
fn registered() -> impl Iterator<Item = &'static Entry> {
    core::iter::successors(Some(&REGISTRY), |t| t.next()).flat_map(|t| t.entries.iter())
}

/// Records `fd`, open on the file of identity `(dev, ino)`, in the registry; returns its entry.
fn register(fd: RawFd, (dev, ino): (u64, u64)) -> &'static Entry {
    let mut table = &REGISTRY;
    // Ends: every pass either takes a free entry or moves to the next table, and the last
    // table always gets a successor.
    loop {
        for entry in &table.entries {
            if entry
                .fd
                .compare_exchange(FREE, CLAIMED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                entry.dev.store(dev, Ordering::Relaxed);
                entry.ino.store(ino, Ordering::Relaxed);
                // Release: whoever sees the descriptor sees its identity.
                entry.fd.store(fd, Ordering::SeqCst);
                return entry;
            }
        }
        table = match table.next() {
            Some(next) => next,
            None => {
                let fresh = Box::into_raw(Box::new(Table::new()));
                match table.next.compare_exchange(
                    core::ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    // SAFETY: `fresh` comes from `Box::into_raw` and is now in the chain, which
                    // is never freed.
                    Ok(_) => unsafe { &*fresh },
                    Err(other) => {
                        // SAFETY: `fresh` comes from `Box::into_raw` and was not published:
                        // this is its only owner.
                        drop(unsafe { Box::from_raw(fresh) });
                        // SAFETY: `other` is the non-null table another thread chained, from
                        // `Box::into_raw`, never freed.
                        unsafe { &*other }
                    }
                }
            }
        };
    }
}

/// Removes `fd` from `entry`, if it is still there (a `fork` child handler emptied the
/// registry of the process the entry was copied into).
fn unregister(entry: &Entry, fd: RawFd) {
    let _ = entry
        .fd
        .compare_exchange(fd, FREE, Ordering::SeqCst, Ordering::Relaxed);
}

/// The placeholder descriptor, opened again if this process closed it (or reused its number
/// for another file) since it was opened; -1 if none opens. Async-signal-safe: `fstat`, `open`
/// and atomics.
fn placeholder() -> RawFd {
    let fd = PLACEHOLDER.load(Ordering::SeqCst);
    let id = (
        PLACEHOLDER_DEV.load(Ordering::Relaxed),
        PLACEHOLDER_INO.load(Ordering::Relaxed),
    );
    if fd >= 0 && sys::identity(fd) == Some(id) {
        return fd;
    }
    let fresh = sys::open_placeholder();
    if let Some((dev, ino)) = sys::identity(fresh) {
        PLACEHOLDER_DEV.store(dev, Ordering::Relaxed);
        PLACEHOLDER_INO.store(ino, Ordering::Relaxed);
    }
    // Two threads that replace it at once each open one; the loser's descriptor stays open
    // (closing it could close a number another thread reused meanwhile).
    let _ = PLACEHOLDER.compare_exchange(fd, fresh, Ordering::SeqCst, Ordering::SeqCst);
    PLACEHOLDER.load(Ordering::SeqCst)
}

extern "C" fn before_fork() {
    FORKING.fetch_add(1, Ordering::SeqCst);
    FORKS_BEGUN.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn after_fork_in_parent() {
    if FORKING.fetch_sub(1, Ordering::SeqCst) == 1 {
        sys::futex_wake_all(&FORKING);
    }
}

/// The child's handler: drops the child's reference to every leased description, empties the
/// registry (the child owns none of those descriptors) and marks every handle copied from the
/// parent as inherited. Async-signal-safe: atomics, `fstat`, `open` and `dup3`.
extern "C" fn after_fork_in_child() {
    let mut stand_in = None;
    for entry in registered() {
        let fd = entry.fd.load(Ordering::Acquire);
        // Only a descriptor still open on the file it was registered with: the number may
        // have been closed and reused between the copy of the descriptor table and the copy
        // of this memory (another thread of the parent ran meanwhile).
        let id = (
            entry.dev.load(Ordering::Relaxed),
            entry.ino.load(Ordering::Relaxed),
        );
        if fd >= 0 && sys::identity(fd) == Some(id) {
            let placeholder = *stand_in.get_or_insert_with(placeholder);
            // SAFETY: the registered descriptor belongs to the lease handle that registered it
            // (`LeaseFile`), whose copy in this process never uses it but to close it; it
            // still refers to the leased file (checked above).
            unsafe { sys::replace_descriptor(placeholder, fd) };
        }
        entry.fd.store(FREE, Ordering::Relaxed);
    }
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // The forks of other threads were not copied into this process.
    FORKING.store(0, Ordering::Relaxed);
}

/// Opens the placeholder and registers the `fork` handlers, once per process; a failure is
/// tried again at the next call.
///
/// Threads that call it at once the first time may each register the handlers: running them
/// twice per fork changes nothing (the counts only need to be nonzero during a fork and to
/// change across one, and the second child handler finds the registry empty). No lock, so
/// that a child forked during an installation never waits for a thread it does not have.
fn install() -> std::io::Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    if placeholder() < 0 {
        return Err(std::io::Error::last_os_error());
    }
    sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child)?;
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// This process's generation (see [`GENERATION`]): a handle whose lease was taken in another
/// generation was copied into this process by `fork`. One relaxed load, for the publish paths.
#[inline(always)]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// The number of forks begun, read at a moment no fork was in progress (waiting for one that
/// is): a descriptor opened after this returns is in no child of a fork begun before it.
fn quiet_point() -> std::io::Result<u64> {
    let deadline = Instant::now() + MAX_FORK_WAIT;
    // Ends: each pass waits at most until the deadline, after which it gives up.
    loop {
        let forking = FORKING.load(Ordering::SeqCst);
        if forking == 0 {
            let begun = FORKS_BEGUN.load(Ordering::SeqCst);
            // A fork whose count we read has finished (then its child was made before our
            // descriptor) unless it is still in progress now.
            if FORKING.load(Ordering::SeqCst) == 0 {
                return Ok(begun);
            }
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // The parent handler of the last fork in progress wakes us.
        sys::futex_wait(&FORKING, forking, left);
    }
    Err(std::io::Error::other(
        "a fork in another thread does not finish",
    ))
}

/// An open file description of a segment's file that carries (or is about to carry) this
/// process's writer or consumer lease, and nothing else: it is never mapped, so that once a
/// `fork` child's descriptor of it is replaced (see the module documentation) nothing in the
/// child refers to it. Registered from its opening to its closing.
pub(crate) struct LeaseFile {
    file: File,
    /// The process generation the description was opened in.
    generation: u64,
    /// The process the description was opened in: a child made without the `fork` handlers
    /// has the parent's generation, not its process id.
    pid: u32,
    /// The registry entry of `file`'s descriptor.
    entry: &'static Entry,
}

impl LeaseFile {
    /// A new open file description of the segment file `file` (of segment `name`), registered,
    /// to take a lease on.
    ///
    /// If a fork begins while it is opened, the child may hold a copy of its descriptor that
    /// the child handler did not know of: it is then closed (never locked, the copy holds
    /// nothing) and opened again, until no fork interferes.
    pub fn of(file: &File, name: &str) -> Result<LeaseFile> {
        let failed = || Error::io("preparing the lease of", name);
        install().map_err(failed())?;
        // The process may have closed the placeholder since: a child would need it.
        if placeholder() < 0 {
            return Err(failed()(std::io::Error::last_os_error()));
        }
        let id = sys::identity(file.as_raw_fd())
            .ok_or_else(|| failed()(std::io::Error::last_os_error()))?;
        for _ in 0..MAX_REOPENS {
            let begun = quiet_point().map_err(failed())?;
            let lease = sys::reopen(file, Access::ReadWrite).map_err(failed())?;
            let fd = lease.as_raw_fd();
            let entry = register(fd, id);
            if FORKS_BEGUN.load(Ordering::SeqCst) == begun {
                // Every fork from now on sees the registration.
                return Ok(LeaseFile {
                    file: lease,
                    generation: generation(),
                    pid: sys::pid(),
                    entry,
                });
            }
            unregister(entry, fd);
        }
        Err(failed()(std::io::Error::other(
            "forks in other threads keep interrupting it",
        )))
    }

    /// Whether this handle was copied into this process by `fork` (it belongs to an ancestor,
    /// and its lease stayed there).
    fn inherited(&self) -> bool {
        generation() != self.generation
    }

    /// The process generation the description was opened in: the handle was copied into this
    /// process by `fork` if it differs from [`generation`]'s.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl core::ops::Deref for LeaseFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for LeaseFile {
    fn drop(&mut self) {
        // A copy in a child made without the `fork` handlers shares the description (and its
        // lease) with the parent: only the process that opened it releases it.
        if !self.inherited() && self.pid == sys::pid() {
            // Released before the descriptor leaves the registry, so that a child forked in
            // between, which keeps a copy, does not keep the lease.
            let _ = sys::unlock_leases(&self.file);
        }
        unregister(self.entry, self.file.as_raw_fd());
        // `file` is closed after this.
    }
}
