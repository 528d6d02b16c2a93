//! [`SegmentInfo`] and [`WriterInfo`]: what every handle reports about its segment, in one
//! value, as [`std::fs::Metadata`] gathers a file's facts.

use crate::format::SegmentKind;
use std::sync::Arc;

/// What a segment is and who writes it, as one handle saw it when its `info()` was called.
///
/// Every handle returns one: [`Reader::info`](crate::Reader::info),
/// [`Writer::info`](crate::Writer::info), [`RawReader::info`](crate::RawReader::info),
/// [`RawWriter::info`](crate::RawWriter::info),
/// [`StreamWriter::info`](crate::StreamWriter::info),
/// [`StreamReader::info`](crate::StreamReader::info),
/// [`RawStreamReader::info`](crate::RawStreamReader::info),
/// [`QueueProducer::info`](crate::QueueProducer::info) and
/// [`QueueConsumer::info`](crate::QueueConsumer::info).
///
/// **Fixed facts** ([`name`](Self::name), [`kind`](Self::kind),
/// [`layout_hash`](Self::layout_hash), [`payload_size`](Self::payload_size),
/// [`slots`](Self::slots), [`creator_pid`](Self::creator_pid)) never change for the life of
/// the handle: the handle validated the geometry when it opened the segment and keeps its own
/// copy, and the creator writes its pid once (only a hostile peer would change it). **Live
/// facts** are the [`writer`](Self::writer)'s: who holds the writer lease now
/// and whether it is alive. They are a snapshot, true when `info()` read them and possibly
/// stale the next moment; call `info()` again for fresh ones. The publish counter is a live
/// fact too, read on its own: `version()` on state handles, `sent()` on stream handles.
///
/// ```no_run
/// use shm_core::SharedState;
/// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Pose { x: f64, y: f64 }
/// let r = Pose::open("/pose")?;
/// let info = r.info();
/// println!("{} holds {} bytes in {} slots", info.name(), info.payload_size(), info.slots());
/// if !info.writer().alive() {
///     eprintln!("writer {} (epoch {}) is gone", info.writer().pid(), info.writer().epoch());
/// }
/// # Ok::<(), shm_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub(crate) name: Arc<str>,
    pub(crate) kind: SegmentKind,
    pub(crate) layout_hash: u64,
    pub(crate) payload_size: usize,
    pub(crate) slots: usize,
    pub(crate) creator_pid: u32,
    pub(crate) writer: WriterInfo,
}

impl SegmentInfo {
    /// The name the segment was created or opened with. Fixed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the segment holds: shared state, a stream or a queue. Fixed.
    pub fn kind(&self) -> SegmentKind {
        self.kind
    }

    /// The layout hash of the payload type, checked against the stored layout on open. Fixed.
    pub fn layout_hash(&self) -> u64 {
        self.layout_hash
    }

    /// The size of the payload (a stream's or queue's message) in bytes: the buffer size the
    /// untyped handles read into and write from. Fixed.
    pub fn payload_size(&self) -> usize {
        self.payload_size
    }

    /// The number of slots: for shared state, how many versions a reader may be lapped by
    /// before it retries; for a stream or queue, its capacity in messages. Fixed.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The process id of the process that created the segment (it may have exited). Fixed.
    pub fn creator_pid(&self) -> u32 {
        self.creator_pid
    }

    /// The writer (a queue's producer): who took the lease last, and whether it holds it now.
    /// Live.
    pub fn writer(&self) -> WriterInfo {
        self.writer
    }
}

/// The writer of a segment (a queue's producer), as [`SegmentInfo::writer`] saw it. Live: a
/// snapshot, possibly stale the moment after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriterInfo {
    pub(crate) pid: u32,
    pub(crate) epoch: u64,
    pub(crate) alive: bool,
}

impl WriterInfo {
    /// The process id recorded by the last writer that took the lease (it may have exited;
    /// see [`alive`](Self::alive)).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The writer epoch: 1 for the creator, one more for every writer that took over. A
    /// writer that repeats another segment's writer (a mirror) may record that writer's epoch
    /// instead ([`RawWriter::set_epoch`](crate::RawWriter::set_epoch)), never a lower one than
    /// its predecessor's.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether a writer held the segment's writer lease. Only asks the kernel (an
    /// open-file-description lock query): it neither takes a lock nor disturbs the writer. If
    /// the kernel cannot answer (an error no supported file system gives), the writer is
    /// presumed alive: a reader never reports [`Error::WriterDied`](crate::Error::WriterDied)
    /// without evidence.
    pub fn alive(&self) -> bool {
        self.alive
    }
}
