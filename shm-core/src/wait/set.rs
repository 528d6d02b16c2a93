//! [`WaitSet`]: many segments, one file descriptor.
// The sealed trait's methods name crate types; nobody outside can call or implement them.
#![allow(private_interfaces)]

use super::armed::{Armed, Target, Writer, WriterWatch};
use super::engine::{Engine, Outcome, WaitBackend};
use super::Deadline;
use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::stream::{QueueConsumer, RawStreamReader, StreamReader};
use crate::{protocol, RawReader, Reader, SharedState};
use core::sync::atomic::AtomicU64;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A handle attached to a [`WaitSet`], named by [`WaitSet::attach`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u64);

/// A handle a [`WaitSet`] can wait on: the state readers ([`Reader`], [`RawReader`]), the
/// stream readers ([`StreamReader`], [`RawStreamReader`]) and the queue consumer
/// ([`QueueConsumer`]). Sealed.
pub trait Waitable: sealed::Sealed {}

mod sealed {
    use super::Segment;

    /// The segment, and the published number the handle has seen (it is ready beyond it).
    pub trait Sealed {
        fn wait_segment(&self) -> &Segment;
        fn seen(&self) -> u64;
    }
}

impl sealed::Sealed for RawReader {
    fn wait_segment(&self) -> &Segment {
        self.segment()
    }
    fn seen(&self) -> u64 {
        self.version()
    }
}
impl Waitable for RawReader {}

impl<T: SharedState> sealed::Sealed for Reader<T> {
    fn wait_segment(&self) -> &Segment {
        self.raw().segment()
    }
    fn seen(&self) -> u64 {
        self.version()
    }
}
impl<T: SharedState> Waitable for Reader<T> {}

impl<T: SharedState> sealed::Sealed for StreamReader<T> {
    fn wait_segment(&self) -> &Segment {
        self.raw().segment()
    }
    fn seen(&self) -> u64 {
        self.position() - 1
    }
}
impl<T: SharedState> Waitable for StreamReader<T> {}

impl sealed::Sealed for RawStreamReader {
    fn wait_segment(&self) -> &Segment {
        self.raw_reader().segment()
    }
    fn seen(&self) -> u64 {
        self.position() - 1
    }
}
impl Waitable for RawStreamReader {}

impl<T: SharedState> sealed::Sealed for QueueConsumer<T> {
    fn wait_segment(&self) -> &Segment {
        self.segment()
    }
    fn seen(&self) -> u64 {
        self.taken()
    }
}
impl<T: SharedState> Waitable for QueueConsumer<T> {}

/// One attached handle.
struct Entry {
    target: Target,
    /// The last `published` reported (the handle is ready beyond it).
    seen: u64,
    /// The writer at attach time, watched until its process ends.
    pidfd: Option<Arc<OwnedFd>>,
    armed: Armed,
}

impl Entry {
    fn published(&self) -> &AtomicU64 {
        self.target
            .pin
            .u64_at(core::mem::offset_of!(crate::format::Header, published))
    }
}

/// Waits on many segments at once through one file descriptor, without a thread per segment.
///
/// Attach readers of any kind ([`attach`](Self::attach)): a state reader is ready when a
/// version newer than the last one reported was published, a stream reader or queue consumer
/// when a message beyond the last one reported was sent, and any of them when its writer's
/// process (the one writing when it was attached) ends. Then either block
/// ([`wait`](Self::wait)), await ([`next`](Self::next)), or, from a foreign event loop, poll
/// the descriptor ([`AsFd`]) for readability and call [`ready`](Self::ready), which also arms
/// the waits that make the descriptor readable again (call it once before the first poll).
///
/// Waiting is the segment's ordinary futex waiting, done by the kernel for the whole set: an
/// io_uring futex wait per segment where the kernel has them (Linux 6.7+), else helper
/// threads blocked in `futex_waitv` (one per 127 segments), else a thread per waiting
/// segment ([`WaitBackend`]). A segment is counted in its waiter count only while its wait is
/// armed; writers wake it as they wake any blocked reader.
///
/// ```no_run
/// # use shm_core::SharedState;
/// let pose = u64::open("/pose")?;
/// let mut fills = u64::subscribe("/fills")?;
/// let mut set = shm_core::WaitSet::new()?;
/// let (kp, kf) = (set.attach(&pose)?, set.attach(&fills)?);
/// loop {
///     for key in set.wait(std::time::Duration::MAX)? {
///         if key == kp { println!("pose {}", pose.read()); }
///         if key == kf { while let Some(f) = fills.try_recv()? { println!("fill {f}"); } }
///     }
/// }
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct WaitSet {
    engine: Engine,
    entries: BTreeMap<u64, Entry>,
    next: u64,
    #[cfg(feature = "tokio")]
    tokio_fd: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    #[cfg(feature = "async-io")]
    async_io_fd: Option<async_io::Async<OwnedFd>>,
}

