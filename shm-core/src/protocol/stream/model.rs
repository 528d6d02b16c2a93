//! Model check of the stream and queue protocol: the functions of `protocol::stream` that the
//! stream and queue handles call, run on loom's atomics under every interleaving (within a
//! preemption bound) and every value the C++11 memory model lets a relaxed or acquire load
//! return.
//!
//! The model is a ring of `N` slots of a few payload words, zeroed as `Segment::create` leaves
//! one. Message `m`'s every word holds `m`. Readers check every message they accept: not torn,
//! numbers strictly increasing, and losses exact: none while the ring holds every message
//! sent, and `received + lost == sent` once the writer is done, even when it laps them.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::stream::model
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 3.

use super::{commit, receive, receive_queued, send, try_send_queued, QueueWords, Queued};
use crate::protocol::{Announce, SlotIndex, Slots};
use core::sync::atomic::Ordering;
use loom::sync::atomic::{AtomicU32, AtomicU64};
use loom::sync::Arc;
use loom::thread;

/// Payload words per slot.
const WORDS: usize = 2;

struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// A stream or queue segment with `N` slots.
struct Ring<const N: usize> {
    published: AtomicU64,
    waiters: AtomicU32,
    consumed: AtomicU64,
    space_waiters: AtomicU32,
    space_wanted: AtomicU64,
    slots: [Slot; N],
}

impl<const N: usize> Slots for Ring<N> {
    type Word = AtomicU64;
    fn index(&self) -> SlotIndex {
        SlotIndex::new(N)
    }
    fn published(&self) -> &AtomicU64 {
        &self.published
    }
    fn slot(&self, i: usize) -> (&AtomicU64, &[AtomicU64]) {
        (&self.slots[i].seq, &self.slots[i].words)
    }
    fn waiters_registered(&self, order: Ordering) -> bool {
        self.waiters.load(order) != 0
    }
}

impl<const N: usize> QueueWords for Ring<N> {
    fn consumed(&self) -> &AtomicU64 {
        &self.consumed
    }
    fn space_waiters_registered(&self) -> bool {
        self.space_waiters.load(Ordering::SeqCst) != 0
    }
    fn space_wanted(&self) -> &AtomicU64 {
        &self.space_wanted
    }
}

impl<const N: usize> Ring<N> {
    fn create() -> Self {
        Ring {
            published: AtomicU64::new(0),
            waiters: AtomicU32::new(0),
            consumed: AtomicU64::new(0),
            space_waiters: AtomicU32::new(0),
            space_wanted: AtomicU64::new(0),
            slots: core::array::from_fn(|_| Slot {
                seq: AtomicU64::new(0),
                words: core::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }
}

fn builder() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder
}

/// A broadcast reader's state: the next number it wants, what it received and lost.
#[derive(Default)]
struct Cursor {
    next: u64,
    received: u64,
    lost: u64,
}

impl Cursor {
    /// One receive attempt, checking what it accepts; `true` if it received a message.
    fn receive<const N: usize>(&mut self, ring: &Ring<N>) -> bool {
        let mut copy = [0u64; WORDS];
        let Some(number) = receive(ring, self.next, WORDS, |i, w| copy[i] = w) else {
            return false;
        };
        assert!(
            copy.iter().all(|&w| w == number),
            "torn or wrong message accepted as {number}: {copy:?} (slots: {N})"
        );
        assert!(
            number >= self.next,
            "went backwards: {number} after {}",
            self.next
        );
        self.lost += number - self.next;
        self.received += 1;
        self.next = number + 1;
        true
    }
}

/// One writer sending messages `1..=sends` into `N` slots, one reader making `attempts`
/// receive attempts concurrently and then, once the writer is done, receiving what is left.
/// With `sends <= N` nothing may be lost.
fn broadcast<const N: usize>(sends: u64, attempts: usize) {
    builder().check(move || {
        let ring = Arc::new(Ring::<N>::create());
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut c = Cursor {
                    next: 1,
                    ..Cursor::default()
                };
                for _ in 0..attempts {
                    c.receive(&*ring);
                }
                c
            })
        };
        for number in 1..=sends {
            let wake = send(&*ring, number, WORDS, |_| number, Announce::Asymmetric);
            assert!(!wake, "nobody waits in this model");
        }
        let mut c = reader.join().unwrap();
        while c.receive(&*ring) {}
        assert_eq!(
            c.received + c.lost,
            sends,
            "every message received or counted lost"
        );
        if sends <= N as u64 {
            assert_eq!(
                c.lost, 0,
                "a message was reported lost that the ring still held"
            );
        }
    });
}

/// The ring holds every message: a reader must receive each, in order, none lost.
#[test]
fn broadcast_within_capacity() {
    broadcast::<2>(2, 2);
}

/// The writer laps the reader (slot 0 holds messages 2 and 4): losses are counted exactly,
/// and a message being overwritten during the copy is refused, never returned torn.
#[test]
fn broadcast_lapped() {
    broadcast::<2>(4, 2);
}

/// One slot, as `create_stream(name, 1)` makes: every message overwrites the previous.
#[test]
fn broadcast_one_slot() {
    broadcast::<1>(2, 2);
}

/// A producer sending `1..=sends` through a queue of `N` slots, waiting (yielding) while it is
/// full; a consumer taking them: every message exactly once, in order, never a broken slot.
fn queue<const N: usize>(sends: u64) {
    builder().check(move || {
        let ring = Arc::new(Ring::<N>::create());
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let (mut taken, mut published_seen) = (0, 0);
                while taken < sends {
                    let mut copy = [0u64; WORDS];
                    let next = taken + 1;
                    match receive_queued(&*ring, next, &mut published_seen, WORDS, |i, w| {
                        copy[i] = w
                    }) {
                        Queued::Empty => thread::yield_now(),
                        Queued::Broken => panic!("the producer overwrote message {}", taken + 1),
                        Queued::Message(number) => {
                            assert_eq!(number, taken + 1);
                            assert!(copy.iter().all(|&w| w == number), "torn: {copy:?}");
                            taken = number;
                            assert!(!commit(&*ring, number), "nobody waits in this model");
                        }
                    }
                }
            })
        };
        let mut consumed_seen = 0;
        for number in 1..=sends {
            loop {
                match try_send_queued(
                    &*ring,
                    number,
                    &mut consumed_seen,
                    WORDS,
                    |_| number,
                    Announce::Asymmetric,
                ) {
                    Some(wake) => {
                        assert!(!wake, "nobody waits in this model");
                        break;
                    }
                    None => thread::yield_now(),
                }
            }
        }
        consumer.join().unwrap();
    });
}

/// A queue of one slot: the producer waits for the consumer after every message.
#[test]
fn queue_one_slot() {
    queue::<1>(3);
}

/// A queue of two slots.
#[test]
fn queue_two_slots() {
    queue::<2>(3);
}
