//! [`StreamReader`]: one reader of a broadcast stream, with its own position, and its
//! iterators.

use crate::error::{Error, Result};
use crate::info::SegmentInfo;
use crate::payload;
use crate::protocol::stream;
use crate::raw_reader::RawReader;
use crate::wait::{self, wait_until, AsyncWait, Deadline, Pace};
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use std::time::Duration;

/// Where a new reader starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Start {
    /// With the next message sent after subscribing.
    Newest,
    /// With the oldest message the stream still holds.
    Oldest,
}

/// Receives every message of a broadcast stream, in order, from the position it subscribed at.
///
/// Each reader keeps its own position in its own memory and never writes the stream's shared
/// memory (except, while it blocks in [`recv`](Self::recv), the waiter count of the futex it
/// sleeps on; a reader that could map the stream only read-only polls instead). So readers
/// cannot disturb the writer or each other, and any number can read at once.
///
/// A reader that falls behind by more than the stream's capacity loses the messages the
/// writer overwrote: the next receive returns [`Error::Lagged`] with their exact number, once,
/// and the one after continues with the oldest message still available. Messages are never
/// torn, duplicated or reordered.
///
/// ```no_run
/// use shm_core::{Error, SharedState};
/// # #[derive(SharedState, Clone, Copy, Debug)] #[repr(C)] struct Fill { price: f64, qty: u64 }
/// let mut rx = Fill::subscribe("/fills")?;
/// loop {
///     match rx.recv() {
///         Ok(fill) => println!("{fill:?}"),
///         Err(Error::Lagged { missed }) => eprintln!("lost {missed} fills"),
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct StreamReader<T: SharedState> {
    raw: RawReader,
    cursor: Cursor,
    /// A message received right after a gap, returned after the gap is reported.
    pending: Option<T>,
    /// The wait of the [`Stream`](futures_core::Stream) implementation, kept between polls.
    stream_wait: AsyncWait,
    _type: PhantomData<fn() -> T>,
}

/// A broadcast reader's place in a stream: the next message it wants, and a gap it has not
/// reported yet. Shared by the typed and the untyped reader.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    /// The number of the next message this reader wants.
    pub next: u64,
    /// Messages lost in a gap not reported yet.
    unreported: u64,
}

impl Cursor {
    /// Where a reader of the segment `raw` opened starts.
    pub fn new(raw: &RawReader, start: Start) -> Cursor {
        let published = raw.version();
        let capacity = raw.segment().geometry().slot_count as u64;
        let next = match start {
            Start::Newest => published + 1,
            Start::Oldest => published.saturating_sub(capacity - 1).max(1),
        };
        Cursor {
            next,
            unreported: 0,
        }
    }

    /// Moves past message `number`, just received; returns how many messages before it were
    /// lost (overwritten before this reader got to them).
    pub fn advance(&mut self, number: u64) -> u64 {
        let missed = number - self.next;
        self.next = number + 1;
        missed
    }

    /// A gap to report now, if one is left over.
    pub fn take_unreported(&mut self) -> Option<u64> {
        Some(core::mem::take(&mut self.unreported)).filter(|&n| n > 0)
    }

    /// What [`wait`](Self::wait) waits for, as one target of a wait on several segments;
    /// `None` for a read-only mapping, which cannot count itself as a waiter.
    pub fn any_target<'a>(&self, raw: &'a RawReader) -> Option<wait::AnyTarget<'a>> {
        let seg = raw.segment();
        let h = seg.header();
        seg.is_writable().then_some(wait::AnyTarget {
            futex: &h.futex,
            waiters: &h.waiters,
            counter: &h.published,
            at_least: self.next,
        })
    }

    /// Waits until the message this reader wants is published, or `deadline` (`false`).
    pub fn wait(&self, raw: &RawReader, deadline: Deadline) -> bool {
        let h = raw.segment().header();
        let next = self.next;
        wait_until(
            &h.futex,
            &h.waiters,
            raw.segment().is_writable(),
            deadline,
            Pace::Stream,
            |registered| wait::load_for_wait(&h.published, registered) >= next,
        )
    }
}

