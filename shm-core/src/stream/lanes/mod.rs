//! Multi-producer streams and queues: one lanes directory segment (`name`) and one ordinary
//! stream or queue segment per lane (`name.lane-K`), each with its own writer lease.
//!
//! A producer takes a free lane: it opens the lanes in turn as their writer until one's lease
//! is free, and then sends exactly as the single writer of that lane's ring does (no
//! read-modify-write shared with other producers). A lane whose producer exited or died has no
//! lease holder (the kernel releases it with the process), and its next owner continues the
//! lane's numbering where the last complete message left it, so readers see neither a gap nor a
//! duplicate. Readers and the consumer open every lane and take from them in rotation.
//!
//! The format is docs/segment-format.md, "Multi-producer streams and queues".

mod queue;
mod stream;

pub use queue::{LaneConsumer, LaneProducer};
pub use stream::{LaneReader, LaneWriter};

use super::{expect_ring, Sender};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{SegmentKind, MAX_LANES, MAX_STREAM_CAPACITY};
use crate::layout::LayoutBuf;
use crate::raw_writer::Make;
use crate::segment::{Expect, Segment, Spec};
use crate::sys::Access;
use crate::{Options, SharedState};
use core::sync::atomic::Ordering;
use std::time::Duration;

/// The name of lane `lane` of the multi-producer stream or queue `name`: `name.lane-K`.
pub fn lane_name(name: &str, lane: usize) -> String {
    format!("{name}.lane-{lane}")
}

/// Nanoseconds on `CLOCK_MONOTONIC`: the same clock in every process of the host, never going
/// back. A send time to put in a message for [`LaneReader::try_recv_ordered`].
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given;
    // `CLOCK_MONOTONIC` always exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a lanes directory says: read by every handle when it opens the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanesInfo {
    /// The directory segment's own facts (its kind is [`SegmentKind::Lanes`]).
    pub segment: crate::SegmentInfo,
    /// The directory's name.
    pub name: String,
    /// What each lane is: [`SegmentKind::Stream`] or [`SegmentKind::Queue`].
    pub lane_kind: SegmentKind,
    /// The number of lanes (of producers that can send at once).
    pub lanes: usize,
    /// Each lane's capacity in messages.
    pub capacity: usize,
    /// The messages' layout (each lane stores it too).
    pub layout: LayoutBuf,
}

impl LanesInfo {
    /// The names of the lanes' segments, lane 0 first.
    pub fn lane_names(&self) -> Vec<String> {
        (0..self.lanes).map(|k| lane_name(&self.name, k)).collect()
    }
}

/// Opens the lanes directory `name` as `expect` says and reads it; the directory is closed
/// again (nothing in it changes after it is ready).
fn read_directory(
    backend: &Backend,
    name: &str,
    ready_wait: Duration,
    expect: &Expect,
) -> Result<LanesInfo> {
    let seg = Segment::open(backend, name, Access::ReadOnly, ready_wait, expect)?;
    let d = seg
        .lane_directory()
        .expect("a lanes segment has a directory line");
    let lanes = d.lanes.load(Ordering::Relaxed) as usize;
    let capacity = d.capacity.load(Ordering::Relaxed);
    let lane_kind = match SegmentKind::from_code(d.lane_kind.load(Ordering::Relaxed)) {
        Some(k @ (SegmentKind::Stream | SegmentKind::Queue)) => k,
        _ => {
            return Err(Error::Corrupt {
                what: "a lanes directory names a lane kind other than stream or queue",
            })
        }
    };
    if !(1..=MAX_LANES).contains(&lanes) || !(1..=MAX_STREAM_CAPACITY as u64).contains(&capacity) {
        return Err(Error::Corrupt {
            what: "a lanes directory's lane count or capacity is out of range",
        });
    }
    Ok(LanesInfo {
        segment: seg.info(),
        name: name.to_string(),
        lane_kind,
        lanes,
        capacity: capacity as usize,
        layout: seg.layout().clone(),
    })
}

