//! [`RawStreamWriter`]: sends messages to a broadcast stream whose message type is known only
//! by its [`LayoutBuf`], and may skip message numbers (a mirror of a stream on another host
//! keeps that stream's numbers, so a gap is an exact loss count for its readers).

use super::wake_all;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{SegmentKind, MAX_STREAM_CAPACITY};
use crate::layout::LayoutBuf;
use crate::payload;
use crate::protocol::{self, stream};
use crate::raw_writer::{announce_mode, Make};
use crate::segment::{Expect, Segment, Spec};
use crate::sys::{self, Access};
use core::sync::atomic::Ordering;
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
    seg: Segment,
    /// The number of the last message sent (0: none).
    sent: u64,
    created: bool,
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
        let spec = Spec {
            layout,
            hash: layout.layout_hash(),
            slots: capacity,
            mode: make.mode,
            crash_before_ready: make.crash_before_ready,
            kind: SegmentKind::Stream,
        };
        // Before the segment is ready nobody can open it: readers first see `published` at
        // `last_sent`. Every slot's sequence word is 0, which no message number completes.
        let seg = Segment::create(backend, name, &spec, |seg| {
            seg.header().published.store(last_sent, Ordering::Relaxed);
        })?;
        sys::register_as_barrier_target();
        Ok(RawStreamWriter {
            seg,
            sent: last_sent,
            created: true,
        })
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
        let seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, &expect)?;
        let h = seg.header();
        if !sys::try_lock_writer(seg.file()).map_err(Error::io("locking", name))? {
            return Err(Error::WriterBusy {
                pid: h.writer_pid.load(Ordering::Relaxed),
            });
        }
        // We hold the lease: nobody else writes. Record the takeover.
        let epoch = h.writer_epoch.load(Ordering::Relaxed);
        let Some(next) = epoch.checked_add(1) else {
            return Err(Error::Corrupt {
                what: "the writer epoch is at its maximum",
            });
        };
        h.writer_epoch.store(next, Ordering::Relaxed);
        h.writer_pid.store(sys::pid(), Ordering::Relaxed);
        sys::register_as_barrier_target();
        wake_all(&h.futex);
        // A writer that died mid-send left that message unpublished: its number is used again.
        let sent = protocol::load_acquire(&h.published);
        Ok(RawStreamWriter {
            seg,
            sent,
            created: false,
        })
    }

    /// Sends the message `value` under the next number: every reader receives it after the
    /// messages sent before it. Never blocks; see [`StreamWriter::send`](crate::StreamWriter::send).
    ///
    /// # Panics
    /// If `value.len()` is not [`payload_size`](Self::payload_size).
    pub fn send(&mut self, value: &[u8]) {
        let number = self.sent.wrapping_add(1);
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
        if number <= self.sent {
            return false;
        }
        self.send_as(number, value);
        true
    }

    fn send_as(&mut self, number: u64, value: &[u8]) {
        assert_eq!(
            value.len(),
            self.payload_size(),
            "the message must be exactly the payload size"
        );
        let wake = stream::send(
            &self.seg,
            number,
            payload::words(value.len()),
            payload::source_of_bytes(value),
            announce_mode(),
        );
        self.sent = number;
        if wake {
            wake_all(&self.seg.header().futex);
        }
    }

    /// The number of the last message sent (0: none).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The size of one message in bytes.
    pub fn payload_size(&self) -> usize {
        self.seg.geometry().payload_size
    }

    /// The layout of one message, as the segment stores it.
    pub fn layout(&self) -> &LayoutBuf {
        self.seg.layout()
    }

    /// The capacity in messages.
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
}

impl core::fmt::Debug for RawStreamWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawStreamWriter")
            .field("name", &self.seg.name())
            .field("layout", &format_args!("{}", self.layout()))
            .field("capacity", &self.capacity())
            .field("sent", &self.sent)
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
