//! The engine every asynchronous wait goes through: one backend (io_uring, `futex_waitv`
//! threads, or a thread per wait), one eventfd it signals, and the table of armed waits.
//!
//! A wait is armed after the registration protocol (see the module docs of `wait`): the
//! caller registered in the segment's waiter count ([`Registered`]), made the barrier, read
//! the futex word and re-checked. The engine then asks the backend to sleep on that word with
//! that expected value (a stale value ends the wait at once), and, if the writer is watched,
//! on the writer's pidfd. Each armed wait ends with exactly one [`Outcome`], reported as soon
//! as it is decided (the futex or the pidfd fired); its entry then leaves the table, dropping
//! its registration (the waiter count goes down) and its pin of the mapping. The backend keeps
//! a pin of its own ([`Watch`]) until neither the kernel nor a thread of ours refers to the
//! words any more (the other half of the wait may still be being cancelled). A wait dropped
//! before its outcome is cancelled, and leaves the table when its outcome arrives.

use super::{threads, uring};
use crate::segment::Pinned;
use crate::sys;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How asynchronous waits sleep; [`WaitSet::backend`](crate::WaitSet::backend) says which one
/// a set uses. Chosen by a probe of the kernel when a set (or the process's shared engine) is
/// made, unless forced with [`WaitSet::with_backend`](crate::WaitSet::with_backend) or the
/// environment variable `SHM_WAIT_BACKEND` (`io_uring`, `futex_waitv` or `thread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitBackend {
    /// io_uring `FUTEX_WAIT` operations (Linux 6.7+) on the segments' own futex words, and
    /// `POLL_ADD` on writers' pidfds, in one ring per engine: no thread at all.
    IoUring,
    /// Threads blocked in `futex_waitv` (Linux 5.16+), one per 127 words.
    FutexWaitv,
    /// One thread per waiting segment, blocked in `FUTEX_WAIT`.
    Thread,
}

impl WaitBackend {
    /// The backend `SHM_WAIT_BACKEND` names, if it names one.
    fn from_env() -> Option<WaitBackend> {
        match std::env::var("SHM_WAIT_BACKEND").ok()?.as_str() {
            "io_uring" => Some(WaitBackend::IoUring),
            "futex_waitv" => Some(WaitBackend::FutexWaitv),
            "thread" => Some(WaitBackend::Thread),
            _ => None,
        }
    }

    /// The environment's choice, else the best the kernel offers.
    pub(crate) fn chosen() -> WaitBackend {
        WaitBackend::from_env().unwrap_or_else(|| {
            if uring::supported() {
                WaitBackend::IoUring
            } else if sys::has_futex_waitv() {
                WaitBackend::FutexWaitv
            } else {
                WaitBackend::Thread
            }
        })
    }
}

/// How an armed wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Woken, or the word changed, or the slice ended: re-check.
    Woken,
    /// The watched writer's process ended.
    WriterDied,
}

/// The longest single sleep of an armed wait, as for a blocking one: a peer that dies between
/// its store and its wake strands nobody longer than this (a watched writer's death ends the
/// wait at once). A test hook turns it off ([`NO_SLICE`]).
const SLICE: Duration = Duration::from_millis(100);

/// Set by `__private::hooks::disable_async_wait_slice`: armed waits sleep without bound, so
/// that a test sees every missed wake-up as a hang.
pub(crate) static NO_SLICE: AtomicBool = AtomicBool::new(false);

/// The slice for an armed wait: `poll` for one that could not register (it polls).
pub(crate) fn slice(poll: bool) -> Option<Duration> {
    if poll {
        Some(Duration::from_micros(200))
    } else if NO_SLICE.load(Ordering::Relaxed) {
        None
    } else {
        Some(SLICE)
    }
}

/// One registration in a waiter count, dropped (the count goes down) with it.
pub(crate) struct Registered {
    pin: Pinned,
    waiters: usize,
}

