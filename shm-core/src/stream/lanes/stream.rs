//! [`LaneWriter`] and [`LaneReader`]: a multi-producer broadcast stream.

use super::{directory_of, lane_name};
use crate::error::{Error, Result};
use crate::format::SegmentKind;
use crate::raw_reader::RawReader;
use crate::stream::reader::Start;
use crate::stream::{expect_ring, Sender, StreamReader, StreamWriter};
use crate::wait::{self, Deadline};
use crate::{Options, SharedState};
use std::time::Duration;

/// How long a receive that waits sleeps on one lane before it looks at all of them again,
/// where it cannot sleep on all of them at once.
pub(super) const WAIT_SLICE: Duration = Duration::from_millis(1);

/// Sends messages of `T` to one lane of a multi-producer stream: a [`StreamWriter`] of its
/// lane's ring, holding that lane's writer lease.
///
/// [`send`](Self::send) is exactly a stream writer's send: it never blocks, overwrites the
/// oldest message of its lane, and shares no read-modify-write with other producers. When the
/// producer is dropped or its process dies, the kernel releases the lane's lease; the next
/// producer that joins may take the lane and continues its numbering.
///
/// ```no_run
/// use shm_core::SharedState;
/// # #[derive(SharedState, Clone, Copy)] #[repr(C)] struct Fill { price: f64, qty: u64 }
/// let mut tx = Fill::join_stream("/fills")?;      // made by Fill::create_lanes("/fills", 8, 1024)
/// tx.send(&Fill { price: 101.5, qty: 3 });
/// # Ok::<(), shm_core::Error>(())
/// ```
pub struct LaneWriter<T: SharedState> {
    lane: usize,
    lanes: usize,
    tx: StreamWriter<T>,
}

impl<T: SharedState> LaneWriter<T> {
    pub(super) fn of(lane: usize, lanes: usize, tx: Sender) -> Self {
        LaneWriter {
            lane,
            lanes,
            tx: StreamWriter::of(tx),
        }
    }

    /// Sends `value` on this producer's lane: see [`StreamWriter::send`].
    #[inline]
    pub fn send(&mut self, value: &T) {
        self.tx.send(value)
    }

    /// The lane this producer holds, `0..lanes()`.
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// The number of lanes of the stream.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// The number of messages sent on this lane since the stream was created, by this
    /// producer and the lane's producers before it: the lane number of the last message sent.
    pub fn sent(&self) -> u64 {
        self.tx.sent()
    }

    /// The lane's writer underneath.
    pub fn lane_writer(&self) -> &StreamWriter<T> {
        &self.tx
    }
}

impl<T: SharedState> core::fmt::Debug for LaneWriter<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LaneWriter")
            .field("lane", &self.lane)
            .field("lanes", &self.lanes)
            .field("writer", &self.tx)
            .finish()
    }
}

/// Receives the messages of every lane of a multi-producer stream: a [`StreamReader`] per
/// lane, taken in rotation.
///
/// Each receive looks at the lanes in turn, starting after the lane of the last message
/// returned, so a busy lane cannot starve the others. Within a lane (so within one
/// producer's sends) messages come in order, never duplicated; across lanes there is no order
/// (a message's lane and lane number say where it came from: [`last_lane`](Self::last_lane),
/// [`position`](Self::position)).
///
/// A lane whose ring overwrote messages before this reader got to them reports the gap as a
/// stream reader does: [`Error::Lagged`] with the exact number lost on that lane, once;
/// [`last_lane`](Self::last_lane) then says which lane, and the lost messages are that lane's
/// numbers `position(lane) - missed .. position(lane)`.
pub struct LaneReader<T: SharedState> {
    lanes: Vec<StreamReader<T>>,
    /// Per lane, a message received and not returned yet (by an ordered receive, which looks
    /// at the next message of every lane before it picks one).
    heads: Vec<Option<T>>,
    /// The lane the next receive looks at first.
    next: usize,
    /// The lane of the last message or gap returned.
    last: usize,
}

impl<T: SharedState> LaneReader<T> {
    pub(super) fn open(options: &Options, name: &str, start: Start) -> Result<Self> {
        let dir = directory_of::<T>(options, name, SegmentKind::Stream)?;
        let expect = expect_ring::<T>(SegmentKind::Stream);
        let lanes = (0..dir.lanes)
            .map(|k| {
                let raw = RawReader::open_with(
                    options.chosen_backend(),
                    &lane_name(name, k),
                    options.make().ready_wait,
                    &expect,
                )?;
                Ok(StreamReader::from_raw(raw, start))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LaneReader {
            heads: lanes.iter().map(|_| None).collect(),
            lanes,
            next: 0,
            last: 0,
        })
    }

    /// Receives the next message of any lane if one was sent, without waiting: `Ok(None)` if
    /// none, or `Err(Error::Lagged { missed })` once per gap of a lane
    /// ([`last_lane`](Self::last_lane) names it).
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        let n = self.lanes.len();
        for i in 0..n {
            let lane = (self.next + i) % n;
            let head = self.heads[lane].take().map(Some).map(Ok);
            match head.unwrap_or_else(|| self.lanes[lane].try_recv()) {
                Ok(None) => continue,
                other => {
                    self.last = lane;
                    self.next = (lane + 1) % n;
                    return other;
                }
            }
        }
        Ok(None)
    }

