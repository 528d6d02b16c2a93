//! One asynchronous wait on one segment word, as the futures and the [`WaitSet`](super::WaitSet)
//! arm it ([`Armed`]), and the watch on the segment's writer ([`WriterWatch`]).

use super::engine::{self, Engine, Outcome, Registered, Watch};
use crate::segment::{Pinned, Segment};
use crate::sys;
use core::sync::atomic::Ordering;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The words a waiter sleeps on: the futex word and the waiter count of one segment.
pub(crate) struct Target {
    pub pin: Pinned,
    /// Byte offsets in the mapping.
    pub futex: usize,
    pub waiters: usize,
    /// Whether the mapping is writable (a read-only waiter cannot register, and polls).
    pub can_register: bool,
}

impl Target {
    /// The futex word and the waiter count of the header (readers of every kind).
    pub fn header(seg: &Segment) -> Target {
        Target {
            pin: seg.pin(),
            futex: core::mem::offset_of!(crate::format::Header, futex),
            waiters: core::mem::offset_of!(crate::format::Header, waiters),
            can_register: seg.is_writable(),
        }
    }
}

impl Target {
    /// The futex word and the waiter count a queue's producer waits for room on (the control
    /// line's `space_futex` and `space_waiters`).
    pub fn space(seg: &Segment) -> Target {
        use crate::format::{Control, HEADER_SIZE};
        Target {
            pin: seg.pin(),
            futex: HEADER_SIZE + core::mem::offset_of!(Control, space_futex),
            waiters: HEADER_SIZE + core::mem::offset_of!(Control, space_waiters),
            can_register: seg.is_writable(),
        }
    }
}

/// The segment's writer as a waiter sees it.
pub(crate) enum Writer {
    /// Alive, and its process's pidfd ends waits when it exits.
    Watched(Arc<OwnedFd>),
    /// Alive (or unknown: this process, or a pid that cannot be opened), not watched.
    Unwatched,
    /// No writer holds the lease.
    Dead,
}

/// A cached pidfd of a segment's writer.
#[derive(Default)]
pub(crate) struct WriterWatch {
    /// (pid, epoch) the pidfd was verified for; `None` for the pidfd: that writer cannot be
    /// watched.
    cache: Option<(u32, u64, Option<Arc<OwnedFd>>)>,
}

impl WriterWatch {
    /// The writer of `seg` now: a pidfd for the process its lease names (`writer_pid` and
    /// `writer_epoch`), verified after opening to still name the live lease holder.
    pub fn check(&mut self, seg: &Segment) -> Writer {
        let h = seg.header();
        let pid = h.writer_pid.load(Ordering::Acquire);
        let epoch = h.writer_epoch.load(Ordering::Acquire);
        if !seg.writer_alive() {
            return Writer::Dead;
        }
        if let Some((p, e, fd)) = &self.cache {
            if (*p, *e) == (pid, epoch) {
                return fd.clone().map_or(Writer::Unwatched, Writer::Watched);
            }
        }
        let fd = (pid != 0 && pid != sys::pid())
            .then(|| sys::pidfd_open(pid).ok())
            .flatten()
            .map(Arc::new);
        // The pidfd names the live writer only if the lease is still held and still names the
        // same process and epoch after it was opened (a pid reused by an unrelated process
        // after the writer died fails the first, a takeover the second).
        let verified = seg.writer_alive()
            && h.writer_pid.load(Ordering::Acquire) == pid
            && h.writer_epoch.load(Ordering::Acquire) == epoch;
        let fd = fd.filter(|_| verified);
        self.cache = Some((pid, epoch, fd.clone()));
        fd.map_or(Writer::Unwatched, Writer::Watched)
    }

    /// The pidfd reported an exit but the lease is still held (another process inherited
    /// it, or the pid named another process): stop watching this writer.
    pub fn unwatch(&mut self) {
        if let Some(c) = &mut self.cache {
            c.2 = None;
        }
    }
}

/// At most one armed wait on an engine; cancelled when dropped (the engine keeps the words
/// mapped and the registration counted until the kernel is done with it).
pub(crate) struct Armed {
    engine: Engine,
    id: Option<u64>,
}

impl Armed {
    /// No wait yet, on `engine`.
    pub fn new(engine: Engine) -> Armed {
        Armed { engine, id: None }
    }

    /// A wait on the process's shared engine (driven by its thread).
    pub fn shared() -> io::Result<Armed> {
        Ok(Armed::new(engine::shared()?.clone()))
    }

    /// The armed wait's outcome once it has one (the wait is then over); `Pending` while it
    /// sleeps (`cx`'s waker is woken at its end); `Ready(None)` if none is armed.
    pub fn poll_outcome(&mut self, waker: Option<&Waker>) -> Poll<Option<Outcome>> {
        let Some(id) = self.id else {
            return Poll::Ready(None);
        };
        let outcome = self.engine.take(id, waker);
        if outcome.is_ready() {
            self.id = None;
        }
        outcome.map(Some)
    }

    /// [`poll_outcome`](Self::poll_outcome) for a caller that has just reaped the engine.
    pub fn poll_reaped(&mut self, waker: Option<&Waker>) -> Poll<Option<Outcome>> {
        let Some(id) = self.id else {
            return Poll::Ready(None);
        };
        let outcome = self.engine.take_reaped(id, waker);
        if outcome.is_ready() {
            self.id = None;
        }
        outcome.map(Some)
    }

    /// [`poll_outcome`](Self::poll_outcome) with a context.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        self.poll_outcome(Some(cx.waker()))
    }

    /// The registration protocol, then a wait: counts a waiter in `target`, makes the
    /// barrier, reads the futex word, and re-checks `ready(true)`. `Ok(false)` if it held
    /// (nothing is armed); else arms a wait on that word (and on `pidfd`), `Ok(true)`. A
    /// waiter that cannot register arms a short polling wait and re-checks with
    /// `ready(false)`.
    pub fn arm(
        &mut self,
        target: &Target,
        pidfd: Option<Arc<OwnedFd>>,
        waker: Option<Waker>,
        ready: impl FnMut(bool) -> bool,
    ) -> io::Result<bool> {
        self.arm_deferred(target, pidfd, waker, ready, false)
    }

    /// [`arm`](Self::arm), whose sleep may start only at the engine's next
    /// [`flush`](Engine::flush) if `defer`.
    pub fn arm_deferred(
        &mut self,
        target: &Target,
        pidfd: Option<Arc<OwnedFd>>,
        waker: Option<Waker>,
        mut ready: impl FnMut(bool) -> bool,
        defer: bool,
    ) -> io::Result<bool> {
        debug_assert!(self.id.is_none());
        let registered = if target.can_register {
            Registered::new(&target.pin, target.waiters)
        } else {
            None
        };
        let futex = target.pin.u32_at(target.futex);
        let expected = if registered.is_some() {
            super::barrier_after_registering();
            let word = futex.load(Ordering::SeqCst);
            if ready(true) {
                return Ok(false);
            }
            word
        } else {
            let word = futex.load(Ordering::SeqCst);
            if ready(false) {
                return Ok(false);
            }
            word
        };
        let watch = Watch {
            pin: target.pin.clone(),
            futex: target.futex,
            expected,
            pidfd,
            slice: engine::slice(registered.is_none()),
        };
        self.id = Some(self.engine.arm(watch, registered, waker, defer)?);
        Ok(true)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.engine.cancel(id);
        }
    }
}