impl Registered {
    /// Counts one more waiter in the count at byte `waiters` of `pin`'s mapping; `None` if the
    /// count is at its maximum (the caller polls).
    pub fn new(pin: &Pinned, waiters: usize) -> Option<Registered> {
        super::register_waiter(pin.u32_at(waiters)).then(|| Registered {
            pin: pin.clone(),
            waiters,
        })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        super::unregister_waiter(self.pin.u32_at(self.waiters));
    }
}

/// What a backend sleeps on for one armed wait.
pub(crate) struct Watch {
    /// Keeps the words mapped until the backend is done with them.
    pub pin: Pinned,
    /// Byte offset of the futex word in the mapping.
    pub futex: usize,
    /// The value the word held at the re-check.
    pub expected: u32,
    /// The writer's pidfd, if its death is watched.
    pub pidfd: Option<Arc<OwnedFd>>,
    /// The longest sleep ([`slice`]).
    pub slice: Option<Duration>,
}

impl Watch {
    /// The futex word's address, for the kernel.
    pub fn futex_addr(&self) -> *const u32 {
        self.pin.u32_at(self.futex).as_ptr().cast_const()
    }
}

/// What every backend does.
pub(crate) trait Sleeper: Send + Sync {
    /// Starts sleeping on `watch` as wait `id`; signals the eventfd once it has ended. With
    /// `defer`, the sleep may start only at the next [`flush`](Self::flush) (a stale expected
    /// value still ends it at once then): a caller arming many waits makes one system call.
    fn arm(&self, id: u64, watch: Arc<Watch>, defer: bool) -> io::Result<()>;
    /// Starts the sleeps deferred by [`arm`](Self::arm).
    fn flush(&self) -> io::Result<()>;
    /// Asks the sleep of wait `id` to end soon (its final outcome still comes).
    fn cancel(&self, id: u64);
    /// Moves the outcomes of ended waits into `out`.
    fn reap(&self, out: &mut Vec<(u64, Outcome)>);
    /// Whether [`reap`](Self::reap) would find an outcome now (no system call).
    fn has_outcomes(&self) -> bool;
    /// System calls made so far to start sleeps (for a test hook).
    fn arm_syscalls(&self) -> u64;
    /// Threads this backend runs now (for its report in tests).
    fn threads(&self) -> usize {
        0
    }
}

/// An armed wait in the table.
struct Op {
    /// Dropped when the entry leaves the table, after the final outcome.
    _registered: Option<Registered>,
    /// Kept until then too (the backend has its own reference while it sleeps).
    _watch: Arc<Watch>,
    outcome: Option<Outcome>,
    waker: Option<Waker>,
    cancelled: bool,
}

/// The table of armed waits.
#[derive(Default)]
struct Table {
    next: u64,
    ops: HashMap<u64, Op>,
}

/// An engine: a backend, the eventfd it signals, the armed waits. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    kind: WaitBackend,
    /// Whether [`Engine::take`] and [`Engine::cancel`] collect outcomes too (the shared
    /// engine, whose every wait has a waker to wake). A wait set's engine collects only when
    /// the set does, at the start of a pass over its waits: collecting in the middle of one
    /// could take the signal of a wait the pass had already looked at, leaving its outcome
    /// unseen and the eventfd silent.
    eager: bool,
    eventfd: Arc<OwnedFd>,
    sleeper: Box<dyn Sleeper>,
    table: Mutex<Table>,
    /// Reaps so far ([`Engine::reaps`]).
    reaps: std::sync::atomic::AtomicU64,
}

