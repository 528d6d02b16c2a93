//! The segment format, version 2: constants, the header, the slot geometry and the name rules.
//!
//! Mirrors `docs/segment-format.md` section by section (Overview, Header, Slots, Names); the
//! layout descriptor's encoding is in `layout/codec.rs`, the read and write protocol in
//! `protocol/`, and creating and opening in `segment.rs`. Nothing here touches the operating
//! system.

use crate::error::{Error, Result};
use core::sync::atomic::{AtomicU32, AtomicU64};

/// The version of the segment format: the header, the slots and the protocol peers follow.
///
/// It is stored in every segment, and a reader refuses a segment of another version, so a
/// deliberate change to what a peer must do must bump it. Version 2 added the `inline` word
/// and the asymmetric barrier of waiters (docs/segment-format.md, "Changes from version 1").
pub const FORMAT_VERSION: u32 = 2;

/// The version of the layout descriptor's encoding and of the layout hash algorithm: the
/// first bytes every layout hash covers.
///
/// Separate from [`FORMAT_VERSION`], so that a protocol change leaves every type's hash (and
/// every exported header and descriptor) as it was; a change to the encoding or the hash must
/// bump it.
pub const LAYOUT_ENCODING_VERSION: u32 = 1;

/// `magic`: the bytes `SHMSTATE`, stored as a native-endian `u64` whose value is this.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMSTATE");
/// Size of the header; slot 0 starts here.
pub(crate) const HEADER_SIZE: usize = 256;
/// The alignment unit of slots and of hot header words.
pub(crate) const CACHE_LINE: usize = 64;
/// Most slots a segment may have.
pub(crate) const MAX_SLOTS: usize = 1024;
/// Largest descriptor a segment may store, in bytes.
pub(crate) const MAX_DESCRIPTOR: usize = 1 << 20;

/// `state` while the creator initializes the segment.
pub(crate) const STATE_CREATING: u32 = 0;
/// `state` once the segment is fully initialized.
pub(crate) const STATE_READY: u32 = 1;

/// The segment header, as mapped (section "Header"). Every field is atomic: other processes may
/// change any byte at any time.
#[repr(C)]
pub(crate) struct Header {
    pub magic: AtomicU64,
    pub format_version: AtomicU32,
    pub state: AtomicU32,
    pub layout_hash: AtomicU64,
    pub payload_size: AtomicU64,
    pub payload_align: AtomicU32,
    pub slot_count: AtomicU32,
    pub slots_offset: AtomicU64,
    pub slot_stride: AtomicU64,
    pub descriptor_offset: AtomicU64,
    pub descriptor_len: AtomicU64,
    pub total_size: AtomicU64,
    pub writer_pid: AtomicU32,
    pub creator_pid: AtomicU32,
    pub writer_epoch: AtomicU64,
    /// What the segment holds: a [`SegmentKind`] code (0, shared state, in segments made
    /// before kinds existed, whose reserved bytes are zero).
    pub kind: AtomicU32,
    /// Who writes a shared-state segment: [`WRITERS_ONE`] (0, every segment made before the
    /// field existed) or [`WRITERS_TURNS`] (section "Turn-taking writers").
    pub writers: AtomicU32,
    /// Turn-taking segments: the binary layout of `turn_lock` ([`crate::sys::LOCK_ABI`] of the
    /// creator); 0 otherwise.
    pub lock_abi: AtomicU32,
    _reserved_after_lock_abi: AtomicU32,
    _reserved: [AtomicU64; 2],
    /// Publish counter: version `v` lives in slot `v % slot_count`. Own cache line.
    pub published: AtomicU64,
    /// State segments whose payload fits one word (8 bytes or less): the latest value,
    /// zero-extended (the value's bytes first: hosts are little-endian), stored by the writer
    /// before every publication (section "Writing"), so possibly one version ahead of
    /// `published`. Zero and unused otherwise.
    pub inline: AtomicU64,
    _pad1: [AtomicU64; 6],
    /// Futex word, bumped by the writer when waiters are registered. Own cache line.
    pub futex: AtomicU32,
    /// Number of processes blocked (or about to block) on `futex`.
    pub waiters: AtomicU32,
    _pad2: AtomicU64,
    /// Turn-taking segments: the writers' lock, a process-shared, robust, priority-inheriting
    /// `pthread_mutex_t` of the ABI `lock_abi` names (at most [`TURN_LOCK_SIZE`] bytes). Zero
    /// otherwise. Only `sys::mutex` touches it, through a pointer.
    pub turn_lock: [AtomicU64; TURN_LOCK_SIZE / 8],
}