impl<T: SharedState> StreamReader<T> {
    /// A reader of the stream segment `raw` opened, starting at `start`.
    pub(crate) fn from_raw(raw: RawReader, start: Start) -> Self {
        StreamReader {
            cursor: Cursor::new(&raw, start),
            raw,
            pending: None,
            stream_wait: AsyncWait::default(),
            _type: PhantomData,
        }
    }

    /// How the stream's stored layout relates to `T`: [`Compat::Exact`](crate::Compat::Exact),
    /// or another version of an appendable `T`, whose messages are read as far as `T` goes,
    /// the fields `T` has beyond them zero.
    pub fn compat(&self) -> crate::Compat {
        self.raw.segment().compat()
    }

    /// Receives the next message asynchronously; `Err(Error::Lagged)` as
    /// [`try_recv`](Self::try_recv), and `Err(Error::WriterDied)` when the writer's process
    /// ends while it waits (the next call waits on, for a writer that takes over; a stream
    /// without a writer is simply waited on).
    ///
    /// Cancellation-safe: a message is taken only when the future returns it, so dropping
    /// the future loses nothing; its armed wait is cancelled. The wait runs on the process's
    /// shared wait engine (see [`RawReader::changed`]).
    pub async fn recv_async(&mut self) -> Result<T> {
        let mut wait = AsyncWait::default();
        std::future::poll_fn(|cx| self.poll_recv_with(cx, &mut wait)).await
    }

    /// One poll of a receive that waits with `wait`.
    fn poll_recv_with(
        &mut self,
        cx: &mut std::task::Context<'_>,
        wait: &mut AsyncWait,
    ) -> std::task::Poll<Result<T>> {
        use std::task::Poll;
        // Bounded: each turn either returns or saw an armed wait end.
        for _ in 0..1_000_000 {
            if let Some(v) = self.try_recv().transpose() {
                return Poll::Ready(v);
            }
            let next = self.cursor.next;
            let published = &self.raw.segment().header().published;
            match wait.poll_wait(cx, self.raw.segment(), true, |registered| {
                wait::load_for_wait(published, registered) >= next
            }) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Receives the next message if one was sent, without waiting: `Ok(None)` if none, or
    /// `Err(Error::Lagged { missed })` once if this reader fell behind and the writer
    /// overwrote `missed` messages it had not received (the next call returns the oldest
    /// message still available).
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        if let Some(missed) = self.cursor.take_unreported() {
            return Err(Error::Lagged { missed });
        }
        if let Some(v) = self.pending.take() {
            return Ok(Some(v));
        }
        let mut out = MaybeUninit::uninit();
        let seg = self.raw.segment();
        let (words, sink) = payload::sink_for(&mut out, seg.geometry().payload_size);
        let Some(number) = stream::receive(seg, self.cursor.next, words, sink) else {
            return Ok(None);
        };
        // SAFETY: `receive` returned a number: one consistent copy of that message wrote every
        // byte of `out`; every bit pattern is a valid `T` (`T: SharedState`).
        let value = unsafe { out.assume_init() };
        let missed = self.cursor.advance(number);
        if missed > 0 {
            self.pending = Some(value);
            return Err(Error::Lagged { missed });
        }
        Ok(Some(value))
    }

    /// Receives the next message, waiting for it as long as it takes; `Err(Error::Lagged)` as
    /// [`try_recv`](Self::try_recv).
    ///
    /// Sleeps on the stream's futex; the writer pays for a syscall only while somebody sleeps.
    /// A writer that dies does not end the wait: a new writer may take over.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::never())
    }