impl Engine {
    /// An engine with `kind`, or the probed or environment's choice.
    pub fn new(kind: Option<WaitBackend>, eager: bool) -> io::Result<Engine> {
        let kind = kind.unwrap_or_else(WaitBackend::chosen);
        let eventfd = Arc::new(sys::eventfd()?);
        let sleeper: Box<dyn Sleeper> = match kind {
            WaitBackend::IoUring => Box::new(uring::Ring::new(&eventfd)?),
            WaitBackend::FutexWaitv => Box::new(threads::Threads::new(&eventfd, true)),
            WaitBackend::Thread => Box::new(threads::Threads::new(&eventfd, false)),
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                kind,
                eager,
                eventfd,
                sleeper,
                table: Mutex::new(Table::default()),
                reaps: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Its backend.
    pub fn kind(&self) -> WaitBackend {
        self.inner.kind
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms a wait on `watch` holding `registered` (`None`: a polling wait); `waker` is woken
    /// at its outcome. With `defer`, its sleep may start only at the next
    /// [`flush`](Self::flush): for a caller that arms many waits in one pass.
    pub fn arm(
        &self,
        watch: Watch,
        registered: Option<Registered>,
        waker: Option<Waker>,
        defer: bool,
    ) -> io::Result<u64> {
        let watch = Arc::new(watch);
        let mut t = self.table();
        let id = t.next;
        t.next += 1;
        t.ops.insert(
            id,
            Op {
                _registered: registered,
                _watch: Arc::clone(&watch),
                outcome: None,
                waker,
                cancelled: false,
            },
        );
        drop(t);
        if let Err(e) = self.inner.sleeper.arm(id, watch, defer) {
            self.table().ops.remove(&id);
            return Err(e);
        }
        Ok(id)
    }

    /// The outcome of wait `id` if it has one (the wait is then over and forgotten); else
    /// keeps `waker` (if any) for it. A wait the table does not hold (none can be missing:
    /// only this and [`cancel`](Self::cancel) remove one) counts as woken.
    pub fn take(&self, id: u64, waker: Option<&Waker>) -> Poll<Outcome> {
        // Only when there is something to reap: the engine's thread reaps at every signal
        // anyway, and a reap costs system calls (a future polled at its wake-up would pay
        // them for nothing).
        if self.inner.eager && self.inner.sleeper.has_outcomes() {
            self.reap();
        }
        self.take_reaped(id, waker)
    }

    /// [`take`](Self::take) without reaping first: for a caller that has just reaped, and
    /// takes the outcomes of many waits (one reap for all, not one each).
    pub fn take_reaped(&self, id: u64, waker: Option<&Waker>) -> Poll<Outcome> {
        let mut t = self.table();
        let Some(op) = t.ops.get_mut(&id) else {
            return Poll::Ready(Outcome::Woken);
        };
        if let Some(o) = op.outcome {
            t.ops.remove(&id);
            return Poll::Ready(o);
        }
        if let Some(w) = waker {
            if !op.waker.as_ref().is_some_and(|k| k.will_wake(w)) {
                op.waker = Some(w.clone());
            }
        }
        Poll::Pending
    }

    /// Starts the sleeps of the waits armed with `defer` since the last flush.
    pub fn flush(&self) -> io::Result<()> {
        self.inner.sleeper.flush()
    }

    /// Gives up wait `id`: forgotten now if it has ended, else cancelled (forgotten when its
    /// final outcome arrives).
    pub fn cancel(&self, id: u64) {
        let mut t = self.table();
        let Some(op) = t.ops.get_mut(&id) else { return };
        if op.outcome.is_some() {
            t.ops.remove(&id);
            return;
        }
        op.cancelled = true;
        op.waker = None;
        drop(t);
        self.inner.sleeper.cancel(id);
        if self.inner.eager && self.inner.sleeper.has_outcomes() {
            // The outcome may have come meanwhile.
            self.reap();
        }
    }

    /// Collects the backend's outcomes: records each (or forgets a cancelled wait) and wakes
    /// its waker. Returns the ids of waits that ended (not cancelled ones).
    pub fn reap(&self) -> Vec<u64> {
        self.inner.reaps.fetch_add(1, Ordering::Relaxed);
        sys::eventfd_drain(self.inner.eventfd.as_fd());
        let mut out = Vec::new();
        self.inner.sleeper.reap(&mut out);
        if out.is_empty() {
            return Vec::new();
        }
        let mut wake = Vec::new();
        let mut ended = Vec::new();
        let mut t = self.table();
        for (id, outcome) in out {
            let Some(op) = t.ops.get_mut(&id) else {
                continue;
            };
            if op.cancelled {
                t.ops.remove(&id);
            } else {
                op.outcome = Some(outcome);
                wake.extend(op.waker.take());
                ended.push(id);
            }
        }
        drop(t);
        wake.into_iter().for_each(Waker::wake);
        ended
    }

    /// Times [`reap`](Self::reap) ran (two system calls or more each), for a test hook.
    pub fn reaps(&self) -> u64 {
        self.inner.reaps.load(Ordering::Relaxed)
    }

    /// System calls the backend made to start sleeps, for a test hook.
    pub fn arm_syscalls(&self) -> u64 {
        self.inner.sleeper.arm_syscalls()
    }

    /// Threads the backend runs now.
    pub fn threads(&self) -> usize {
        self.inner.sleeper.threads()
    }

    /// Blocks until the eventfd is readable or `timeout` passes.
    pub fn block(&self, timeout: Option<Duration>) {
        sys::poll_readable(&[self.inner.eventfd.as_raw_fd()], timeout);
    }

    /// The eventfd the backend signals.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.eventfd.as_fd()
    }
}

/// The process's shared engine, for the futures of the handles (`changed`, streams), and the
/// one thread that drives it: it sleeps in `poll` on the engine's eventfd (and on the
/// descriptors [`watch_fd`] was given) and wakes the futures whose waits ended. Made at the
/// first asynchronous wait of the process.
pub(crate) fn shared() -> io::Result<&'static Engine> {
    Ok(&driver()?.engine)
}

/// The shared engine and what its thread watches besides.
struct Driver {
    engine: Engine,
    /// Signalled when `watched` grows.
    control: OwnedFd,
    /// Descriptors to watch once for readability, and the wakers to wake then.
    watched: Mutex<Vec<(std::os::fd::RawFd, Waker)>>,
}

fn driver() -> io::Result<&'static Driver> {
    static DRIVER: std::sync::OnceLock<Result<Driver, i32>> = std::sync::OnceLock::new();
    let made = DRIVER.get_or_init(|| {
        let code = |e: io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        Ok(Driver {
            engine: Engine::new(None, true).map_err(code)?,
            control: sys::eventfd().map_err(code)?,
            watched: Mutex::new(Vec::new()),
        })
    });
    let d = made
        .as_ref()
        .map_err(|&e| io::Error::from_raw_os_error(e))?;
    static STARTED: std::sync::OnceLock<Result<(), i32>> = std::sync::OnceLock::new();
    STARTED
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("shm-wait".into())
                .spawn(move || drive(d))
                .map(drop)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EAGAIN))
        })
        .map_err(io::Error::from_raw_os_error)?;
    Ok(d)
}

