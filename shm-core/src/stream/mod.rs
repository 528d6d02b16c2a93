//! Streams: every value, in order, on the segment format and protocol family of shared state.
//!
//! - A broadcast stream: one [`StreamWriter`] sends, any number of [`StreamReader`]s each
//!   receive every message in order; the writer never waits and overwrites the oldest message,
//!   and a reader that falls behind by more than the capacity is told how many it lost
//!   ([`Error::Lagged`]).
//! - A queue with backpressure: one [`QueueProducer`] sends, one [`QueueConsumer`] takes each
//!   message exactly once; the producer waits (or gets [`Error::Full`]) instead of
//!   overwriting, and the consumer's position lives in the segment, so a restarted consumer
//!   continues where the previous one stopped.
//!
//! The protocol is `protocol/stream.rs`; this module holds the handles and how they create and
//! open segments (`segment.rs`, with a segment kind in the header).

pub mod lanes;
mod options;
mod queue;
mod raw;
mod raw_writer;
mod reader;
mod writer;

pub use lanes::{LaneConsumer, LaneProducer, LaneReader, LaneWriter};
pub use queue::{QueueConsumer, QueueProducer};
pub use raw::RawStreamReader;
pub use raw_writer::RawStreamWriter;
pub use reader::{Iter, StreamReader, TryIter};
pub use writer::StreamWriter;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{SegmentKind, MAX_STREAM_CAPACITY};
use crate::layout::LayoutBuf;
use crate::protocol::{self, stream::QueueWords};
use crate::raw_writer::Make;
use crate::segment::{Expect, Segment, Spec};
use crate::sys::{self, Access};
use crate::wait::Deadline;
use crate::SharedState;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// What an opener of a stream or queue segment of `T` expects.
fn expect_ring<T: SharedState>(kind: SegmentKind) -> Expect {
    Expect::Ring {
        kind,
        layout: LayoutBuf::from(T::LAYOUT),
        hash: T::LAYOUT_HASH,
    }
}

/// What every sending handle (a stream's writer, a queue's producer) is: the segment, with
/// the writer lease, and the number of the last message sent.
pub(crate) struct Sender {
    seg: Segment,
    /// The number of the last message sent (0: none).
    sent: u64,
    /// Whether this handle created the segment (as opposed to taking it over).
    created: bool,
}

impl Sender {
    /// Creates a stream or queue segment for `capacity` messages of `T`, with the writer lease.
    ///
    /// # Panics
    /// If `capacity` is 0 or more than 2^24.
    fn create<T: SharedState>(
        backend: &Backend,
        name: &str,
        make: &Make,
        kind: SegmentKind,
        capacity: usize,
    ) -> Result<Sender> {
        #[allow(clippy::let_unit_value)]
        let () = crate::payload::NonEmpty::<T>::CHECK;
        assert!(
            (1..=MAX_STREAM_CAPACITY).contains(&capacity),
            "stream capacity must be between 1 and {MAX_STREAM_CAPACITY} messages, got {capacity}"
        );
        let layout = LayoutBuf::from(T::LAYOUT);
        Sender::create_described(
            backend,
            name,
            make,
            kind,
            (&layout, T::LAYOUT_HASH),
            capacity,
            0,
        )
    }

    /// Creates a stream or queue segment for `capacity` messages described by `layout` (and
    /// its hash), with the writer lease, whose last message sent is `last_sent` (0 for a new
    /// stream): readers first see `published` at `last_sent`. The caller checked the layout
    /// and the capacity.
    fn create_described(
        backend: &Backend,
        name: &str,
        make: &Make,
        kind: SegmentKind,
        (layout, hash): (&LayoutBuf, u64),
        capacity: usize,
        last_sent: u64,
    ) -> Result<Sender> {
        let spec = Spec {
            layout,
            hash,
            slots: capacity,
            mode: make.mode,
            crash_before_ready: make.crash_before_ready,
            kind,
            turns: false,
        };
        // Every slot's sequence word is 0, which no message number completes; before the
        // segment is ready nobody can open it, so readers first see `published` at `last_sent`.
        let seg = Segment::create(backend, name, &spec, |seg| {
            seg.header().published.store(last_sent, Ordering::Relaxed);
        })?;
        // The writer publishes as `raw_writer::announce_mode` says.
        sys::register_as_barrier_target();
        Ok(Sender {
            seg,
            sent: last_sent,
            created: true,
        })
    }

