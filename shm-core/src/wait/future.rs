//! The futures of the handles: [`Changed`] (a state reader's `changed`), and [`AsyncWait`],
//! the waiting half of the stream and queue futures. All of them arm their waits on the
//! process's shared engine, driven by its one thread (see `engine::shared`).

use super::armed::{Armed, Target, Writer, WriterWatch};
use super::engine::Outcome;
use crate::error::{Error, Result};
use crate::raw_reader::RawReader;
use crate::segment::Segment;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use std::task::{Context, Poll};

/// A wait for a condition on a segment's words: at most one armed wait, the writer's watch,
/// and the writer epochs whose end was reported. Dropping it cancels its armed wait.
#[derive(Default)]
pub(crate) struct AsyncWait {
    armed: Option<Armed>,
    writer: WriterWatch,
    /// The armed wait ended because the watched writer's process did.
    died: bool,
    /// The epoch of the writer whose end was reported last (reported once each: a stream
    /// goes on when a new writer takes over).
    reported: Option<u64>,
    /// The epoch of the writer this wait last saw alive.
    alive: Option<u64>,
}

impl AsyncWait {
    /// Polls until `ready` may hold: `Ready(Ok(()))` when it should be checked again (it held
    /// at the re-check, or the armed wait ended); `Ready(Err(WriterDied))` when the writer is
    /// gone (if `once`: a writer this wait saw alive, once; else whenever none is alive);
    /// `Pending` while a wait is armed.
    /// `ready(registered)` loads as [`load_for_wait`](super::load_for_wait) says.
    pub fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
        seg: &Segment,
        once: bool,
        ready: impl FnMut(bool) -> bool,
    ) -> Poll<Result<()>> {
        self.poll_wait_on(cx, seg, Target::header(seg), Some(once), ready)
    }

    /// [`poll_wait`](Self::poll_wait) on the words `target` names; the writer is watched
    /// (reported as `poll_wait` says for `once`) only if `writer` is `Some(once)`.
    pub fn poll_wait_on(
        &mut self,
        cx: &mut Context<'_>,
        seg: &Segment,
        target: Target,
        writer: Option<bool>,
        mut ready: impl FnMut(bool) -> bool,
    ) -> Poll<Result<()>> {
        if let Some(armed) = &mut self.armed {
            match armed.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Outcome::WriterDied)) => {
                    self.died = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Some(Outcome::Woken)) => return Poll::Ready(Ok(())),
                Poll::Ready(None) => {}
            }
        }
        if ready(false) {
            return Poll::Ready(Ok(()));
        }
        let died = core::mem::take(&mut self.died);
        let pidfd = match writer {
            None => None,
            Some(once) => {
                let epoch = seg.header().writer_epoch.load(Ordering::Acquire);
                let reported = once && self.reported == Some(epoch);
                // One look at the lease (a system call) tells both whether the writer is gone
                // and, after its pidfd fired, whether another process holds the lease.
                let mut now = self.writer.check(seg);
                if died && !matches!(now, Writer::Dead) {
                    // Another process holds the lease (it inherited it, or the pid was
                    // another's): stop watching that pidfd.
                    self.writer.unwatch();
                    now = self.writer.check(seg);
                }
                match now {
                    // With `once`, only a writer this wait saw alive is reported (a reader may
                    // start before its writer does), and only once.
                    Writer::Dead if !once || (self.alive == Some(epoch) && !reported) => {
                        self.reported = Some(epoch);
                        return Poll::Ready(Err(Error::WriterDied));
                    }
                    Writer::Dead => None,
                    Writer::Watched(fd) => {
                        self.alive = Some(epoch);
                        (!reported).then_some(fd)
                    }
                    Writer::Unwatched => {
                        self.alive = Some(epoch);
                        None
                    }
                }
            }
        };
        let armed = match &mut self.armed {
            Some(a) => a,
            None => self
                .armed
                .insert(Armed::shared().map_err(Error::io("starting", "the shared wait engine"))?),
        };
        let armed_now = armed
            .arm(&target, pidfd, Some(cx.waker().clone()), ready)
            .map_err(Error::io("arming a wait on", seg.name()))?;
        if !armed_now {
            return Poll::Ready(Ok(()));
        }
        // The wait may have ended already; this also keeps the waker.
        match armed.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Outcome::WriterDied)) => {
                self.died = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }
}

/// The future of [`RawReader::changed`] and [`Reader::changed`](crate::Reader::changed): the
/// next version after `since`.
#[must_use = "futures do nothing unless awaited"]
pub struct Changed<'a> {
    reader: &'a RawReader,
    since: u64,
    wait: AsyncWait,
}

impl<'a> Changed<'a> {
    pub(crate) fn new(reader: &'a RawReader, since: u64) -> Changed<'a> {
        Changed {
            reader,
            since,
            wait: AsyncWait::default(),
        }
    }
}

impl Future for Changed<'_> {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let this = self.get_mut();
        let seg = this.reader.segment();
        let since = this.since;
        let published = &seg.header().published;
        let check = |registered: bool| -> Option<Result<u64>> {
            let v = super::load_for_wait(published, registered);
            match seg.check_intact() {
                Err(e) => Some(Err(e)),
                Ok(()) => (v > since).then_some(Ok(v)),
            }
        };
        // Bounded: each turn either returns or saw an armed wait end.
        for _ in 0..1_000_000 {
            if let Some(done) = check(false) {
                return Poll::Ready(done);
            }
            match this.wait.poll_wait(cx, seg, false, |r| check(r).is_some()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl core::fmt::Debug for Changed<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Changed")
            .field("since", &self.since)
            .finish()
    }
}
