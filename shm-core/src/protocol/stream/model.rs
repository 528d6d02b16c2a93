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
//! The waiting models add the waits: a broadcast reader waiting for the next message, a queue's
//! consumer waiting for a message and its producer waiting for room, each one round of the
//! registration protocol (`protocol::model::wait_round`), and check that no waiter is left
//! asleep. The writer's `membarrier` points and the SeqCst read-modify-writes are modelled as
//! `protocol::model` describes ([`Membarrier`], `seq_cst_rmw`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::stream::model
//! ```
//! `LOOM_MAX_PREEMPTIONS` overrides the default preemption bound of 3.

use super::{
    commit, has_room, receive, receive_queued, send, try_send_queued, wait_for_room, Queued,
};
use crate::protocol::model_kit::{
    assert_woken, builder, wait_round, wait_round_serving, wake, Membarrier, Segment, Waited, WORDS,
};
use crate::protocol::Announce;
use core::sync::atomic::Ordering::SeqCst;
use loom::sync::Arc;
use loom::thread;

/// A stream or queue segment with `N` slots: the model's segment, zeroed as
/// `Segment::create` leaves a ring.
type Ring<const N: usize> = Segment<N>;

impl<const N: usize> Ring<N> {
    /// A ring nobody waits on.
    fn ring() -> Self {
        Self::zeroed(Membarrier::without_target())
    }

    /// One round of waiting for message `next` on `futex`/`waiters`, as a stream reader and a
    /// queue's consumer wait: ready once `published >= next` (SeqCst).
    fn wait_for_message(&self, next: u64) -> Waited<()> {
        wait_round(&self.waiters, &self.barrier, &self.futex, || {
            (self.published.load(SeqCst) >= next).then_some(())
        })
    }
}

/// Sends message `number` into a queue, every payload word holding the number (see
/// [`try_send_queued`]).
fn try_send_number<const N: usize>(
    ring: &Ring<N>,
    number: u64,
    consumed_seen: &mut u64,
) -> Option<bool> {
    try_send_queued(
        ring,
        number,
        consumed_seen,
        WORDS,
        |_| number,
        Announce::Asymmetric,
    )
}

/// A broadcast reader's state: the next number it wants, what it received and lost.
#[derive(Default)]
struct Cursor {
    next: u64,
    received: u64,
    lost: u64,
}

impl Cursor {
    /// A reader that wants every message from the first.
    fn from_first() -> Cursor {
        Cursor {
            next: 1,
            ..Cursor::default()
        }
    }

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
        let ring = Arc::new(Ring::<N>::ring());
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut c = Cursor::from_first();
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
        let ring = Arc::new(Ring::<N>::ring());
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
                            let woke = commit(&*ring, taken, number, Announce::Asymmetric);
                            taken = number;
                            assert!(!woke, "nobody waits in this model");
                        }
                    }
                }
            })
        };
        let mut consumed_seen = 0;
        for number in 1..=sends {
            loop {
                match try_send_number(&ring, number, &mut consumed_seen) {
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

/// The wakes a writer made: `woke[m]`, the futex word after the wake of the send (or commit)
/// of message `m`, if it woke anybody.
struct Wakes(Vec<Option<u32>>);

impl Wakes {
    fn new(messages: u64) -> Wakes {
        Wakes(vec![None; messages as usize + 1])
    }
}

/// A writer sending messages `1..=sends` into `N` slots without a locked instruction, waking
/// when a send reports a waiter; a reader receiving every message in order and, whenever
/// nothing new is there, waiting for the next message as `StreamReader` does. After a wait
/// that finds the message published, the receive must return it. A reader that goes to sleep
/// waiting for message `m` must be woken by the send of `m`.
fn broadcast_waiting<const N: usize>(sends: u64) {
    assert!(
        sends <= N as u64,
        "the ring holds every message: a wait that finds one published receives it"
    );
    builder().check(move || {
        let ring = Arc::new(Ring::<N>::zeroed(Membarrier::with_target()));
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut c = Cursor::from_first();
                while c.next <= sends {
                    if c.receive(&*ring) {
                        continue;
                    }
                    match ring.wait_for_message(c.next) {
                        Waited::Ready(()) => assert!(
                            c.receive(&*ring),
                            "message {} published, but not received",
                            c.next
                        ),
                        Waited::Sleeps(word) => return Some((c.next, word)),
                    }
                }
                assert_eq!(c.lost, 0, "the ring held every message");
                None
            })
        };

        let mut woke = Wakes::new(sends);
        for number in 1..=sends {
            ring.barrier.point();
            if send(&*ring, number, WORDS, |_| number, Announce::Asymmetric) {
                woke.0[number as usize] = Some(wake(&ring.futex));
            }
        }
        ring.barrier.retire();

        if let Some((next, word)) = reader.join().unwrap() {
            assert_woken(
                word,
                woke.0[next as usize],
                &format!("waiting for message {next}"),
            );
        }
    });
}

