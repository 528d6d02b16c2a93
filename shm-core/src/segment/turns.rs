//! What a segment of turn-taking writers adds (`docs/segment-format.md`, "Turn-taking
//! writers"): the `writers` mode and the lock ABI in the header, the turn lock itself, and the
//! shared writer lease.

use super::{corrupt, Segment};
use crate::error::{Error, Result};
use crate::format::{TURN_LOCK_SIZE, WRITERS_ONE, WRITERS_TURNS};
use crate::sys::{self, Locked};
use core::sync::atomic::Ordering;
use std::time::Duration;

const _: () = assert!(sys::LOCK_SIZE <= TURN_LOCK_SIZE);
const _: () = assert!(core::mem::align_of::<libc::pthread_mutex_t>() <= 16);

impl Segment {
    /// Writes the `writers` mode (and for turn-taking writers the lock ABI and a new turn lock)
    /// into a segment being initialized, before it is marked ready.
    pub(super) fn init_writers(&self, turns: bool) -> Result<()> {
        let h = self.header();
        for word in &h.turn_lock {
            word.store(0, Ordering::Relaxed);
        }
        if !turns {
            h.writers.store(WRITERS_ONE, Ordering::Relaxed);
            h.lock_abi.store(0, Ordering::Relaxed);
            return Ok(());
        }
        // SAFETY: `turn_lock` spans TURN_LOCK_SIZE >= LOCK_SIZE bytes at offset 208 of the
        // mapped header (16-aligned in a page-aligned mapping, enough for the mutex: asserted
        // above); the mapping lives as long as `self`, and nobody can lock the mutex before
        // the segment is ready (openers wait for it).
        unsafe { sys::mutex_init(self.turn_lock_ptr()) }
            .map_err(Error::io("making the turn lock of", &self.name))?;
        h.lock_abi.store(sys::LOCK_ABI, Ordering::Relaxed);
        h.writers.store(WRITERS_TURNS, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the segment's writers take turns (its `writers` field, as the header says now).
    pub fn writers_take_turns(&self) -> bool {
        self.header().writers.load(Ordering::Relaxed) == WRITERS_TURNS
    }

    /// Checks, before a writer takes the lease, that the segment is written the way the writer
    /// writes (`turns`: in turns, under the turn lock, else as its one writer), and that a
    /// turn lock is one this program can share: [`Error::WriterMode`] or [`Error::LockAbi`]
    /// otherwise.
    pub fn check_writers(&self, turns: bool) -> Result<()> {
        let h = self.header();
        let shared = match h.writers.load(Ordering::Relaxed) {
            WRITERS_ONE => false,
            WRITERS_TURNS => true,
            _ => return corrupt("unknown writers mode"),
        };
        if shared != turns {
            return Err(Error::WriterMode { shared });
        }
        if shared {
            let found = h.lock_abi.load(Ordering::Relaxed);
            if found != sys::LOCK_ABI {
                return Err(Error::LockAbi {
                    expected: sys::LOCK_ABI,
                    found,
                });
            }
            if self.geometry.kind.is_ring() || self.geometry.slot_count < 2 {
                return corrupt(
                    "turn-taking writers need a shared-state segment of two or more slots",
                );
            }
        }
        Ok(())
    }

    /// Takes the writer lease shared, as a turn-taking writer holds it, or fails with
    /// [`Error::WriterBusy`] while a single writer holds it.
    pub fn take_shared_writer_lease(&mut self) -> Result<()> {
        if self.take_lease(sys::try_share_writer_lock)? {
            return Ok(());
        }
        Err(Error::WriterBusy {
            pid: self.header().writer_pid.load(Ordering::Relaxed),
        })
    }

    /// Turns the exclusive writer lease this segment holds (its creator's, or a recoverer's)
    /// into a shared one, atomically: other turn-taking writers may attach from now on.
    pub fn share_writer_lease(&self) -> Result<()> {
        let lease = self.lease.as_ref().expect("a writer holds the lease");
        match sys::try_share_writer_lock(lease) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::WriterBusy { pid: 0 }),
            Err(e) => Err(Error::io("sharing the lease of", &self.name)(e)),
        }
    }

    /// The turn lock's address in this process's mapping.
    fn turn_lock_ptr(&self) -> *mut libc::pthread_mutex_t {
        self.header().turn_lock.as_ptr() as *mut libc::pthread_mutex_t
    }

    /// Takes the turn lock, waiting at most `timeout` (`None`: without limit); `Ok(None)` when
    /// the time ran out. See `sys::mutex_lock`.
    ///
    /// # Safety
    /// The segment is in the turn-taking mode with this program's lock ABI (checked by
    /// [`check_writers`](Self::check_writers) when the caller opened it or created it so), and
    /// stays mapped until this thread unlocks the lock, or exits.
    pub unsafe fn lock_turn(&self, timeout: Option<Duration>) -> Result<Option<Locked>> {
        // SAFETY: the caller guarantees that the lock was initialized (in this ABI) and stays
        // mapped while held; its address is inside the mapped header (see `init_writers`).
        unsafe { sys::mutex_lock(self.turn_lock_ptr(), timeout) }.map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTRECOVERABLE) {
                Error::Corrupt {
                    what: "the turn lock was released without repairing what a dead writer left",
                }
            } else {
                Error::io("taking the turn lock of", &self.name)(e)
            }
        })
    }

    /// Marks the turn lock, taken from a dead owner, consistent again.
    ///
    /// # Safety
    /// This thread holds the turn lock (from [`lock_turn`](Self::lock_turn)).
    pub unsafe fn repair_turn_lock(&self) -> Result<()> {
        // SAFETY: the caller holds the lock, which was initialized (see `lock_turn`).
        unsafe { sys::mutex_consistent(self.turn_lock_ptr()) }
            .map_err(Error::io("repairing the turn lock of", &self.name))
    }

    /// Releases the turn lock.
    ///
    /// # Safety
    /// This thread holds the turn lock, and it is consistent (taken clean, or repaired with
    /// [`repair_turn_lock`](Self::repair_turn_lock)).
    pub unsafe fn unlock_turn(&self) -> Result<()> {
        // SAFETY: the caller guarantees both.
        unsafe { sys::mutex_unlock(self.turn_lock_ptr()) }
            .map_err(Error::io("releasing the turn lock of", &self.name))
    }

    /// Keeps this segment's mapping for the rest of the process, whenever the segment is
    /// dropped: a turn lock left held by a forgotten turn stays on its thread's robust list,
    /// which the C library and the kernel walk through the mapping; unmapping it would let them
    /// touch whatever is mapped there next.
    pub fn leak_mapping(&self) {
        self.map.leaked.store(true, Ordering::Relaxed);
    }
}

impl crate::protocol::turn::Epoch for Segment {
    fn epoch(&self) -> &core::sync::atomic::AtomicU64 {
        &self.header().writer_epoch
    }
}
