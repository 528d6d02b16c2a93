//! [`RawStreamReader`]: a reader of any stream, or an observer of any queue, that decodes
//! messages by the layout the segment stores (for tools and other languages).

use super::reader::{Cursor, Start};
use crate::error::{Error, Result};
use crate::format::SegmentKind;
use crate::info::SegmentInfo;
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol::{self, stream};
use crate::raw_reader::RawReader;
use crate::wait::{AsyncWait, Deadline};
use std::task::{Context, Poll};
use std::time::Duration;

/// Receives the messages of a broadcast stream, or observes those of a queue, as bytes,
/// whatever type they hold: the untyped counterpart of [`StreamReader`](crate::StreamReader),
/// for programs that have no Rust type for the messages (the `shm` tool, the Python package).
///
/// The layout the segment stores ([`layout`](Self::layout)) decodes the bytes, for example
/// with [`LayoutBuf::decode_value`]. The protocol is a broadcast reader's:
/// messages come in order, never torn, and a reader that falls behind by more than the
/// capacity gets [`Error::Lagged`] with the exact number it lost.
///
/// On a **queue** this reader is an observer: it never takes a message (only the queue's one
/// consumer does) and never writes the segment. It sees the messages the producer sends
/// whether or not the consumer has taken them yet; a message the producer has since
/// overwritten (after the consumer took it) counts as lost.
///
/// ```no_run
/// let mut rx = shm_core::RawStreamReader::subscribe("/fills")?;
/// let mut message = vec![0u8; rx.payload_size()];
/// loop {
///     match rx.recv(&mut message) {
///         Ok(number) => println!("message {number}: {:?}", rx.layout().decode_value(&message)),
///         Err(shm_core::Error::Lagged { missed }) => eprintln!("lost {missed} messages"),
///         Err(e) => return Err(e),
///     }
/// }
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct RawStreamReader {
    raw: RawReader,
    cursor: Cursor,
    /// A message received right after a gap (its number), returned after the gap is reported.
    pending: Option<u64>,
    /// Its bytes.
    pending_bytes: Vec<u8>,
    /// The wait of the [`Stream`](futures_core::Stream) implementation, kept between polls.
    stream_wait: AsyncWait,
}

impl RawStreamReader {
    /// Subscribes to the stream (or observes the queue) `name`: receives the messages sent
    /// from now on. Fails with [`Error::WrongKind`] if `name` holds shared state.
    pub fn subscribe(name: &str) -> Result<RawStreamReader> {
        crate::Options::new().subscribe_raw(name)
    }

    /// Subscribes from the oldest message the stream still holds; on a queue, from the oldest
    /// message its consumer has not taken yet.
    pub fn subscribe_from_oldest(name: &str) -> Result<RawStreamReader> {
        crate::Options::new().subscribe_raw_from_oldest(name)
    }

    /// A reader (an observer, of a queue) of the stream or queue segment `raw` opened,
    /// starting at `start`.
    pub(crate) fn from_raw(raw: RawReader, start: Start) -> Self {
        let mut cursor = Cursor::new(&raw, start);
        if let (Start::Oldest, Some(control)) = (start, raw.segment().control()) {
            // A queue: the messages not taken yet, rather than taken ones still in the ring.
            // A relaxed load and a fence: the mapping may be read-only.
            let consumed = protocol::load_acquire(&control.consumed);
            cursor.next = cursor.next.max(consumed.saturating_add(1));
        }
        let pending_bytes = vec![0; raw.segment().geometry().payload_size];
        RawStreamReader {
            raw,
            cursor,
            pending: None,
            pending_bytes,
            stream_wait: AsyncWait::default(),
        }
    }

    /// Copies the next message into `dst` if one was sent, without waiting, and returns its
    /// number (messages are numbered from 1); `Ok(None)` if none. `Err(Error::Lagged {
    /// missed })` once if this reader fell behind and `missed` messages were overwritten
    /// before it got to them; the next call returns the oldest message still available. After
    /// an error, `dst` holds no message.
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn try_recv(&mut self, dst: &mut [u8]) -> Result<Option<u64>> {
        let words = self.checked_words(dst);
        if let Some(missed) = self.cursor.take_unreported() {
            return Err(Error::Lagged { missed });
        }
        if let Some(number) = self.pending.take() {
            dst.copy_from_slice(&self.pending_bytes);
            return Ok(Some(number));
        }
        let received = stream::receive(
            self.raw.segment(),
            self.cursor.next,
            words,
            payload::sink_into_bytes(dst),
        );
        // A peer that shrank the segment made the copy read zero pages.
        self.raw.segment().check_intact()?;
        let Some(number) = received else {
            return Ok(None);
        };
        let missed = self.cursor.advance(number);
        if missed > 0 {
            self.pending_bytes.copy_from_slice(dst);
            self.pending = Some(number);
            return Err(Error::Lagged { missed });
        }
        Ok(Some(number))
    }

    /// Copies the next message into `dst`, waiting for it as long as it takes, and returns its
    /// number; `Err(Error::Lagged)` as [`try_recv`](Self::try_recv).
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn recv(&mut self, dst: &mut [u8]) -> Result<u64> {
        self.recv_until(dst, Deadline::never())
    }

