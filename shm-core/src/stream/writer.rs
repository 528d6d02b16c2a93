//! [`StreamWriter`]: the one handle that sends messages to a broadcast stream.

use super::{create_ring, open_ring_writer, reader::Start, wake_all, StreamReader};
use crate::backend::Backend;
use crate::error::Result;
use crate::format::SegmentKind;
use crate::payload;
use crate::protocol::{self, stream};
use crate::raw_reader::RawReader;
use crate::raw_writer::{announce_mode, Make};
use crate::segment::Segment;
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::Ordering;
use std::time::Duration;

/// Sends messages of `T` to a broadcast stream: every reader receives every message, in order,
/// unless it falls behind by more than the stream's capacity.
///
/// [`send`](Self::send) never blocks: it overwrites the oldest message. Like
/// [`Writer`](crate::Writer), a stream writer holds the segment's writer lease for its whole
/// lifetime; when it is dropped or its process dies, another process can take over with
/// [`SharedState::open_stream_writer`] and continues the numbering where the last complete
/// message left it. Dropping the writer does not remove the stream (see
/// [`remove`](crate::remove)).
///
/// ```no_run
/// use shm_core::SharedState;
/// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Fill { price: f64, qty: u64 }
/// let mut tx = Fill::create_stream("/fills", 1024)?;
/// tx.send(&Fill { price: 101.5, qty: 3 });
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct StreamWriter<T: SharedState> {
    seg: Segment,
    /// The number of the last message sent (0: none).
    sent: u64,
    created: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> StreamWriter<T> {
    /// Words of a `T`: a compile-time constant, so small copies unroll.
    const WORDS: usize = payload::words(size_of::<T>());

    pub(crate) fn create(
        backend: &Backend,
        name: &str,
        make: &Make,
        capacity: usize,
    ) -> Result<Self> {
        let seg = create_ring::<T>(backend, name, make, SegmentKind::Stream, capacity)?;
        Ok(StreamWriter {
            seg,
            sent: 0,
            created: true,
            _type: PhantomData,
        })
    }

    pub(crate) fn open(backend: &Backend, name: &str, ready_wait: Duration) -> Result<Self> {
        let seg = open_ring_writer::<T>(backend, name, SegmentKind::Stream, ready_wait)?;
        // A writer that died mid-send left that message unpublished: its number is used again,
        // so readers see neither a gap nor a duplicate.
        let sent = protocol::load_acquire(&seg.header().published);
        Ok(StreamWriter {
            seg,
            sent,
            created: false,
            _type: PhantomData,
        })
    }

    /// Sends `value`: every reader receives it after the messages sent before it.
    ///
    /// Never blocks and makes no syscall unless a reader is blocked waiting for a message. With
    /// a full ring it overwrites the oldest message; readers that had not received it yet get
    /// [`Error::Lagged`](crate::Error::Lagged) with the exact number they lost.
    ///
    /// # Panics
    /// In a process made by `fork` after this writer was made: the copy the child inherited
    /// does not hold the lease (it stayed with the parent) and must not send beside it.
    #[inline]
    pub fn send(&mut self, value: &T) {
        self.seg.assert_not_inherited();
        let number = self.sent.wrapping_add(1);
        let wake = stream::send(
            &self.seg,
            number,
            Self::WORDS,
            payload::source_of(value),
            announce_mode(),
        );
        self.sent = number;
        if wake {
            wake_all(&self.seg.header().futex);
        }
    }

    /// The number of messages sent to this stream since it was created, by this writer and the
    /// writers before it; also the number of the last message sent (messages are numbered
    /// from 1).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The capacity in messages: how far a reader may fall behind before it loses messages.
    pub fn capacity(&self) -> usize {
        self.seg.geometry().slot_count
    }

    /// Whether this handle created the stream (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.created
    }

    /// This writer's epoch: 1 for the creator, one more for every takeover.
    pub fn epoch(&self) -> u64 {
        self.seg.header().writer_epoch.load(Ordering::Relaxed)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// A reader of this stream that receives the messages sent from now on, with its own open
    /// file description (so that its [`StreamReader::writer_alive`] sees this writer's lease).
    pub fn subscribe(&self) -> Result<StreamReader<T>> {
        self.reader(Start::Newest)
    }

    /// A reader of this stream that starts with the oldest message the stream still holds.
    pub fn subscribe_from_oldest(&self) -> Result<StreamReader<T>> {
        self.reader(Start::Oldest)
    }

    fn reader(&self, start: Start) -> Result<StreamReader<T>> {
        let seg = self
            .seg
            .reopen(&super::expect_ring::<T>(SegmentKind::Stream))?;
        Ok(StreamReader::from_raw(RawReader::from_segment(seg), start))
    }
}

impl<T: SharedState> core::fmt::Debug for StreamWriter<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("name", &self.seg.name())
            .field("capacity", &self.capacity())
            .field("sent", &self.sent)
            .finish()
    }
}
