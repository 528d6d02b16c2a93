//! Waiting: the one place where a handle parks until another process changes a word in the
//! segment: the state reader's `wait_for_update`, the stream readers, and the queue's consumer
//! and producer.
//!
//! The protocol is the one `docs/segment-format.md` describes ("Waiting for an update"). A
//! waiter first checks what it waits for a few times without any system call; then it counts
//! itself in the segment's waiter count ([`register_waiter`]), makes the waiter's half of the
//! asymmetric barrier ([`barrier_after_registering`]), reads the futex word, re-checks with
//! SeqCst loads ([`load_for_wait`]), and sleeps on the futex only if the word is unchanged. The
//! side that makes the condition true stores, then reads the waiter count (see
//! `protocol::Announce`), and bumps the futex word and wakes if anybody is counted: either the
//! waiter's re-check sees the store, or the other side sees the waiter and its bump makes the
//! sleep return at once.
//!
//! Every sleep is cut into slices ([`Deadline::next_slice`]) so that a peer that dies between
//! its store and its wake strands nobody for longer than a slice. A process that mapped the
//! segment read-only cannot count itself, and a waiter that finds the count at its maximum
//! does not: both poll, with relaxed loads and acquire fences.
//!
//! - `register.rs`: the waiter count (a checked compare-and-swap) and the waiter's barrier.
//! - `futex.rs`: the loop ([`wait_until`]), its slices and the test hook for them.
//! - `deadline.rs`: [`Deadline`], the end of a bounded wait.
//!
//! ## Asynchronous waiting
//!
//! An asynchronous waiter follows the same protocol up to the sleep; then, instead of sleeping
//! itself, it has an engine sleep for it on the futex word with the value it read, and is
//! counted in the waiter count until that sleep has ended (woken, stale value, slice, writer
//! death, or cancelled). Writers cannot tell it from a blocked waiter.
//!
//! - `engine.rs`: the engine (a backend, the eventfd it signals, the table of armed waits),
//!   the choice of backend ([`WaitBackend`]: probe, option, `SHM_WAIT_BACKEND`), and the
//!   process's shared engine with its one thread, which drives every future.
//! - `uring.rs`: io_uring `FUTEX_WAIT` (Linux 6.7+) on the segment's own word as a shared
//!   futex, `POLL_ADD` on the writer's pidfd, linked timeouts for slices, `ASYNC_CANCEL`.
//! - `threads.rs`: the fallbacks: threads in `futex_waitv` (5.16+), 127 words each plus a
//!   control word, or a thread per wait in `FUTEX_WAIT`; and a thread that polls pidfds.
//! - `armed.rs`: one armed wait (register, barrier, read, re-check, arm; cancel on drop), and
//!   the writer's pidfd, verified against the lease after opening.
//! - `future.rs`: [`Changed`] (`Reader::changed`) and the waiting half of the stream and
//!   queue futures.
//! - `set.rs`: [`WaitSet`].
//! - `any.rs`: [`wait_any`], one blocking wait on several segments (a multi-producer
//!   stream's or queue's lanes) with `futex_waitv`.

mod any;
mod armed;
mod deadline;
mod engine;
mod futex;
mod future;
mod register;
mod set;
mod threads;
mod uring;

pub(crate) use any::{wait_any, AnyTarget};
pub(crate) use armed::Target;
pub(crate) use deadline::Deadline;
pub use engine::WaitBackend;
pub(crate) use engine::NO_SLICE;
pub(crate) use futex::{load_for_wait, wait_until, Pace, WAIT_SLICE_OVERRIDE_MS};
pub(crate) use future::AsyncWait;
pub use future::Changed;
pub(crate) use register::{
    barrier_after_registering, register_waiter, unregister_waiter, SKIP_BARRIER,
};
pub use set::{Key, WaitSet, Waitable};
