//! [`StreamWriter`]: the one handle that sends messages to a broadcast stream.

use super::Sender as Tx;
use super::{reader::Start, Sender, StreamReader};
use crate::error::Result;
use crate::format::SegmentKind;
use crate::info::SegmentInfo;
use crate::layout::Compat;
use crate::payload;
use crate::protocol::stream;
use crate::raw_reader::RawReader;
use crate::raw_writer::announce_mode;
use crate::writer::Adopted;
use crate::SharedState;
use core::marker::PhantomData;
use core::mem::size_of;

/// [`StreamWriter::send`] of a writer that adopted another version's layout: the message as
/// the stream stores it, the common prefix of `value` and zeros (see `Writer::write`).
#[cold]
fn send_adopted<T: SharedState>(tx: &Tx, number: u64, value: &T, adopted: &Adopted) -> bool {
    let len = size_of::<T>().min(adopted.stored);
    // SAFETY: the first `len <= size_of::<T>()` bytes of `value`, initialized (no padding:
    // `T: SharedState`) and immutably borrowed for the call.
    let bytes = unsafe { payload::FromBytes::new(value as *const T as *const u8, len) };
    let source = payload::ZeroRanges {
        inner: bytes,
        zero: &adopted.deprecated,
    };
    stream::send(
        &tx.seg,
        number,
        payload::words(adopted.stored),
        source,
        announce_mode(),
    )
}

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
    tx: Sender,
    /// Set when this writer adopted a stream of another version of `T`: the stored message
    /// size and the byte ranges of `T`'s deprecated fields.
    adopted: Option<Box<Adopted>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: SharedState> StreamWriter<T> {
    /// Words of a `T`: a compile-time constant, so small copies unroll.
    const WORDS: usize = payload::words(size_of::<T>());

    /// The writer of the stream `tx` created or took over.
    pub(crate) fn of(tx: Sender) -> Self {
        let adopted = Adopted::of::<T>(&tx.seg);
        StreamWriter {
            tx,
            adopted,
            _type: PhantomData,
        }
    }

    /// How the stream's stored layout relates to `T`: [`Compat::Exact`] unless this writer
    /// adopted a stream of another version of its appendable type
    /// ([`Options::adopt_stored_layout`](crate::Options::adopt_stored_layout)): then each
    /// message is written as the stream's layout has it (a prefix of `value`, or `value` and
    /// zeros), so that every subscriber keeps receiving.
    pub fn compat(&self) -> Compat {
        self.tx.seg.compat()
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
        self.tx.seg.assert_not_inherited();
        let number = self.tx.next();
        let wake = match &self.adopted {
            None => stream::send(
                &self.tx.seg,
                number,
                Self::WORDS,
                payload::source_of(value),
                announce_mode(),
            ),
            Some(adopted) => send_adopted(&self.tx, number, value, adopted),
        };
        self.tx.sent(number, wake);
    }

    /// The number of messages sent to this stream since it was created, by this writer and the
    /// writers before it; also the number of the last message sent (messages are numbered
    /// from 1).
    pub fn sent(&self) -> u64 {
        self.tx.sent
    }

    /// Whether this handle created the stream (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.tx.created
    }

    /// What the stream is (its capacity in messages is `info().slots()`) and who writes it
    /// (this writer); see [`SegmentInfo`].
    pub fn info(&self) -> SegmentInfo {
        self.tx.seg.info()
    }

    /// A reader of this stream that receives the messages sent from now on, with its own open
    /// file description (so that its [`WriterInfo::alive`](crate::WriterInfo::alive) sees this writer's lease).
    pub fn subscribe(&self) -> Result<StreamReader<T>> {
        self.reader(Start::Newest)
    }

    /// A reader of this stream that starts with the oldest message the stream still holds.
    pub fn subscribe_from_oldest(&self) -> Result<StreamReader<T>> {
        self.reader(Start::Oldest)
    }

    fn reader(&self, start: Start) -> Result<StreamReader<T>> {
        let seg = self
            .tx
            .seg
            .reopen(&super::expect_ring::<T>(SegmentKind::Stream))?;
        Ok(StreamReader::from_raw(RawReader::from_segment(seg), start))
    }
}

impl<T: SharedState> core::fmt::Debug for StreamWriter<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("name", &self.tx.seg.name())
            .field("capacity", &self.tx.seg.geometry().slot_count)
            .field("sent", &self.tx.sent)
            .finish()
    }
}
