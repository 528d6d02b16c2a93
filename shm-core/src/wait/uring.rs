//! The io_uring backend: each armed wait is an `IORING_OP_FUTEX_WAIT` (Linux 6.7+) on the
//! segment's own futex word, waited as a shared futex (`FUTEX2_SIZE_U32`, no private flag), so
//! the writers' ordinary `FUTEX_WAKE` ends it and nothing changes on their side; a stale
//! expected value ends it at once (`EAGAIN`). A slice, when there is one, is a linked timeout.
//! If the writer is watched, a `POLL_ADD` on its pidfd ends the wait when the writer's process
//! does. Completions signal the engine's eventfd (`IORING_REGISTER_EVENTFD`).
//!
//! Every operation carries `id << 2 | tag` as its user data. A wait's outcome is decided by the
//! first of its futex and pidfd operations to complete, and reported at once; that completion
//! cancels the other operation. The ring itself keeps the words mapped and the pidfd open (the
//! wait's [`Watch`]) until every operation submitted for the wait has completed (the kernel
//! then holds nothing of it): reporting does not wait for the cancellation's round trip (its
//! completion runs on the thread that submitted the operation, and signals the eventfd again).

use super::engine::{Outcome, Sleeper, Watch};
use crate::sys;
use io_uring::{opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// User-data tags: the futex wait, the pidfd poll, the linked timeout, a cancellation.
const FUTEX: u64 = 0;
const POLL: u64 = 1;
const TIMEOUT: u64 = 2;
const CANCEL: u64 = 3;
/// `FUTEX_BITSET_MATCH_ANY`: the mask every `FUTEX_WAKE` matches.
const MATCH_ANY: u64 = u32::MAX as u64;
/// Submission queue entries.
const ENTRIES: u32 = 256;
/// Completion queue entries: room for the completions of hundreds of waits ending at once
/// (a wait posts up to five: its futex wait, linked timeout and pidfd poll, two
/// cancellations), 64 KiB. The kernel keeps an overflow (`IORING_FEAT_NODROP`) until it is
/// asked for completions again, which [`Ring::reap`] does when the ring says it overflowed.
const CQ_ENTRIES: u32 = 4096;

/// Whether io_uring futex waits work here (a ring can be made, and it knows the opcode).
pub(crate) fn supported() -> bool {
    let Ok(ring) = IoUring::new(2) else {
        return false;
    };
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok()
        && probe.is_supported(opcode::FutexWait::CODE)
        && probe.is_supported(opcode::PollAdd::CODE)
}

/// What a wait still has in the ring.
struct InFlight {
    /// Operations whose completion has not arrived.
    left: u8,
    /// Whether the pidfd poll is among them (and may need cancelling).
    polled: bool,
    /// Whether the first of the futex and the poll completed already (the outcome is then
    /// reported).
    first_done: bool,
    /// The words and the pidfd, kept until the kernel is done with them.
    _watch: Arc<Watch>,
    /// The linked timeout's duration, read by the kernel at the submission.
    _timespec: Option<Box<types::Timespec>>,
}

struct State {
    ring: IoUring,
    /// Submissions made by `arm` and `flush` (for a test hook).
    arm_submits: u64,
    waits: HashMap<u64, InFlight>,
    done: Vec<(u64, Outcome)>,
}

/// One ring, behind a lock (any thread may arm, cancel or reap).
pub(crate) struct Ring {
    state: Mutex<State>,
}

impl Ring {
    /// A ring that signals `eventfd` at every completion.
    pub fn new(eventfd: &OwnedFd) -> io::Result<Ring> {
        let ring = IoUring::builder().setup_cqsize(CQ_ENTRIES).build(ENTRIES)?;
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(Ring {
            state: Mutex::new(State {
                ring,
                arm_submits: 0,
                waits: HashMap::new(),
                done: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Queues `entries` (kept together: a link must not be split by a full queue), submitting
    /// first if they do not fit.
    ///
    /// # Safety
    /// Every address the entries carry must stay valid until the kernel is done with it (the
    /// timespec of a linked timeout: until the entries are submitted, here or later).
    unsafe fn push(&mut self, entries: &[squeue::Entry]) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: the caller's contract on the entries' addresses.
            if unsafe { self.ring.submission().push_multiple(entries) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Submits what is queued, retrying on `EINTR` and `EBUSY` (completions to reap first).
    fn submit(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.collect(),
                Err(e) => return Err(e),
            }
        }
    }

    /// Cancels the operation with user data `target` (best effort: its own completion comes).
    fn cancel_op(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target).build().user_data(CANCEL);
        // SAFETY: a cancellation carries no address.
        let _ = unsafe { self.push(&[entry]) };
    }

    /// Moves completions from the ring into `done`.
    fn collect(&mut self) {
        let cqes: Vec<(u64, i32)> = self
            .ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        let mut cancels = Vec::new();
        for (data, res) in cqes {
            let (id, tag) = (data >> 2, data & 3);
            if tag == CANCEL {
                continue;
            }
            let Some(w) = self.waits.get_mut(&id) else {
                continue;
            };
            w.left -= 1;
            if (tag == FUTEX || tag == POLL) && !w.first_done {
                w.first_done = true;
                if w.polled {
                    cancels.push(id << 2 | if tag == FUTEX { POLL } else { FUTEX });
                }
                // The outcome is decided: report it now (the wait's words stay pinned here
                // until its last operation completes).
                let died = tag == POLL && res > 0;
                self.done.push((
                    id,
                    if died {
                        Outcome::WriterDied
                    } else {
                        Outcome::Woken
                    },
                ));
            }
            if w.left == 0 {
                // Every wait has a futex operation, whose completion reported the outcome.
                debug_assert!(w.first_done);
                self.waits.remove(&id);
            }
        }
        for target in cancels {
            self.cancel_op(target);
        }
    }
}

impl Sleeper for Ring {
    fn arm(&self, id: u64, watch: Arc<Watch>, defer: bool) -> io::Result<()> {
        let mut s = self.lock();
        // Boxed, and kept with the wait: the kernel reads it at the submission, which may
        // come later (`defer`).
        let ts = watch.slice.map(|d| {
            Box::new(
                types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos()),
            )
        });
        let mut futex = opcode::FutexWait::new(
            watch.futex_addr(),
            u64::from(watch.expected),
            MATCH_ANY,
            sys::FUTEX2_SIZE_U32,
        )
        .build()
        .user_data(id << 2 | FUTEX);
        let mut entries = Vec::with_capacity(3);
        if let Some(ts) = &ts {
            futex = futex.flags(squeue::Flags::IO_LINK);
            entries.push(futex);
            entries.push(
                opcode::LinkTimeout::new(&**ts)
                    .build()
                    .user_data(id << 2 | TIMEOUT),
            );
        } else {
            entries.push(futex);
        }
        if let Some(pidfd) = &watch.pidfd {
            entries.push(
                opcode::PollAdd::new(types::Fd(pidfd.as_raw_fd()), libc::POLLIN as u32)
                    .build()
                    .user_data(id << 2 | POLL),
            );
        }
        // SAFETY: the futex word stays mapped while `watch` (in `waits` below, until every
        // completion of this wait arrived) pins its mapping; the pidfd stays open as long; the
        // boxed timespec lives as long too (the kernel copies it at the submission, before any
        // completion).
        unsafe { s.push(&entries) }?;
        s.waits.insert(
            id,
            InFlight {
                left: entries.len() as u8,
                polled: watch.pidfd.is_some(),
                first_done: false,
                _watch: Arc::clone(&watch),
                _timespec: ts,
            },
        );
        if defer {
            return Ok(());
        }
        s.arm_submits += 1;
        s.submit()
    }

    fn flush(&self) -> io::Result<()> {
        let mut s = self.lock();
        if s.ring.submission().is_empty() {
            return Ok(());
        }
        s.arm_submits += 1;
        s.submit()
    }

    fn arm_syscalls(&self) -> u64 {
        self.lock().arm_submits
    }

    fn cancel(&self, id: u64) {
        let mut s = self.lock();
        let Some(w) = s.waits.get(&id) else { return };
        let polled = w.polled;
        s.cancel_op(id << 2 | FUTEX);
        if polled {
            s.cancel_op(id << 2 | POLL);
        }
        let _ = s.submit();
    }

    fn reap(&self, out: &mut Vec<(u64, Outcome)>) {
        let mut s = self.lock();
        s.collect();
        // Completions the kernel kept aside because the queue was full: a submission call
        // with the ring's overflow flag set asks for them (`IORING_ENTER_GETEVENTS`). Bounded:
        // each turn empties the queue first.
        for _ in 0..64 {
            if !s.ring.submission().cq_overflow() {
                break;
            }
            let _ = s.submit();
            s.collect();
        }
        // Cancellations queued while collecting (no system call when there are none).
        if !s.ring.submission().is_empty() {
            let _ = s.submit();
        }
        out.append(&mut s.done);
    }

    fn has_outcomes(&self) -> bool {
        let mut s = self.lock();
        !s.done.is_empty() || !s.ring.completion().is_empty() || s.ring.submission().cq_overflow()
    }
}
