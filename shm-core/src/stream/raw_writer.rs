//! [`RawStreamWriter`]: sends messages to a broadcast stream whose message type is known only
//! by its [`LayoutBuf`], and may skip message numbers (a mirror of a stream on another host
//! keeps that stream's numbers, so a gap is an exact loss count for its readers).

use super::Sender;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{SegmentKind, MAX_STREAM_CAPACITY};
use crate::info::SegmentInfo;
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol::stream;
use crate::raw_writer::{announce_mode, Make};
use crate::segment::Expect;
use std::time::Duration;

/// Sends messages to a broadcast stream as bytes, described by the stream's [`LayoutBuf`]: the
/// untyped counterpart of [`StreamWriter`](crate::StreamWriter), for programs that relay
/// messages of a type they do not know (a bridge mirroring another host's stream).
///
/// Besides [`send`](Self::send), which numbers messages one after the other,
/// [`send_numbered`](Self::send_numbered) sends a message under a number of the caller's
/// choosing, greater than the last one sent: readers count the numbers skipped as lost
/// ([`Error::Lagged`] with the exact count), as if the messages had been overwritten.
///
/// Holds the segment's writer lease, as every writer does.
pub struct RawStreamWriter {
    tx: Sender,
    /// The least epoch [`set_epoch`](Self::set_epoch) may record: the epoch of the writer
    /// before this one (1 for a creator), then the last one recorded.
    epoch_floor: u64,
}

impl RawStreamWriter {
    /// Creates a broadcast stream of `capacity` messages of `layout`, whose last message sent
    /// is `last_sent` (0 for a new stream): the first message readers can receive is
    /// `last_sent + 1`, and readers that subscribe before it is sent are not told about the
    /// earlier numbers.
    pub(crate) fn create(
        backend: &Backend,
        name: &str,
        make: &Make,
        layout: &LayoutBuf,
        capacity: usize,
        last_sent: u64,
    ) -> Result<Self> {
        check_layout(layout)?;
        if !(1..=MAX_STREAM_CAPACITY).contains(&capacity) {
            return Err(Error::InvalidLayout {
                what: format!(
                    "stream capacity must be between 1 and {MAX_STREAM_CAPACITY} messages, got {capacity}"
                ),
            });
        }
        let described = (layout, layout.layout_hash());
        let tx = Sender::create_described(
            backend,
            name,
            make,
            SegmentKind::Stream,
            described,
            capacity,
            last_sent,
        )?;
        Ok(RawStreamWriter { tx, epoch_floor: 1 })
    }

    /// Opens the broadcast stream `name`, which must hold messages of `layout`, as its writer:
    /// takes the writer lease (a new epoch) and continues after the last message sent.
    pub(crate) fn open(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        layout: &LayoutBuf,
    ) -> Result<Self> {
        let expect = Expect::Ring {
            kind: SegmentKind::Stream,
            layout: layout.clone(),
            hash: layout.layout_hash(),
        };
        let tx = Sender::open_expecting(backend, name, ready_wait, &expect, false)?;
        // The takeover recorded the previous writer's epoch plus one, and only the lease
        // holder (this handle) writes it.
        let epoch_floor = tx.seg.writer_epoch().saturating_sub(1).max(1);
        Ok(RawStreamWriter { tx, epoch_floor })
    }

    /// Sends the message `value` under the next number: every reader receives it after the
    /// messages sent before it. Never blocks; see [`StreamWriter::send`](crate::StreamWriter::send).
    ///
    /// # Panics
    /// If `value.len()` is not [`payload_size`](Self::payload_size).
    pub fn send(&mut self, value: &[u8]) {
        let number = self.tx.next();
        self.send_as(number, value);
    }

    /// Sends the message `value` under `number`, which must be greater than the last number
    /// sent ([`sent`](Self::sent)); the numbers skipped are lost messages, which readers that
    /// had not received them count in [`Error::Lagged`]'s `missed`, exactly. Returns `false`,
    /// and sends nothing, if `number` is not greater than the last number sent.
    ///
    /// # Panics
    /// If `value.len()` is not [`payload_size`](Self::payload_size).
    pub fn send_numbered(&mut self, number: u64, value: &[u8]) -> bool {
        if number <= self.tx.sent {
            return false;
        }
        self.send_as(number, value);
        true
    }

    fn send_as(&mut self, number: u64, value: &[u8]) {
        self.tx.seg.assert_not_inherited();
        assert_eq!(
            value.len(),
            self.payload_size(),
            "the message must be exactly the payload size"
        );
        let wake = stream::send(
            &self.tx.seg,
            number,
            payload::words(value.len()),
            payload::source_of_bytes(value),
            announce_mode(),
        );
        self.tx.sent(number, wake);
    }

    /// The number of the last message sent (0: none).
    pub fn sent(&self) -> u64 {
        self.tx.sent
    }

    /// Records `epoch` as this writer's epoch, for a writer that repeats the writer of
    /// another stream (a mirror); refused (`false`) below the previous writer's epoch, below
    /// one recorded already, or at `u64::MAX`. See [`RawWriter::set_epoch`](crate::RawWriter::set_epoch).
    pub fn set_epoch(&mut self, epoch: u64) -> bool {
        if epoch < self.epoch_floor || epoch == u64::MAX {
            return false;
        }
        self.tx.seg.record_epoch(epoch);
        self.epoch_floor = epoch;
        true
    }

    /// The size of one message in bytes.
    pub fn payload_size(&self) -> usize {
        self.tx.seg.geometry().payload_size
    }

    /// The layout of one message, as the segment stores it.
    pub fn layout(&self) -> &LayoutBuf {
        self.tx.seg.layout()
    }

    /// Whether this handle created the stream (as opposed to taking over an existing one).
    pub fn created(&self) -> bool {
        self.tx.created
    }

    /// What the stream is (its capacity in messages is `info().slots()`) and who writes it
    /// (this writer's epoch is `info().writer().epoch()`).
    pub fn info(&self) -> SegmentInfo {
        self.tx.seg.info()
    }
}

impl core::fmt::Debug for RawStreamWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawStreamWriter")
            .field("name", &self.tx.seg.name())
            .field("layout", &format_args!("{}", self.layout()))
            .field("capacity", &self.tx.seg.geometry().slot_count)
            .field("sent", &self.tx.sent)
            .finish()
    }
}

/// Checks that a caller's layout can describe a message.
fn check_layout(layout: &LayoutBuf) -> Result<()> {
    let what = if layout.size == 0 {
        "a layout of size 0 holds nothing to send"
    } else if layout.align > 4096 {
        "a layout's alignment must be at most 4096"
    } else {
        return layout
            .check()
            .map_err(|what| Error::InvalidLayout { what: what.into() });
    };
    Err(Error::InvalidLayout { what: what.into() })
}
