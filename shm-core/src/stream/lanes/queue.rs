//! [`LaneProducer`] and [`LaneConsumer`]: a multi-producer queue, each lane a queue with its
//! own backpressure and its own consumer position.

use super::stream::WAIT_SLICE;
use super::{directory_of, lane_name};
use crate::error::{Error, Result};
use crate::format::SegmentKind;
use crate::stream::{QueueConsumer, QueueProducer, Sender};
use crate::wait::{self, Deadline};
use crate::{Options, SharedState};
use std::time::Duration;

/// Sends messages of `T` to one lane of a multi-producer queue: a [`QueueProducer`] of its
/// lane, holding that lane's writer lease.
///
/// Backpressure is per lane: [`try_send`](Self::try_send) fails with [`Error::Full`] and
/// [`send`](Self::send) waits while this lane holds its capacity of messages not taken, whatever
/// the other lanes hold. A producer that dies mid-send costs nothing but that one message,
/// which was never delivered: the lane's next producer gives its number to its own first
/// message, and the other lanes never wait for it.
pub struct LaneProducer<T: SharedState> {
    lane: usize,
    lanes: usize,
    tx: QueueProducer<T>,
}

impl<T: SharedState> LaneProducer<T> {
    pub(super) fn of(lane: usize, lanes: usize, tx: Sender) -> Self {
        LaneProducer {
            lane,
            lanes,
            tx: QueueProducer::of(tx),
        }
    }

    /// Sends `value` if this lane has room, else fails with [`Error::Full`]: see
    /// [`QueueProducer::try_send`].
    #[inline]
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.tx.try_send(value)
    }

    /// Sends `value`, waiting as long as it takes for room on this lane.
    pub fn send(&mut self, value: &T) {
        self.tx.send(value)
    }

    /// Sends `value`, waiting at most `timeout` for room on this lane ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<()> {
        self.tx.send_timeout(value, timeout)
    }

    /// The lane this producer holds, `0..lanes()`.
    pub fn lane(&self) -> usize {
        self.lane
    }

    /// The number of lanes of the queue.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// The number of messages sent on this lane since the queue was created, by this producer
    /// and the lane's producers before it: the lane number of the last message sent.
    pub fn sent(&self) -> u64 {
        self.tx.sent()
    }

    /// The lane's producer underneath.
    pub fn lane_producer(&self) -> &QueueProducer<T> {
        &self.tx
    }
}

impl<T: SharedState> core::fmt::Debug for LaneProducer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LaneProducer")
            .field("lane", &self.lane)
            .field("lanes", &self.lanes)
            .field("producer", &self.tx)
            .finish()
    }
}

/// Takes the messages of every lane of a multi-producer queue, each exactly once: a
/// [`QueueConsumer`] per lane, taken in rotation.
///
/// Each lane keeps its own consumer position in its own segment, so a consumer that exits or
/// dies and is opened again continues every lane with the first message no consumer took from
/// it. Within a lane (one producer's sends) messages come in order; across lanes there is no
/// order, and each receive starts with the lane after the last one it took from, so no lane is
/// favoured.
pub struct LaneConsumer<T: SharedState> {
    lanes: Vec<QueueConsumer<T>>,
    next: usize,
    last: usize,
}

impl<T: SharedState> LaneConsumer<T> {
    pub(super) fn open(options: &Options, name: &str) -> Result<Self> {
        let dir = directory_of::<T>(options, name, SegmentKind::Queue)?;
        let lanes = (0..dir.lanes)
            .map(|k| {
                QueueConsumer::open(
                    options.chosen_backend(),
                    &lane_name(name, k),
                    options.make().ready_wait,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LaneConsumer {
            lanes,
            next: 0,
            last: 0,
        })
    }

    /// Takes the next message of any lane if there is one, without waiting (`Ok(None)` if
    /// none).
    pub fn try_recv(&mut self) -> Result<Option<T>> {
        let n = self.lanes.len();
        for i in 0..n {
            let lane = (self.next + i) % n;
            if let Some(v) = self.lanes[lane].try_recv()? {
                self.last = lane;
                self.next = (lane + 1) % n;
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Takes the next message of any lane, waiting for it as long as it takes.
    pub fn recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::never())
    }

    /// Takes the next message of any lane, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout))
    }

    fn recv_until(&mut self, deadline: Deadline) -> Result<T> {
        loop {
            if let Some(v) = self.try_recv()? {
                return Ok(v);
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            // One sleep on every lane's futex word; where that is not possible, one lane at a
            // time, briefly.
            let targets: Vec<_> = self.lanes.iter().map(QueueConsumer::any_target).collect();
            if wait::wait_any(&targets, deadline).is_some() {
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

    /// The lane of the last message taken.
    pub fn last_lane(&self) -> usize {
        self.last
    }

    /// The number of lanes.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The number of messages taken from `lane` since the queue was created, by this consumer
    /// and the consumers before it: the lane number of the last message taken from it.
    ///
    /// # Panics
    /// If `lane` is not below [`lanes`](Self::lanes).
    pub fn taken(&self, lane: usize) -> u64 {
        self.lanes[lane].taken()
    }

    /// The number of messages sent on any lane and not taken yet.
    pub fn backlog(&self) -> u64 {
        self.lanes.iter().map(QueueConsumer::backlog).sum()
    }

    /// The consumer of `lane` underneath.
    ///
    /// # Panics
    /// If `lane` is not below [`lanes`](Self::lanes).
    pub fn lane_consumer(&self, lane: usize) -> &QueueConsumer<T> {
        &self.lanes[lane]
    }
}

impl<T: SharedState> core::fmt::Debug for LaneConsumer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LaneConsumer")
            .field("lanes", &self.lanes)
            .finish()
    }
}
