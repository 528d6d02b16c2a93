//! Model check of a lane's hand-over: the producer of a lane of a multi-producer stream or
//! queue dies in the middle of a send, the kernel releases its lease, and a new producer takes
//! the lane and continues its numbering ([`take_over`]) while a reader (or the queue's
//! consumer) keeps receiving. Every message received must be whole, none duplicated, none
//! skipped: the dead producer's unfinished message is never delivered and its number goes to
//! the new producer's first message.
//!
//! The lease is the kernel's lock: taken with an Acquire compare-exchange, released (by the
//! process's death) with a Release store, as a lock's release happens before the next take.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::stream::model_lanes
//! ```

use super::{commit, receive, receive_queued, send, take_over, try_send_queued, Queued};
use crate::protocol::model_kit::{builder, Membarrier, Segment, WORDS};
use crate::protocol::{complete, Announce, Slots};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use loom::sync::atomic::{fence, AtomicBool};
use loom::sync::Arc;
use loom::thread;

/// A lane: a ring of `N` slots, and its writer lease.
struct Lane<const N: usize> {
    ring: Segment<N>,
    leased: AtomicBool,
}

impl<const N: usize> Lane<N> {
    /// A lane whose first producer holds the lease.
    fn held() -> Self {
        Lane {
            ring: Segment::zeroed(Membarrier::without_target()),
            leased: AtomicBool::new(true),
        }
    }

    /// Takes the lease once the kernel released it (a producer's join retrying the lane).
    fn take_lease(&self) {
        while self
            .leased
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_err()
        {
            thread::yield_now();
        }
    }

    /// The first producer: sends `sent` messages, then dies in the middle of the next send
    /// (its slot's sequence word odd, one payload word written, nothing published); the kernel
    /// releases its lease.
    fn die_mid_send(&self, sent: u64) {
        let from = take_over(&self.ring);
        for number in from + 1..=from + sent {
            send(&self.ring, number, WORDS, |_| number, Announce::Asymmetric);
        }
        let dying = from + sent + 1;
        let (seq, words) = self.ring.slot(self.ring.index().slot_of(dying));
        seq.store(complete(dying) - 1, Relaxed);
        fence(Release);
        words[0].store(dying, Relaxed);
        self.leased.store(false, Release);
    }
}

/// A message received: its number, after checking every word holds it.
fn checked(number: u64, copy: &[u64; WORDS]) -> u64 {
    assert!(
        copy.iter().all(|&w| w == number),
        "torn or wrong message accepted as {number}: {copy:?}"
    );
    number
}

/// A stream lane: the first producer sends 1 and dies sending 2; the next takes the lane and
/// sends two messages; a reader receives concurrently and then what is left. It must receive
/// 1, 2, 3 exactly: the new producer's first message is 2.
#[test]
fn stream_lane_taken_over_after_a_death_mid_send() {
    builder().check(|| {
        let lane = Arc::new(Lane::<4>::held());
        let dead = {
            let lane = lane.clone();
            thread::spawn(move || lane.die_mid_send(1))
        };
        let next_owner = {
            let lane = lane.clone();
            thread::spawn(move || {
                lane.take_lease();
                let last = take_over(&lane.ring);
                for number in last + 1..=last + 2 {
                    send(&lane.ring, number, WORDS, |_| number, Announce::Asymmetric);
                }
            })
        };
        let mut got = Vec::new();
        let mut next = 1;
        let mut receive_one = |got: &mut Vec<u64>| {
            let mut copy = [0u64; WORDS];
            let number = receive(&lane.ring, next, WORDS, |i, w| copy[i] = w)?;
            got.push(checked(number, &copy));
            next = number + 1;
            Some(())
        };
        for _ in 0..2 {
            receive_one(&mut got);
        }
        dead.join().unwrap();
        next_owner.join().unwrap();
        while receive_one(&mut got).is_some() {}
        assert_eq!(got, [1, 2, 3], "no gap, no duplicate across the hand-over");
    });
}

/// A queue lane: the first producer sends 1 and dies sending 2; the next takes the lane and
/// sends two messages; the consumer, concurrently and then once both are done, takes every
/// message exactly once, in order, and never finds a broken slot.
#[test]
fn queue_lane_taken_over_after_a_death_mid_send() {
    builder().check(|| {
        let lane = Arc::new(Lane::<4>::held());
        let dead = {
            let lane = lane.clone();
            thread::spawn(move || lane.die_mid_send(1))
        };
        let next_owner = {
            let lane = lane.clone();
            thread::spawn(move || {
                lane.take_lease();
                let last = take_over(&lane.ring);
                let mut consumed_seen = 0;
                for number in last + 1..=last + 2 {
                    let sent = try_send_queued(
                        &lane.ring,
                        number,
                        &mut consumed_seen,
                        WORDS,
                        |_| number,
                        Announce::Asymmetric,
                    );
                    assert!(sent.is_some(), "the ring has room for every message");
                }
            })
        };
        let (mut taken, mut published_seen) = (0u64, 0u64);
        let mut take = |taken: &mut u64| {
            let mut copy = [0u64; WORDS];
            match receive_queued(
                &lane.ring,
                *taken + 1,
                &mut published_seen,
                WORDS,
                |i, w| copy[i] = w,
            ) {
                Queued::Empty => false,
                Queued::Broken => panic!("a slot does not hold message {}", *taken + 1),
                Queued::Message(number) => {
                    assert_eq!(checked(number, &copy), *taken + 1, "out of order or lost");
                    commit(&lane.ring, *taken, number, Announce::Asymmetric);
                    *taken = number;
                    true
                }
            }
        };
        for _ in 0..2 {
            take(&mut taken);
        }
        dead.join().unwrap();
        next_owner.join().unwrap();
        while take(&mut taken) {}
        assert_eq!(taken, 3, "every message taken once, none skipped");
        assert_eq!(lane.ring.published.load(Relaxed), 3, "nothing sent twice");
    });
}
