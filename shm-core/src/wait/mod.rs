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

mod armed;
mod deadline;
mod engine;
mod future;
mod futex;
mod register;
mod set;
mod threads;
mod uring;

pub(crate) use deadline::Deadline;
pub(crate) use futex::{load_for_wait, wait_until, Pace, WAIT_SLICE_OVERRIDE_MS};
pub use future::Changed;
pub(crate) use armed::Target;
pub(crate) use future::AsyncWait;
pub(crate) use engine::NO_SLICE;
pub use engine::WaitBackend;
pub(crate) use register::{
    barrier_after_registering, register_waiter, unregister_waiter, SKIP_BARRIER,
};
pub use set::{Key, WaitSet, Waitable};