/// The shared engine's thread.
fn drive(d: &Driver) -> ! {
    loop {
        let mut fds = vec![d.engine.inner.eventfd.as_raw_fd(), d.control.as_raw_fd()];
        let watched: Vec<(std::os::fd::RawFd, Waker)> =
            core::mem::take(&mut *d.watched.lock().unwrap_or_else(|p| p.into_inner()));
        fds.extend(watched.iter().map(|w| w.0));
        let readable = sys::poll_readable(&fds, None);
        sys::eventfd_drain(d.control.as_fd());
        let mut keep = Vec::new();
        for (i, (fd, waker)) in watched.into_iter().enumerate() {
            if readable.contains(&(i + 2)) {
                waker.wake();
            } else {
                keep.push((fd, waker));
            }
        }
        d.watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keep);
        d.engine.reap();
    }
}

/// Wakes `waker` once `fd` turns readable (or is closed), from the shared engine's thread:
/// for a task awaiting a [`WaitSet`](crate::WaitSet) without a runtime's reactor.
pub(crate) fn watch_fd(fd: BorrowedFd<'_>, waker: &Waker) -> io::Result<()> {
    let d = driver()?;
    d.watched
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((fd.as_raw_fd(), waker.clone()));
    sys::eventfd_signal(d.control.as_fd());
    Ok(())
}