impl WaitSet {
    /// A set on the best backend the kernel offers (or the one `SHM_WAIT_BACKEND` names:
    /// `io_uring`, `futex_waitv` or `thread`).
    pub fn new() -> Result<WaitSet> {
        WaitSet::make(None)
    }

    /// A set on `backend`, whatever the kernel offers (io_uring fails to start where the
    /// kernel lacks it).
    pub fn with_backend(backend: WaitBackend) -> Result<WaitSet> {
        WaitSet::make(Some(backend))
    }

    fn make(backend: Option<WaitBackend>) -> Result<WaitSet> {
        let engine = Engine::new(backend, false).map_err(Error::io("starting", "a wait set"))?;
        Ok(WaitSet {
            engine,
            entries: BTreeMap::new(),
            next: 0,
            #[cfg(feature = "tokio")]
            tokio_fd: None,
            #[cfg(feature = "async-io")]
            async_io_fd: None,
        })
    }

    /// The backend this set waits with.
    pub fn backend(&self) -> WaitBackend {
        self.engine.kind()
    }

    /// Attaches `handle`: from now on the set reports it when it has something new beyond
    /// what it has now (a stream reader with messages it has not received yet is ready at
    /// once). The set keeps the segment mapped, not the handle.
    pub fn attach(&mut self, handle: &impl Waitable) -> Result<Key> {
        let seg = handle.wait_segment();
        let pidfd = match WriterWatch::default().check(seg) {
            Writer::Watched(fd) => Some(fd),
            Writer::Unwatched | Writer::Dead => None,
        };
        let key = self.next;
        self.next += 1;
        self.entries.insert(
            key,
            Entry {
                target: Target::header(seg),
                seen: handle.seen(),
                pidfd,
                armed: Armed::new(self.engine.clone()),
            },
        );
        Ok(Key(key))
    }

    /// Detaches `key` (its armed wait is cancelled); `false` if it was not attached.
    pub fn detach(&mut self, key: Key) -> bool {
        self.entries.remove(&key.0).is_some()
    }

    /// Handles attached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no handle is attached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The attached handles that are ready now, without blocking; arms a wait for each of the
    /// others, so that the descriptor ([`AsFd`]) turns readable when one of them is. Each is
    /// reported once per change: the set remembers the published number it reported. When it
    /// reports any, the descriptor is left readable: the next call arms their waits.
    pub fn ready(&mut self) -> Result<Vec<Key>> {
        self.collect(None)
    }

    fn collect(&mut self, cx: Option<&Context<'_>>) -> Result<Vec<Key>> {
        // One reap for the whole set: an outcome that arrives after it signals the descriptor
        // again, and the next call takes it.
        self.engine.reap();
        let waker = cx.map(|c| c.waker());
        // The waits armed in this pass start sleeping together, at the flush below (one
        // system call for all of them, not one each).
        let pass = self.arm_pass(waker);
        let flushed = self.engine.flush();
        let ready = pass?;
        flushed.map_err(Error::io("arming waits for", "a wait set"))?;
        if !ready.is_empty() {
            // A reported handle has no armed wait until the next call arms it: the descriptor
            // stays readable, so that a loop that polls it before calling again is not left
            // waiting on a handle nothing watches.
            crate::sys::eventfd_signal(self.engine.fd());
        }
        Ok(ready)
    }

    /// The pass of [`collect`](Self::collect) over the entries: the ready keys; arms (deferred)
    /// a wait for each of the others.
    fn arm_pass(&mut self, waker: Option<&std::task::Waker>) -> Result<Vec<Key>> {
        let mut ready = Vec::new();
        for (&key, e) in &mut self.entries {
            match e.armed.poll_reaped(waker) {
                Poll::Pending => continue,
                Poll::Ready(Some(Outcome::WriterDied)) => {
                    e.pidfd = None;
                    e.seen = protocol::load_acquire(e.published());
                    ready.push(Key(key));
                    continue;
                }
                Poll::Ready(_) => {}
            }
            let seen = e.seen;
            let published = protocol::load_acquire(e.published());
            let fresh = published > seen || {
                let pin = e.target.pin.clone();
                let word = pin.u64_at(core::mem::offset_of!(crate::format::Header, published));
                !e.armed
                    .arm_deferred(
                        &e.target,
                        e.pidfd.clone(),
                        waker.cloned(),
                        |registered| super::load_for_wait(word, registered) > seen,
                        true,
                    )
                    .map_err(Error::io("arming a wait for", "a wait set"))?
            };
            if fresh {
                e.seen = protocol::load_acquire(e.published());
                ready.push(Key(key));
            }
        }
        Ok(ready)
    }

