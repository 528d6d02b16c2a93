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
//! mappings), and whose descriptor is registered here from its opening to its closing; a
//! `fork` child handler points each registered descriptor at a placeholder (`/dev/null`, or an
//! empty memfd), which drops the child's only reference to the description (and not the
//! parent's: its descriptor is its own). The handler also bumps the
//! process generation, which every handle records when it is opened and checks before it
//! publishes or takes: a copied handle panics instead.
//!
//! The registry is a chain of fixed tables of atomics, never freed, so that the child handler
//! reads it without a lock (a lock another thread held at the fork would never be released in
//! the child). A description opened while another thread forks is detected (the fork's prepare
//! handler counts forks begun) and replaced by a new one, which no child has.

use crate::error::{Error, Result};
use crate::sys::{self, Access};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::OnceLock;

/// This process's generation: bumped in every child `fork` makes, so that a handle made before
/// the fork (which records the generation it was made in) knows it was copied.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether this process was made by `fork` from a process that had loaded this runtime: until
/// then no handle can be inherited, and the check before each publish is this one load.
static MADE_BY_FORK: AtomicBool = AtomicBool::new(false);
/// Forks this process began (its prepare handler ran).
static FORKS_BEGUN: AtomicU64 = AtomicU64::new(0);
/// Forks in progress: begun, and the parent handler not run yet.
static FORKING: AtomicU32 = AtomicU32::new(0);
/// The descriptor a child puts in place of each registered one; -1 until the first
/// registration opens it.
static PLACEHOLDER: AtomicI32 = AtomicI32::new(-1);

/// A free entry of the registry.
const FREE: RawFd = -1;
/// Descriptors per table of the registry.
const TABLE: usize = 32;
/// How often a descriptor is opened again because a fork began meanwhile, before giving up.
const MAX_REOPENS: u32 = 1000;
/// How many times to yield to a fork in progress before giving up.
const MAX_YIELDS: u32 = 1_000_000;

/// One table of the registry, and the next one.
struct Table {
    fds: [AtomicI32; TABLE],
    next: AtomicPtr<Table>,
}

impl Table {
    const fn new() -> Table {
        Table {
            fds: [const { AtomicI32::new(FREE) }; TABLE],
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

/// Every registered descriptor, in the order of the tables.
fn registered() -> impl Iterator<Item = &'static AtomicI32> {
    core::iter::successors(Some(&REGISTRY), |t| t.next()).flat_map(|t| t.fds.iter())
}

/// Records `fd` in the registry.
fn register(fd: RawFd) {
    let mut table = &REGISTRY;
    // Ends: every pass either takes a free entry or moves to the next table, and the last
    // table always gets a successor.
    loop {
        for entry in &table.fds {
            if entry
                .compare_exchange(FREE, fd, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return;
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

/// Removes `fd` from the registry.
fn unregister(fd: RawFd) {
    for entry in registered() {
        if entry
            .compare_exchange(fd, FREE, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

extern "C" fn before_fork() {
    FORKING.fetch_add(1, Ordering::SeqCst);
    FORKS_BEGUN.fetch_add(1, Ordering::SeqCst);
}

extern "C" fn after_fork_in_parent() {
    FORKING.fetch_sub(1, Ordering::SeqCst);
}

/// The child's handler: drops the child's reference to every leased description and marks
/// every handle copied from the parent as inherited. Async-signal-safe: atomics and `dup3`.
extern "C" fn after_fork_in_child() {
    let placeholder = PLACEHOLDER.load(Ordering::Relaxed);
    for entry in registered() {
        let fd = entry.load(Ordering::Relaxed);
        if fd != FREE {
            sys::replace_descriptor(placeholder, fd);
        }
    }
    GENERATION.fetch_add(1, Ordering::Relaxed);
    MADE_BY_FORK.store(true, Ordering::Relaxed);
    // The forks of other threads were not copied into this process.
    FORKING.store(0, Ordering::Relaxed);
}

/// Opens the placeholder and registers the `fork` handlers, once per process.
fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), std::io::ErrorKind>> = OnceLock::new();
    let done = INSTALLED.get_or_init(|| {
        let placeholder = File::open("/dev/null")
            .or_else(|_| sys::memfd())
            .map_err(|e| e.kind())?;
        PLACEHOLDER.store(placeholder.into_raw_fd(), Ordering::SeqCst);
        sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child).map_err(|e| e.kind())
    });
    done.map_err(std::io::Error::from)
}

/// Whether this process was made by `fork` (see [`MADE_BY_FORK`]): if not, no handle in it was
/// inherited. One relaxed load, for the publish paths; [`LeaseFile::inherited`] says which.
#[inline(always)]
pub(crate) fn made_by_fork() -> bool {
    MADE_BY_FORK.load(Ordering::Relaxed)
}

/// This process's generation (see [`GENERATION`]).
#[inline(always)]
fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// The number of forks begun, read at a moment no fork was in progress (yielding to one that
/// is): a descriptor opened after this returns is in no child of a fork begun before it.
fn quiet_point() -> std::io::Result<u64> {
    for _ in 0..MAX_YIELDS {
        if FORKING.load(Ordering::SeqCst) == 0 {
            let begun = FORKS_BEGUN.load(Ordering::SeqCst);
            // A fork whose count we read has finished (then its child was made before our
            // descriptor) unless it is still in progress now.
            if FORKING.load(Ordering::SeqCst) == 0 {
                return Ok(begun);
            }
        }
        std::thread::yield_now();
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
        for _ in 0..MAX_REOPENS {
            let begun = quiet_point().map_err(failed())?;
            let lease = sys::reopen(file, Access::ReadWrite).map_err(failed())?;
            register(lease.as_raw_fd());
            if FORKS_BEGUN.load(Ordering::SeqCst) == begun {
                // Every fork from now on sees the registration.
                return Ok(LeaseFile {
                    file: lease,
                    generation: generation(),
                });
            }
            unregister(lease.as_raw_fd());
        }
        Err(failed()(std::io::Error::other(
            "forks in other threads keep interrupting it",
        )))
    }

    /// Whether this handle was copied into this process by `fork` (it belongs to an ancestor,
    /// and its lease stayed there).
    #[inline(always)]
    pub fn inherited(&self) -> bool {
        generation() != self.generation
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
        if !self.inherited() {
            // Released before the descriptor leaves the registry, so that a child forked in
            // between, which keeps a copy, does not keep the lease.
            let _ = sys::unlock_leases(&self.file);
        }
        unregister(self.file.as_raw_fd());
        // `file` is closed after this.
    }
}