    /// Receives the next message of any lane, waiting for it as long as it takes.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::never())
    }

    /// Receives, of the next message of every lane that has one, the one whose `key` is least
    /// (the lowest lane on a tie), without waiting: merges the lanes in the order of a key the
    /// messages carry, such as a send time ([`monotonic_ns`](super::monotonic_ns)).
    /// `Ok(None)` if no lane has a message; gaps are reported as by
    /// [`try_recv`](Self::try_recv).
    ///
    /// What is guaranteed: within a lane, messages come in order. Across lanes, if message A's
    /// send returned before message B's send began, and B's producer could know it (it learned
    /// it through shared memory: a reply, a stream it reads, a flag), then A's key is not
    /// greater than B's (for a key taken at the start of each send from a clock that never goes
    /// back, as `CLOCK_MONOTONIC` on one host) and this receive returns A before B: it looks
    /// at every lane, then once more at every lane that had nothing, after it saw B, and A was
    /// published before B. What is not: sends that overlap in time come in key order only if
    /// both are published when the receive looks; a message published after the receive
    /// picked a later key is returned after it. A lost message (`Lagged`) is not returned.
    pub fn try_recv_ordered<K: Ord>(&mut self, mut key: impl FnMut(&T) -> K) -> Result<Option<T>> {
        let n = self.lanes.len();
        for pass in 0..2 {
            for lane in 0..n {
                if self.heads[lane].is_none() {
                    match self.lanes[lane].try_recv() {
                        Ok(head) => self.heads[lane] = head,
                        Err(e) => {
                            self.last = lane;
                            return Err(e);
                        }
                    }
                }
            }
            if pass == 0 && self.heads.iter().all(Option::is_none) {
                return Ok(None);
            }
        }
        let lane = (0..n)
            .filter(|&l| self.heads[l].is_some())
            .min_by_key(|&l| key(self.heads[l].as_ref().expect("filtered")))
            .expect("a lane has a message");
        self.last = lane;
        Ok(self.heads[lane].take())
    }

    /// [`try_recv_ordered`](Self::try_recv_ordered), waiting at most `timeout` for a message
    /// ([`Error::Timeout`]).
    pub fn recv_ordered_timeout<K: Ord>(
        &mut self,
        mut key: impl FnMut(&T) -> K,
        timeout: Duration,
    ) -> Result<T> {
        let deadline = Deadline::after(timeout);
        loop {
            if let Some(v) = self.try_recv_ordered(&mut key)? {
                return Ok(v);
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            if self.wait_all(deadline) {
                continue;
            }
            let Some(slice) = deadline.next_slice(WAIT_SLICE) else {
                return Err(Error::Timeout);
            };
            let lane = self.next;
            let _ = self.lanes[lane].wait_until(Deadline::after(slice));
            self.next = (lane + 1) % self.lanes.len();
        }
    }

    /// Receives the next message of any lane, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout))
    }

    fn recv_until(&mut self, deadline: Deadline) -> Result<T> {
        // Waits on every lane at once (`wait_all`); where that is not possible, on one lane at
        // a time, briefly, so that a message on any lane ends the wait within that slice.
        loop {
            if let Some(v) = self.try_recv()? {
                return Ok(v);
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            if self.wait_all(deadline) {
                continue;
            }
            let Some(slice) = deadline.next_slice(WAIT_SLICE) else {
                return Err(Error::Timeout);
            };
            let lane = self.next;
            let _ = self.lanes[lane].wait_until(Deadline::after(slice));
            self.next = (lane + 1) % self.lanes.len();
        }
    }

    /// Waits until a message is published on any lane (or one is already held), or
    /// `deadline`, in one sleep on every lane's futex word (`wait::wait_any`). `false`,
    /// without waiting, where that is not possible (a kernel before 5.16, more lanes than one
    /// call takes, a read-only mapping): the caller then waits on one lane at a time.
    fn wait_all(&self, deadline: Deadline) -> bool {
        if self.heads.iter().any(Option::is_some) {
            return true;
        }
        let targets: Option<Vec<_>> = self.lanes.iter().map(StreamReader::any_target).collect();
        targets.is_some_and(|t| wait::wait_any(&t, deadline).is_some())
    }

    /// The lane of the last message or gap returned.
    pub fn last_lane(&self) -> usize {
        self.last
    }

    /// The lane number of the next message this reader receives from `lane`.
    ///
    /// # Panics
    /// If `lane` is not below [`lanes`](Self::lanes).
    pub fn position(&self, lane: usize) -> u64 {
        self.lanes[lane].position() - u64::from(self.heads[lane].is_some())
    }

    /// The number of lanes.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The number of messages sent on `lane` so far, by all its producers.
    ///
    /// # Panics
    /// If `lane` is not below [`lanes`](Self::lanes).
    pub fn sent(&self, lane: usize) -> u64 {
        self.lanes[lane].sent()
    }

    /// The reader of `lane` underneath.
    ///
    /// # Panics
    /// If `lane` is not below [`lanes`](Self::lanes).
    pub fn lane_reader(&self, lane: usize) -> &StreamReader<T> {
        &self.lanes[lane]
    }
}

impl<T: SharedState> core::fmt::Debug for LaneReader<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LaneReader")
            .field("lanes", &self.lanes)
            .finish()
    }
}