    /// Opens a stream or queue segment of `T` as its writer (the producer of a queue).
    fn open<T: SharedState>(
        backend: &Backend,
        name: &str,
        kind: SegmentKind,
        ready_wait: Duration,
        adopt: bool,
    ) -> Result<Sender> {
        Sender::open_expecting(backend, name, ready_wait, &expect_ring::<T>(kind), adopt)
    }

    /// Opens the stream or queue segment `name`, which must be as `expect` says, as its
    /// writer: takes the writer lease, records a new epoch and this process as the writer,
    /// wakes waiters a writer that died may have left asleep, and continues the numbering
    /// where the last complete message left it.
    fn open_expecting(
        backend: &Backend,
        name: &str,
        ready_wait: Duration,
        expect: &Expect,
        adopt: bool,
    ) -> Result<Sender> {
        let mut seg = Segment::open(backend, name, Access::ReadWrite, ready_wait, expect)?;
        seg.take_writer_lease()?;
        // Another version of the writer's appendable type: only when adopting (before
        // anything is recorded, so that a refused writer leaves no trace).
        if let (false, Some((program, hash))) = (adopt, expect.typed()) {
            if seg.compat() != crate::Compat::Exact {
                let queue = matches!(
                    expect,
                    Expect::Ring {
                        kind: SegmentKind::Queue,
                        ..
                    }
                );
                return Err(crate::raw_writer::not_adopted(&seg, program, hash, !queue));
            }
        }
        // We hold the lease: nobody else writes. Record the takeover (refused at the maximal
        // epoch, as a state writer's is).
        seg.record_takeover()?;
        sys::register_as_barrier_target();
        wake_all(&seg.header().futex);
        // A writer that died mid-send left that message unpublished: its number is used again,
        // so readers see neither a gap nor a duplicate.
        let sent = protocol::stream::take_over(&seg);
        Ok(Sender {
            seg,
            sent,
            created: false,
        })
    }

    /// The number the next message gets.
    #[inline(always)]
    fn next(&self) -> u64 {
        self.sent.wrapping_add(1)
    }

    /// Records message `number` as sent, and wakes the readers waiting for it if the send
    /// said so (`wake`).
    #[inline(always)]
    fn sent(&mut self, number: u64, wake: bool) {
        self.sent = number;
        if wake {
            wake_all(&self.seg.header().futex);
        }
    }
}

/// The receive loop of every receiving handle: `try_recv` on `handle`, and while it finds
/// nothing, `wait` for more (`false`: `deadline` passed, [`Error::Timeout`]).
fn receive_until<H, R>(
    handle: &mut H,
    deadline: Deadline,
    mut try_recv: impl FnMut(&mut H) -> Result<Option<R>>,
    wait: impl Fn(&H, Deadline) -> bool,
) -> Result<R> {
    loop {
        if let Some(received) = try_recv(handle)? {
            return Ok(received);
        }
        if !wait(handle, deadline) {
            return Err(Error::Timeout);
        }
    }
}

/// Bumps a futex word and wakes every process waiting on it.
fn wake_all(futex: &AtomicU32) {
    futex.fetch_add(1, Ordering::SeqCst);
    sys::futex_wake_all(futex);
}

/// Whether a test hook asked a consumer to die between a commit and the wake it owes a
/// waiting producer (`__private::hooks::kill_consumer_between_commit_and_wake`).
pub(crate) static KILL_BETWEEN_COMMIT_AND_WAKE: AtomicBool = AtomicBool::new(false);

/// Kills this process if a test hook asked for it: called by a consumer after a commit that
/// owes a waiting producer a wake, before the wake. Only on that path (once per wait of the
/// producer), never on a receive that wakes nobody.
#[cold]
fn killed_between_commit_and_wake() {
    if KILL_BETWEEN_COMMIT_AND_WAKE.load(Ordering::Relaxed) {
        // SAFETY: `kill` of our own process id with SIGKILL, which has no handler: the process
        // ends here, as one killed by another would.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

impl QueueWords for Segment {
    #[inline(always)]
    fn consumed(&self) -> &AtomicU64 {
        &self.control().expect("a queue segment").consumed
    }

    #[inline(always)]
    fn space_wanted(&self) -> &AtomicU64 {
        &self.control().expect("a queue segment").space_wanted
    }

    #[inline(always)]
    fn space_waiters_registered(&self, order: Ordering) -> bool {
        self.control()
            .expect("a queue segment")
            .space_waiters
            .load(order)
            != 0
    }
}