/// A reader that waits for the first message or the second, or both.
#[test]
fn broadcast_waiting_for_messages() {
    broadcast_waiting::<2>(2);
}

/// A queue of one slot, full after one message. The producer sends message 1, then message 2,
/// waiting for room (as `QueueProducer::send` does: `wait_for_room`, then one round of the
/// registration protocol on `space_futex`/`space_waiters` re-checking with [`has_room`]). The
/// consumer waits for message 1 (on `futex`/`waiters`, as `QueueConsumer::recv` does), takes and
/// commits it as `commits` says, waking the producer if its commit says so.
///
/// Neither may be left asleep: a consumer asleep waiting for message 1 must be woken by its
/// send (the producer publishes without a locked instruction: the consumer's `membarrier` is
/// its barrier); a producer asleep waiting for room must be woken by the commit of message 1.
/// A `Locked` commit is a SeqCst swap, pairing with the producer's SeqCst registration and
/// re-check with no help from `membarrier` (the consumer is not its target); an `Asymmetric`
/// commit is a Release store and relaxed loads, and the producer's `membarrier`, which has the
/// consumer as its target, is its barrier. A producer that finds room after the wait sends
/// message 2.
fn queue_waiting_both_ways(commits: Announce) {
    builder().check(move || {
        let mut segment = Ring::<1>::zeroed(Membarrier::with_target());
        if commits == Announce::Asymmetric {
            segment.space_barrier = Membarrier::with_target();
        }
        let ring = Arc::new(segment);
        let consumer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut published_seen = 0;
                let mut copy = [0u64; WORDS];
                let mut take =
                    || receive_queued(&*ring, 1, &mut published_seen, WORDS, |i, w| copy[i] = w);
                let mut taken = take();
                if taken == Queued::Empty {
                    let waited = wait_round_serving(
                        &ring.waiters,
                        (&ring.barrier, Some(&ring.space_barrier)),
                        &ring.futex,
                        || (ring.published.load(SeqCst) >= 1).then_some(()),
                    );
                    match waited {
                        Waited::Ready(()) => taken = take(),
                        Waited::Sleeps(word) => {
                            ring.space_barrier.retire();
                            return Err(word);
                        }
                    }
                }
                assert_eq!(
                    taken,
                    Queued::Message(1),
                    "message 1 published, but not taken"
                );
                assert!(copy.iter().all(|&w| w == 1), "torn: {copy:?}");
                ring.space_barrier.point();
                let woke = commit(&*ring, 0, 1, commits);
                ring.space_barrier.retire();
                Ok(woke.then(|| wake(&ring.space_futex)))
            })
        };

        let mut consumed_seen = 0;
        let mut send = |number| try_send_number(&ring, number, &mut consumed_seen);
        ring.barrier.point();
        let sent_1 = send(1).expect("an empty queue has room");
        let woke_1 = sent_1.then(|| wake(&ring.futex));
        ring.barrier.point();
        let producer_slept = match send(2) {
            Some(_) => None,
            None => {
                wait_for_room(&*ring, 2);
                match wait_round_serving(
                    &ring.space_waiters,
                    (&ring.space_barrier, Some(&ring.barrier)),
                    &ring.space_futex,
                    || has_room(&*ring, 2).then_some(()),
                ) {
                    Waited::Ready(()) => {
                        // Whether it wakes the consumer does not matter: it waits for message 1.
                        assert!(send(2).is_some(), "room seen, but the send found none");
                        None
                    }
                    Waited::Sleeps(word) => Some(word),
                }
            }
        };
        ring.barrier.retire();

        match consumer.join().unwrap() {
            Err(word) => assert_woken(word, woke_1, "the consumer waiting for message 1"),
            Ok(woke_room) => {
                if let Some(word) = producer_slept {
                    assert_woken(
                        word,
                        woke_room,
                        "the producer waiting for room for message 2",
                    );
                }
            }
        }
    });
}

/// Commits with a locked instruction (a consumer whose process could not register).
#[test]
fn queue_waiting_both_ways_locked() {
    queue_waiting_both_ways(Announce::Locked);
}

/// Commits without a locked instruction: the producer's `membarrier` is the consumer's barrier.
#[test]
fn queue_waiting_both_ways_asymmetric() {
    queue_waiting_both_ways(Announce::Asymmetric);
}