    /// Blocks until at least one attached handle is ready, and returns those that are, or
    /// until `timeout` passes ([`Error::Timeout`]; `Duration::MAX` waits forever).
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Key>> {
        let deadline = Deadline::after(timeout);
        loop {
            let ready = self.ready()?;
            if !ready.is_empty() {
                return Ok(ready);
            }
            let Some(left) = deadline.next_slice(Duration::from_secs(3600)) else {
                return Err(Error::Timeout);
            };
            self.engine.block(Some(left));
        }
    }

    /// Waits asynchronously until at least one attached handle is ready, and returns those
    /// that are.
    ///
    /// Driven by the runtime's reactor when one is available: tokio's (`AsyncFd`) with the
    /// feature `tokio` inside a tokio runtime, else async-io's with the feature `async-io`;
    /// otherwise by the process's one waiting thread (the one that drives every
    /// `changed` and stream future), which wakes the task.
    pub async fn next(&mut self) -> Result<Vec<Key>> {
        std::future::poll_fn(|cx| self.poll_next_ready(cx)).await
    }

    /// The polling form of [`next`](Self::next), for hand-written futures: `Ready` with the
    /// ready keys, or `Pending` with `cx`'s waker kept for the moment one turns ready.
    // Without a reactor feature the loop body returns on its first pass.
    #[cfg_attr(
        not(any(feature = "tokio", feature = "async-io")),
        allow(clippy::never_loop)
    )]
    pub fn poll_next_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<Vec<Key>>> {
        loop {
            #[cfg(feature = "tokio")]
            if tokio::runtime::Handle::try_current().is_ok() {
                if self.tokio_fd.is_none() {
                    let fd = self.dup()?;
                    // SAFETY: `fd` is an open descriptor the `OwnedFd` owns, moved into the
                    // `AsyncFd`, which keeps it open and returns that same descriptor until it
                    // is dropped.
                    let afd = unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(
                            fd,
                            tokio::io::Interest::READABLE,
                        )
                    }
                    .map_err(|e| Error::io("registering", "a wait set")(e.into_parts().1))?;
                    self.tokio_fd = Some(afd);
                }
                let ready = self.ready()?;
                if !ready.is_empty() {
                    return Poll::Ready(Ok(ready));
                }
                let afd = self.tokio_fd.as_ref().expect("registered above");
                match afd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        guard.clear_ready();
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(Error::io("polling", "a wait set")(e)))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            #[cfg(feature = "async-io")]
            {
                if self.async_io_fd.is_none() {
                    let fd = self.dup()?;
                    self.async_io_fd = Some(
                        async_io::Async::new(fd).map_err(Error::io("registering", "a wait set"))?,
                    );
                }
                let ready = self.ready()?;
                if !ready.is_empty() {
                    return Poll::Ready(Ok(ready));
                }
                let afd = self.async_io_fd.as_ref().expect("registered above");
                match afd.poll_readable(cx) {
                    Poll::Ready(Ok(())) => {
                        crate::sys::eventfd_drain(self.engine.fd());
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(Error::io("polling", "a wait set")(e)))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            #[allow(unreachable_code)]
            {
                let ready = self.collect(Some(cx))?;
                if !ready.is_empty() {
                    return Poll::Ready(Ok(ready));
                }
                super::engine::watch_fd(self.engine.fd(), cx.waker())
                    .map_err(Error::io("polling", "a wait set"))?;
                // The descriptor may have turned readable before the watch began.
                let ready = self.collect(Some(cx))?;
                return if ready.is_empty() {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(ready))
                };
            }
        }
    }

    #[cfg(any(feature = "tokio", feature = "async-io"))]
    fn dup(&self) -> Result<OwnedFd> {
        self.engine
            .fd()
            .try_clone_to_owned()
            .map_err(Error::io("duplicating", "a wait set's descriptor"))
    }

    /// Threads the set's backend runs now (none with io_uring).
    pub fn threads(&self) -> usize {
        self.engine.threads()
    }

    /// Times the set collected its backend's outcomes (for a test hook).
    pub(crate) fn reaps(&self) -> u64 {
        self.engine.reaps()
    }

    /// System calls its backend made to start sleeps (for a test hook).
    pub(crate) fn arm_syscalls(&self) -> u64 {
        self.engine.arm_syscalls()
    }
}

impl AsFd for WaitSet {
    /// The eventfd the backend signals when an armed wait ends: readable means "call
    /// [`ready`](WaitSet::ready)".
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.engine.fd()
    }
}

impl core::fmt::Debug for WaitSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitSet")
            .field("backend", &self.backend())
            .field("attached", &self.entries.len())
            .finish()
    }
}
