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

mod options;
mod queue;
mod raw;
mod reader;
mod writer;

pub use queue::{QueueConsumer, QueueProducer};
pub use raw::RawStreamReader;
pub use reader::{Iter, StreamReader, TryIter};
pub use writer::StreamWriter;

use crate::backend::Backend;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::format::{SegmentKind, MAX_STREAM_CAPACITY};
use crate::layout::LayoutBuf;
use crate::protocol::stream::QueueWords;
use crate::raw_writer::Make;
use crate::segment::{Expect, Segment, Spec};
use crate::sys::{self, Access};
use crate::SharedState;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Longest single futex sleep: a peer that dies between changing a word and waking cannot
/// strand a waiter for longer than this.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// Checks of the awaited condition before a waiter goes to sleep on the futex: a message that
/// arrives within a microsecond or so is taken without two syscalls.
const SPINS_BEFORE_SLEEP: u32 = 128;

/// What an opener of a stream or queue segment of `T` expects.
fn expect_ring<T: SharedState>(kind: SegmentKind) -> Expect {
    Expect::Ring {
        kind,
        layout: LayoutBuf::from(T::LAYOUT),
        hash: T::LAYOUT_HASH,
    }
}

/// Creates a stream or queue segment for `capacity` messages of `T`, with the writer lease.
///
/// # Panics
/// If `capacity` is 0 or more than 2^24.
fn create_ring<T: SharedState>(
    backend: &Backend,
    name: &str,
    make: &Make,
    kind: SegmentKind,
    capacity: usize,
) -> Result<Segment> {
    #[allow(clippy::let_unit_value)]
    let () = crate::payload::NonEmpty::<T>::CHECK;
    assert!(
        (1..=MAX_STREAM_CAPACITY).contains(&capacity),
        "stream capacity must be between 1 and {MAX_STREAM_CAPACITY} messages, got {capacity}"
    );
    let layout = LayoutBuf::from(T::LAYOUT);
    let spec = Spec {
        layout: &layout,
        hash: T::LAYOUT_HASH,
        slots: capacity,
        mode: make.mode,
        crash_before_ready: make.crash_before_ready,
        kind,
    };
    // Nothing to fill: every slot's sequence word is 0, which no message number completes,
    // and `published` is 0 (no message yet).
    let seg = Segment::create(backend, name, &spec, |_| {})?;
    // The writer publishes as `raw_writer::announce_mode` says.
    sys::register_as_barrier_target();
    Ok(seg)
}

/// Opens a stream or queue segment of `T` as its writer (the producer of a queue): takes the
/// writer lease, records a new epoch and this process as the writer, and wakes waiters a
/// writer that died may have left asleep.
fn open_ring_writer<T: SharedState>(
    backend: &Backend,
    name: &str,
    kind: SegmentKind,
    ready_wait: Duration,
) -> Result<Segment> {
    let mut seg = Segment::open(
        backend,
        name,
        Access::ReadWrite,
        ready_wait,
        &expect_ring::<T>(kind),
    )?;
    if !seg.take_lease(sys::try_lock_writer)? {
        return Err(Error::WriterBusy {
            pid: seg.header().writer_pid.load(Ordering::Relaxed),
        });
    }
    let h = seg.header();
    // We hold the lease: nobody else writes. Record the takeover.
    h.writer_epoch.fetch_add(1, Ordering::Relaxed);
    h.writer_pid.store(sys::pid(), Ordering::Relaxed);
    sys::register_as_barrier_target();
    wake_all(&h.futex);
    Ok(seg)
}

/// Bumps a futex word and wakes every process waiting on it.
fn wake_all(futex: &AtomicU32) {
    futex.fetch_add(1, Ordering::SeqCst);
    sys::futex_wake_all(futex);
}

/// Waits until `ready()` holds or `deadline` passes (`false`): spins briefly, then sleeps on
/// `futex` registered in `waiters`, with the registration protocol of
/// `docs/segment-format.md` ("Waiting for an update"): count ourselves as a waiter, make the
/// `membarrier` barrier, read the futex word, re-check with SeqCst loads (`ready`), sleep only
/// if the word is unchanged. The side that makes `ready()` true stores, then checks the waiter
/// count (see `protocol::Announce`), so either we see its store or it sees us and bumps the
/// word.
///
/// A process that mapped the segment read-only cannot register (`can_register` false) and
/// polls instead.
fn wait_until(
    futex: &AtomicU32,
    waiters: &AtomicU32,
    can_register: bool,
    deadline: Deadline,
    mut ready: impl FnMut() -> bool,
) -> bool {
    for _ in 0..SPINS_BEFORE_SLEEP {
        if ready() {
            return true;
        }
        core::hint::spin_loop();
    }
    if !can_register {
        loop {
            if ready() {
                return true;
            }
            let Some(left) = deadline.next_slice(Duration::from_micros(200)) else {
                return false;
            };
            std::thread::sleep(left);
        }
    }
    waiters.fetch_add(1, Ordering::SeqCst);
    // The waiter's half of the barrier a writer that publishes without a locked instruction
    // relies on (see `protocol::Announce`). A producer waiting for room pairs with the
    // consumer's commit, a SeqCst swap, which needs no help; the barrier costs it one system
    // call on a path that sleeps anyway.
    crate::raw_reader::barrier_after_registering();
    let done = loop {
        let word = futex.load(Ordering::SeqCst);
        if ready() {
            break true;
        }
        let Some(left) = deadline.next_slice(WAIT_SLICE) else {
            break false;
        };
        sys::futex_wait(futex, word, left);
    };
    waiters.fetch_sub(1, Ordering::SeqCst);
    done
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
    fn space_waiters_registered(&self) -> bool {
        self.control()
            .expect("a queue segment")
            .space_waiters
            .load(Ordering::SeqCst)
            != 0
    }
}