/// Reads the directory of a multi-producer stream or queue of `T` whose lanes must be
/// `lane_kind` ([`Error::WrongKind`] if they are the other kind).
fn directory_of<T: SharedState>(
    options: &Options,
    name: &str,
    lane_kind: SegmentKind,
) -> Result<LanesInfo> {
    let dir = read_directory(
        options.chosen_backend(),
        name,
        options.make().ready_wait,
        &expect_ring::<T>(SegmentKind::Lanes),
    )?;
    if dir.lane_kind != lane_kind {
        return Err(Error::WrongKind {
            expected: lane_kind,
            found: dir.lane_kind,
        });
    }
    Ok(dir)
}

/// Creates the directory `name` for `lanes` lanes of `lane_kind` with `capacity` messages of
/// `T` each, and the lanes; returns the sender of lane 0 (the others' leases are released).
///
/// The directory is created first (its name, taken exclusively, decides between racing
/// creators) and its lanes before it is marked ready, so that every opener that finds it ready
/// finds its lanes. If a lane cannot be created, everything made is removed.
///
/// # Panics
/// If `lanes` is 0 or more than 1024, or `capacity` is 0 or more than 2^24.
fn create_lanes<T: SharedState>(
    backend: &Backend,
    make: &Make,
    name: &str,
    lane_kind: SegmentKind,
    lanes: usize,
    capacity: usize,
) -> Result<Sender> {
    assert!(
        (1..=MAX_LANES).contains(&lanes),
        "a multi-producer stream has between 1 and {MAX_LANES} lanes, got {lanes}"
    );
    assert!(
        (1..=MAX_STREAM_CAPACITY).contains(&capacity),
        "stream capacity must be between 1 and {MAX_STREAM_CAPACITY} messages, got {capacity}"
    );
    let layout = LayoutBuf::from(T::LAYOUT);
    let spec = Spec {
        layout: &layout,
        hash: T::LAYOUT_HASH,
        slots: 1,
        mode: make.mode,
        crash_before_ready: false,
        kind: SegmentKind::Lanes,
        turns: false,
    };
    let mut made: Vec<Sender> = Vec::with_capacity(lanes);
    let mut failed = None;
    let dir = Segment::create(backend, name, &spec, |seg| {
        let d = seg
            .lane_directory()
            .expect("a lanes segment has a directory line");
        d.lanes.store(lanes as u32, Ordering::Relaxed);
        d.lane_kind.store(lane_kind.code(), Ordering::Relaxed);
        d.capacity.store(capacity as u64, Ordering::Relaxed);
        for k in 0..lanes {
            match Sender::create::<T>(backend, &lane_name(name, k), make, lane_kind, capacity) {
                Ok(tx) => made.push(tx),
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            }
        }
    })?;
    drop(dir);
    if let Some(e) = failed {
        for k in 0..made.len() {
            let _ = backend.unlink(&lane_name(name, k));
        }
        let _ = backend.unlink(name);
        return Err(e);
    }
    // Lane 0 stays with the creator; the other lanes' leases are released here.
    made.truncate(1);
    Ok(made.pop().expect("at least one lane"))
}