/// `writers`: one writer at a time, holding the exclusive writer lease.
pub(crate) const WRITERS_ONE: u32 = 0;
/// `writers`: any number of writers, holding the writer lease shared, each writing in turns
/// under `turn_lock`.
pub(crate) const WRITERS_TURNS: u32 = 1;
/// Offset of `turn_lock` in the header.
pub(crate) const TURN_LOCK_OFFSET: usize = 208;
/// Room for `turn_lock`: the rest of the futex line.
pub(crate) const TURN_LOCK_SIZE: usize = HEADER_SIZE - TURN_LOCK_OFFSET;

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(Header, published) == 128);
const _: () = assert!(core::mem::offset_of!(Header, inline) == 136);
const _: () = assert!(core::mem::offset_of!(Header, futex) == 192);
const _: () = assert!(core::mem::offset_of!(Header, kind) == 96);
const _: () = assert!(core::mem::offset_of!(Header, writers) == 100);
const _: () = assert!(core::mem::offset_of!(Header, lock_abi) == 104);
const _: () = assert!(core::mem::offset_of!(Header, turn_lock) == TURN_LOCK_OFFSET);

/// What a segment holds, stored in the header's `kind` field (section "Streams and queues").
///
/// Each kind is opened by its own calls: a program that opens a segment of another kind gets
/// [`Error::WrongKind`](crate::Error::WrongKind) saying which call to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentKind {
    /// One value, the latest: [`SharedState::create`](crate::SharedState::create) and
    /// [`SharedState::open`](crate::SharedState::open).
    State,
    /// A broadcast stream of messages:
    /// [`SharedState::create_stream`](crate::SharedState::create_stream) and
    /// [`SharedState::subscribe`](crate::SharedState::subscribe).
    Stream,
    /// A queue with backpressure, one producer and one consumer:
    /// [`SharedState::create_queue`](crate::SharedState::create_queue) and
    /// [`SharedState::open_consumer`](crate::SharedState::open_consumer).
    Queue,
    /// The directory of a multi-producer stream or queue, whose messages travel in lanes
    /// (one stream or queue segment each):
    /// [`SharedState::create_lanes`](crate::SharedState::create_lanes) and
    /// [`SharedState::subscribe_lanes`](crate::SharedState::subscribe_lanes).
    Lanes,
}

impl SegmentKind {
    /// The code stored in the header.
    pub(crate) const fn code(self) -> u32 {
        match self {
            SegmentKind::State => 0,
            SegmentKind::Stream => 1,
            SegmentKind::Queue => 2,
            SegmentKind::Lanes => 3,
        }
    }

    /// The kind a header code stands for, if any.
    pub(crate) const fn from_code(code: u32) -> Option<SegmentKind> {
        match code {
            0 => Some(SegmentKind::State),
            1 => Some(SegmentKind::Stream),
            2 => Some(SegmentKind::Queue),
            3 => Some(SegmentKind::Lanes),
            _ => None,
        }
    }

    /// Whether segments of this kind have the stream control line before their slots.
    pub(crate) const fn is_ring(self) -> bool {
        matches!(self, SegmentKind::Stream | SegmentKind::Queue)
    }

    /// Whether segments of this kind have a line between the header and their slots: the
    /// control line of streams and queues, the directory line of lanes.
    pub(crate) const fn has_line(self) -> bool {
        !matches!(self, SegmentKind::State)
    }

    /// The most slots a segment of this kind may have.
    pub(crate) const fn max_slots(self) -> usize {
        if self.is_ring() {
            MAX_STREAM_CAPACITY
        } else {
            MAX_SLOTS
        }
    }

    /// What this kind holds and how a program reads it, for error messages.
    pub(crate) const fn describe(self) -> &'static str {
        match self {
            SegmentKind::State => "shared state (read it with `open`)",
            SegmentKind::Stream => "a broadcast stream (read it with `subscribe`)",
            SegmentKind::Queue => "a queue (read it with `open_consumer`)",
            SegmentKind::Lanes => {
                "a multi-producer stream or queue (read it with `subscribe_lanes` or `open_lane_consumer`)"
            }
        }
    }
}

impl core::fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SegmentKind::State => "state",
            SegmentKind::Stream => "stream",
            SegmentKind::Queue => "queue",
            SegmentKind::Lanes => "lanes",
        })
    }
}

/// Most messages a stream or queue segment may hold (its slot count).
pub(crate) const MAX_STREAM_CAPACITY: usize = 1 << 24;