    /// Receives the next message, waiting at most `timeout` for it ([`Error::Timeout`]);
    /// `Err(Error::Lagged)` as [`try_recv`](Self::try_recv).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout))
    }

    fn recv_until(&mut self, deadline: Deadline) -> Result<T> {
        super::receive_until(self, deadline, Self::try_recv, |r, d| {
            r.cursor.wait(&r.raw, d)
        })
    }

    /// Waits until the message this reader wants next is published, or `deadline` (`false`):
    /// for readers of several streams, which wait on one at a time.
    pub(crate) fn wait_until(&self, deadline: Deadline) -> bool {
        self.pending.is_some() || self.cursor.wait(&self.raw, deadline)
    }

    /// The target of a wait on several streams (see `wait::wait_any`), one that holds at once
    /// when a message is pending; `None` for a read-only mapping.
    pub(crate) fn any_target(&self) -> Option<wait::AnyTarget<'_>> {
        let mut target = self.cursor.any_target(&self.raw)?;
        if self.pending.is_some() {
            // Nothing to wait for: a target that holds already.
            target.at_least = 0;
        }
        Some(target)
    }

    /// Receives as many messages as are available, up to `buf.len()`, into `buf` without
    /// waiting, and returns how many (0 if none). `Err(Error::Lagged)` when the first message
    /// comes after a gap; a gap met after some messages ends the batch and is reported by the
    /// next call.
    pub fn recv_batch(&mut self, buf: &mut [T]) -> Result<usize> {
        for (i, slot) in buf.iter_mut().enumerate() {
            match self.try_recv() {
                Ok(Some(v)) => *slot = v,
                Ok(None) => return Ok(i),
                Err(Error::Lagged { missed }) if i > 0 => {
                    self.cursor.unreported = missed;
                    return Ok(i);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(buf.len())
    }

    /// An iterator that receives messages, waiting for each ([`recv`](Self::recv)); it never
    /// ends, and yields `Err(Error::Lagged)` for gaps.
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter { reader: self }
    }

    /// An iterator over the messages available now ([`try_recv`](Self::try_recv)); it ends
    /// when there are none, and yields `Err(Error::Lagged)` for gaps.
    pub fn try_iter(&mut self) -> TryIter<'_, T> {
        TryIter { reader: self }
    }

    /// The number of the next message this reader receives (messages are numbered from 1).
    pub fn position(&self) -> u64 {
        self.cursor.next - u64::from(self.pending.is_some())
    }

    /// The number of messages sent to the stream so far, by all its writers.
    pub fn sent(&self) -> u64 {
        self.raw.version()
    }

    /// What the stream is (its capacity in messages is `info().slots()`) and who writes it;
    /// see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.raw.info()
    }

    /// The untyped reader underneath, for the crate's test hooks.
    pub(crate) fn raw(&self) -> &RawReader {
        &self.raw
    }
}

/// Receives messages, waiting for each; see [`StreamReader::iter`].
pub struct Iter<'a, T: SharedState> {
    reader: &'a mut StreamReader<T>,
}

impl<T: SharedState> Iterator for Iter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        Some(self.reader.recv())
    }
}

/// Receives the messages available now; see [`StreamReader::try_iter`].
pub struct TryIter<'a, T: SharedState> {
    reader: &'a mut StreamReader<T>,
}

impl<T: SharedState> Iterator for TryIter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.reader.try_recv().transpose()
    }
}

// Nothing in a reader is pinned: its `Stream` implementation moves no field it relies on.
impl<T: SharedState> Unpin for StreamReader<T> {}

/// The messages, in order, as [`recv_async`](StreamReader::recv_async) receives them; never
/// ends. Between polls the reader keeps its armed wait (counted in the stream's waiter count)
/// until a message comes or the reader is dropped.
impl<T: SharedState> futures_core::Stream for StreamReader<T> {
    type Item = Result<T>;

    fn poll_next(
        self: core::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T>>> {
        let this = self.get_mut();
        let mut wait = core::mem::take(&mut this.stream_wait);
        let polled = this.poll_recv_with(cx, &mut wait).map(Some);
        this.stream_wait = wait;
        polled
    }
}

impl<T: SharedState> core::fmt::Debug for StreamReader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamReader")
            .field("name", &self.raw.segment().name())
            .field("capacity", &self.raw.segment().geometry().slot_count)
            .field("position", &self.position())
            .field("sent", &self.sent())
            .finish()
    }
}