/// Takes a free lane of the multi-producer stream or queue `dir` describes: opens the lanes
/// as their writer in turn, from a lane chosen by the process id (so that producers starting
/// together try different lanes first), until one's lease is free. Returns the lane and its
/// sender, which continues the lane's numbering.
fn join<T: SharedState>(options: &Options, dir: &LanesInfo) -> Result<(usize, Sender)> {
    let first = std::process::id() as usize % dir.lanes;
    for i in 0..dir.lanes {
        let lane = (first + i) % dir.lanes;
        match Sender::open::<T>(
            options.chosen_backend(),
            &lane_name(&dir.name, lane),
            dir.lane_kind,
            options.make().ready_wait,
            false,
        ) {
            Ok(tx) => return Ok((lane, tx)),
            Err(Error::WriterBusy { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::NoFreeLane {
        lanes: dir.lanes as u32,
    })
}

impl Options {
    /// Creates the multi-producer stream `name` with `lanes` lanes (the most producers that
    /// send at once) of `capacity` messages of `T` each, and returns the producer of lane 0
    /// (drop it to free the lane). Fails with [`AlreadyExists`](Error::AlreadyExists) if the
    /// name or a lane's name is taken.
    ///
    /// # Panics
    /// If `lanes` is 0 or more than 1024, or `capacity` is 0 or more than 2^24.
    pub fn create_lanes<T: SharedState>(
        &self,
        name: &str,
        lanes: usize,
        capacity: usize,
    ) -> Result<LaneWriter<T>> {
        let tx = create_lanes::<T>(
            self.chosen_backend(),
            &self.make(),
            name,
            SegmentKind::Stream,
            lanes,
            capacity,
        )?;
        Ok(LaneWriter::of(0, lanes, tx))
    }

    /// Joins the multi-producer stream `name` as a producer: takes a free lane (see
    /// [`LaneWriter`]), or fails with [`NoFreeLane`](Error::NoFreeLane) while every lane has
    /// a live producer.
    pub fn join_stream<T: SharedState>(&self, name: &str) -> Result<LaneWriter<T>> {
        let dir = directory_of::<T>(self, name, SegmentKind::Stream)?;
        let (lane, tx) = join::<T>(self, &dir)?;
        Ok(LaneWriter::of(lane, dir.lanes, tx))
    }

    /// Subscribes to every lane of the multi-producer stream `name`: the reader receives the
    /// messages sent from now on.
    pub fn subscribe_lanes<T: SharedState>(&self, name: &str) -> Result<LaneReader<T>> {
        LaneReader::open(self, name, super::reader::Start::Newest)
    }

    /// Subscribes to every lane of the multi-producer stream `name`, from the oldest message
    /// each lane still holds.
    pub fn subscribe_lanes_from_oldest<T: SharedState>(&self, name: &str) -> Result<LaneReader<T>> {
        LaneReader::open(self, name, super::reader::Start::Oldest)
    }

    /// Creates the multi-producer queue `name` with `lanes` lanes of `capacity` messages of
    /// `T` not yet taken each, and returns the producer of lane 0 (drop it to free the lane).
    ///
    /// # Panics
    /// If `lanes` is 0 or more than 1024, or `capacity` is 0 or more than 2^24.
    pub fn create_lane_queue<T: SharedState>(
        &self,
        name: &str,
        lanes: usize,
        capacity: usize,
    ) -> Result<LaneProducer<T>> {
        let tx = create_lanes::<T>(
            self.chosen_backend(),
            &self.make(),
            name,
            SegmentKind::Queue,
            lanes,
            capacity,
        )?;
        Ok(LaneProducer::of(0, lanes, tx))
    }

    /// Joins the multi-producer queue `name` as a producer: takes a free lane, or fails with
    /// [`NoFreeLane`](Error::NoFreeLane) while every lane has a live producer.
    pub fn join_queue<T: SharedState>(&self, name: &str) -> Result<LaneProducer<T>> {
        let dir = directory_of::<T>(self, name, SegmentKind::Queue)?;
        let (lane, tx) = join::<T>(self, &dir)?;
        Ok(LaneProducer::of(lane, dir.lanes, tx))
    }

    /// Opens the multi-producer queue `name` as its consumer: takes every lane's consumer
    /// lease ([`ConsumerBusy`](Error::ConsumerBusy) while another live consumer has it) and
    /// continues each lane after the last message taken from it.
    pub fn open_lane_consumer<T: SharedState>(&self, name: &str) -> Result<LaneConsumer<T>> {
        LaneConsumer::open(self, name)
    }

    /// What the lanes directory `name` says, whatever its message type: for tools.
    pub fn lanes_info(&self, name: &str) -> Result<LanesInfo> {
        read_directory(
            self.chosen_backend(),
            name,
            self.make().ready_wait,
            &Expect::AnyLanes,
        )
    }

    /// Removes the multi-producer stream or queue `name`: its lanes, then its directory.
    /// Handles still open keep working on the removed segments; no new handle can open them.
    pub fn remove_lanes(&self, name: &str) -> Result<()> {
        let dir = self.lanes_info(name)?;
        for lane in dir.lane_names() {
            match self.chosen_backend().unlink(&lane) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.chosen_backend().unlink(name)
    }
}

/// Removes the multi-producer stream or queue `name` (POSIX shared memory): its lanes, then
/// its directory. See [`Options::remove_lanes`].
pub fn remove_lanes(name: &str) -> Result<()> {
    Options::new().remove_lanes(name)
}