/// The control line of stream and queue segments, the cache line right after the header
/// (section "Streams and queues"). Every field is atomic.
#[repr(C)]
pub(crate) struct Control {
    /// Queues: the number of the last message the consumer took (0: none yet). Written only
    /// by the consumer. Zero and unused in broadcast streams.
    pub consumed: AtomicU64,
    /// Queues: futex word the consumer bumps to wake a producer waiting for space.
    pub space_futex: AtomicU32,
    /// Queues: number of producers blocked, or about to block, on `space_futex`.
    pub space_waiters: AtomicU32,
    /// Queues: the `consumed` value a waiting producer needs (room for its next message); the
    /// consumer wakes it when its commit reaches this value, not on every commit.
    pub space_wanted: AtomicU64,
    _pad: [AtomicU64; 5],
}

const _: () = assert!(core::mem::size_of::<Control>() == CACHE_LINE);

/// Most lanes a multi-producer stream or queue may have.
pub(crate) const MAX_LANES: usize = 1024;

/// The directory line of a lanes segment, the cache line right after the header (section
/// "Multi-producer streams and queues"). Written by the creator before the segment is ready,
/// never after. Every field is atomic.
#[repr(C)]
pub(crate) struct LaneDirectory {
    /// The number of lanes, `1..=MAX_LANES`.
    pub lanes: AtomicU32,
    /// What each lane is: the [`SegmentKind`] code of a stream (1) or a queue (2).
    pub lane_kind: AtomicU32,
    /// Each lane's capacity in messages.
    pub capacity: AtomicU64,
    _reserved: [AtomicU64; 6],
}

const _: () = assert!(core::mem::size_of::<LaneDirectory>() == CACHE_LINE);

/// Where things are in a segment holding one payload type (sections "Overview" and "Slots").
///
/// Openers compute it from `payload_size` and `slot_count` and compare it with what the header
/// says; they keep their own copy and never re-read the header's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub kind: SegmentKind,
    pub payload_size: usize,
    pub payload_align: usize,
    pub payload_words: usize,
    pub slot_count: usize,
    pub slots_offset: usize,
    pub slot_stride: usize,
    pub descriptor_offset: usize,
    pub descriptor_len: usize,
    pub total_size: usize,
}

impl Geometry {
    /// The geometry for a payload of `size`/`align` bytes in `slots` slots followed by a
    /// descriptor of `descriptor_len` bytes, or `None` if the sizes overflow (only a hostile
    /// header asks for that).
    #[allow(dead_code)] // segments of a known kind use `of_kind`
    pub fn new(size: u64, align: u64, slots: usize, descriptor_len: u64) -> Option<Geometry> {
        Self::of_kind(SegmentKind::State, size, align, slots, descriptor_len)
    }

    /// [`new`](Self::new) for a segment of `kind`: stream and queue segments have one control
    /// line between the header and slot 0.
    pub fn of_kind(
        kind: SegmentKind,
        size: u64,
        align: u64,
        slots: usize,
        descriptor_len: u64,
    ) -> Option<Geometry> {
        let slots_offset = if kind.has_line() {
            HEADER_SIZE + CACHE_LINE
        } else {
            HEADER_SIZE
        };
        let payload_words = usize::try_from(size.div_ceil(8)).ok()?;
        let slot_stride = payload_words
            .checked_mul(8)?
            .checked_add(CACHE_LINE)?
            .checked_next_multiple_of(CACHE_LINE)?;
        let descriptor_offset = slot_stride.checked_mul(slots)?.checked_add(slots_offset)?;
        let descriptor_len = usize::try_from(descriptor_len).ok()?;
        Some(Geometry {
            kind,
            payload_size: usize::try_from(size).ok()?,
            payload_align: usize::try_from(align).ok()?,
            payload_words,
            slot_count: slots,
            slots_offset,
            slot_stride,
            descriptor_offset,
            descriptor_len,
            total_size: descriptor_offset.checked_add(descriptor_len)?,
        })
    }

    /// Offset of slot `i`'s sequence word (its payload words follow one cache line later).
    pub fn slot_offset(&self, i: usize) -> usize {
        self.slots_offset + i * self.slot_stride
    }
}

/// Checks a POSIX shared-memory name (section "Names"): `/` then 1 to 254 bytes, no other `/`,
/// no NUL, not `/.` or `/..`.
pub(crate) fn validate_shm_name(name: &str) -> Result<()> {
    let reason = if !name.starts_with('/') {
        "a shared-memory name starts with `/`, e.g. \"/robot-state\""
    } else if name.len() < 2 {
        "a shared-memory name has at least one character after `/`"
    } else if name.len() > 255 {
        "a shared-memory name is at most 255 bytes"
    } else if name[1..].contains('/') {
        "a shared-memory name has no `/` after the first character"
    } else if name.contains('\0') {
        "a shared-memory name cannot contain NUL"
    } else if name == "/." || name == "/.." {
        "`.` and `..` are not segment names"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_string(),
        reason,
    })
}