    /// Copies the next message into `dst`, waiting at most `timeout` for it
    /// ([`Error::Timeout`]), and returns its number; `Err(Error::Lagged)` as
    /// [`try_recv`](Self::try_recv).
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub fn recv_timeout(&mut self, dst: &mut [u8], timeout: Duration) -> Result<u64> {
        self.recv_until(dst, Deadline::after(timeout))
    }

    /// Copies the next message into `dst` asynchronously, and returns its number;
    /// `Err(Error::Lagged)` as [`try_recv`](Self::try_recv), and `Err(Error::WriterDied)`
    /// when the writer's process ends while it waits (the next call waits on, for a writer
    /// that takes over). Cancellation-safe, as [`StreamReader::recv_async`](crate::StreamReader::recv_async).
    ///
    /// # Panics
    /// If `dst.len()` is not [`payload_size`](Self::payload_size).
    pub async fn recv_async(&mut self, dst: &mut [u8]) -> Result<u64> {
        let mut wait = AsyncWait::default();
        std::future::poll_fn(|cx| self.poll_recv_with(cx, dst, &mut wait)).await
    }

    /// One poll of a receive into `dst` that waits with `wait`.
    fn poll_recv_with(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
        wait: &mut AsyncWait,
    ) -> Poll<Result<u64>> {
        // Bounded: each turn either returns or saw an armed wait end.
        for _ in 0..1_000_000 {
            if let Some(v) = self.try_recv(dst).transpose() {
                return Poll::Ready(v);
            }
            let next = self.cursor.next;
            let published = &self.raw.segment().header().published;
            match wait.poll_wait(cx, self.raw.segment(), true, |registered| {
                crate::wait::load_for_wait(published, registered) >= next
            }) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn recv_until(&mut self, dst: &mut [u8], deadline: Deadline) -> Result<u64> {
        let try_recv = |r: &mut Self| r.try_recv(dst);
        super::receive_until(self, deadline, try_recv, |r, d| r.cursor.wait(&r.raw, d))
    }

    fn checked_words(&self, dst: &[u8]) -> usize {
        assert_eq!(
            dst.len(),
            self.payload_size(),
            "the buffer must be exactly the message size"
        );
        payload::words(dst.len())
    }

    /// The layout of one message, as the segment stores it.
    pub fn layout(&self) -> &LayoutBuf {
        self.raw.layout()
    }

    /// Always [`Compat::Exact`](crate::Compat::Exact): an untyped reader reads messages as the
    /// stored layout describes them.
    pub fn compat(&self) -> crate::Compat {
        self.raw.compat()
    }

    /// The size of one message in bytes: the length of every buffer this handle reads into (also
    /// [`SegmentInfo::payload_size`]; this is a field load, without `info()`'s lock query).
    pub fn payload_size(&self) -> usize {
        self.raw.segment().geometry().payload_size
    }

    /// The number of the next message this reader receives.
    pub fn position(&self) -> u64 {
        self.cursor.next - u64::from(self.pending.is_some())
    }

    /// The number of messages sent so far, by all writers.
    pub fn sent(&self) -> u64 {
        self.raw.version()
    }

    /// On a queue, the number of messages its consumers took so far; `None` on a stream.
    pub fn taken(&self) -> Option<u64> {
        self.raw
            .segment()
            .control()
            .filter(|_| self.raw.segment().geometry().kind == SegmentKind::Queue)
            .map(|c| protocol::load_acquire(&c.consumed))
    }

    /// The untyped reader underneath.
    pub(crate) fn raw_reader(&self) -> &RawReader {
        &self.raw
    }

    /// What the segment is (a stream or a queue: `info().kind()`; the capacity in messages:
    /// `info().slots()`) and who writes it; see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.raw.info()
    }

    /// The writer epoch the header holds now; see [`RawReader::writer_epoch`] (a load, where
    /// [`info`](Self::info) also asks the kernel whether the writer lives).
    #[inline]
    pub fn writer_epoch(&self) -> u64 {
        self.raw.writer_epoch()
    }
}

/// The messages, in order, each as its number and its bytes; never ends. Errors as
/// [`recv_async`](RawStreamReader::recv_async) reports them. Between polls the reader keeps
/// its armed wait until a message comes or the reader is dropped.
impl futures_core::Stream for RawStreamReader {
    type Item = Result<(u64, Vec<u8>)>;

    fn poll_next(
        self: core::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(u64, Vec<u8>)>>> {
        let this = self.get_mut();
        let mut wait = core::mem::take(&mut this.stream_wait);
        let mut bytes = vec![0; this.payload_size()];
        let polled = this.poll_recv_with(cx, &mut bytes, &mut wait);
        this.stream_wait = wait;
        polled.map(|r| Some(r.map(|n| (n, bytes))))
    }
}

impl core::fmt::Debug for RawStreamReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawStreamReader")
            .field("name", &self.raw.segment().name())
            .field("kind", &self.raw.segment().geometry().kind)
            .field("layout", &self.layout().to_string())
            .field("capacity", &self.raw.segment().geometry().slot_count)
            .field("position", &self.position())
            .field("sent", &self.sent())
            .finish()
    }
}
