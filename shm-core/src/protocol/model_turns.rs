//! Model check of turn-taking writers (`turn.rs`): a writer that dies in its turn, and the
//! next writer's recovery, under every interleaving loom explores.
//!
//! Loom cannot run a pthread mutex, nor kill a thread. The model therefore stands in for both
//! with [`RobustLock`]: a lock word with the states a robust mutex goes through (locked; its
//! owner died and the kernel released it; taken from a dead owner and not yet consistent;
//! unrecoverable after being unlocked in that state), and a writer thread that "dies" by
//! stopping where it is and letting the kernel's part ([`RobustLock::owner_died`]) release the
//! lock. What runs on the segment's words is the runtime's own code: [`begin_turn`] (the
//! recovery: new epoch, continue from `published`, wake, repair), [`publish`], and the
//! readers' [`read_latest`] and wait.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p shm-core --release --lib --target-dir target/loom -- protocol::model_turns
//! ```

use super::model_kit::{
    assert_woken, builder, wait_round, wake, Membarrier, Segment, Waited, WORDS,
};
use super::turn::{begin_turn, Taken};
use super::{publish, read_latest, write_initial, Announce, Slots};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use loom::sync::atomic::{fence, AtomicU32};
use loom::sync::Arc;
use loom::thread;

/// Unlocked.
const UNLOCKED: u32 = 0;
/// Held, consistent.
const LOCKED: u32 = 1;
/// Released by the kernel because its owner died (`FUTEX_OWNER_DIED`).
const OWNER_DIED: u32 = 2;
/// Held by a locker that got `EOWNERDEAD` and has not called `pthread_mutex_consistent`.
const INCONSISTENT: u32 = 3;
/// Unlocked while inconsistent: every lock fails with `ENOTRECOVERABLE` from now on.
const NOT_RECOVERABLE: u32 = 4;

/// A robust mutex, as far as the protocol sees one.
struct RobustLock {
    state: AtomicU32,
}

impl RobustLock {
    fn new() -> Self {
        RobustLock {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// `pthread_mutex_lock`: [`Taken::OwnerDied`] for `EOWNERDEAD`. Panics for
    /// `ENOTRECOVERABLE`, which the runtime must never reach.
    fn lock(&self) -> Taken {
        // Bounded: the holder releases it or dies (and the kernel releases it) in every run.
        loop {
            match self
                .state
                .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            {
                Ok(_) => return Taken::Clean,
                Err(OWNER_DIED) => {
                    if self
                        .state
                        .compare_exchange(OWNER_DIED, INCONSISTENT, Acquire, Relaxed)
                        .is_ok()
                    {
                        return Taken::OwnerDied;
                    }
                }
                Err(NOT_RECOVERABLE) => {
                    panic!("ENOTRECOVERABLE: the lock was released without being repaired")
                }
                Err(_) => thread::yield_now(),
            }
        }
    }

    /// `pthread_mutex_consistent`.
    fn consistent(&self) {
        assert_eq!(self.state.load(Relaxed), INCONSISTENT);
        self.state.store(LOCKED, Relaxed);
    }

    /// `pthread_mutex_unlock`.
    fn unlock(&self) {
        let next = match self.state.load(Relaxed) {
            LOCKED => UNLOCKED,
            INCONSISTENT => NOT_RECOVERABLE,
            other => panic!("unlocking a lock in state {other}"),
        };
        self.state.store(next, Release);
    }

    /// The kernel, when the owner dies: marks the lock and releases it. Its futex operation is
    /// a full barrier: everything the owner stored before it died is visible to the next owner.
    fn owner_died(&self) {
        fence(SeqCst);
        self.state.store(OWNER_DIED, Release);
    }
}

/// A turn of a writer that survives it: recovers if needed, then (`publishes`) adds 1 to the
/// value (every word of version `v` is `v`) and publishes it, or ends without publishing;
/// unlocks. Returns whether it recovered and the futex value its recovery's wake left (if it
/// woke).
fn turn<const N: usize>(
    seg: &Segment<N>,
    lock: &RobustLock,
    publishes: bool,
) -> (bool, Option<u32>) {
    let taken = lock.lock();
    let mut woke = None;
    let mut value = [0u64; WORDS];
    let published = begin_turn(
        seg,
        taken,
        WORDS,
        |i, w| value[i] = w,
        || woke = Some(wake(&seg.futex)),
        || lock.consistent(),
    )
    .expect("the turn starts");
    assert!(
        value.iter().all(|&w| w == published),
        "a turn began from a torn or wrong value: {value:?} for version {published}"
    );
    if publishes
        && publish(
            seg,
            published + 1,
            WORDS,
            |_| published + 1,
            Announce::Locked,
        )
    {
        wake(&seg.futex);
    }
    lock.unlock();
    (taken == Taken::OwnerDied, woke)
}

/// A two-slot segment holding version 0 (every word 0), as `Segment::create` leaves it.
fn segment() -> Segment<2> {
    let seg = Segment::zeroed(Membarrier::without_target());
    write_initial(&seg, WORDS, |_| 0);
    seg
}

/// Writer A dies in the middle of writing its version into a slot (odd sequence, one word of
/// two stored); writer B takes its turn meanwhile, before or after; a reader reads throughout.
/// The reader never accepts a torn copy nor goes backwards; after a last turn by the main
/// thread, the value counts exactly the turns that completed (B's and the last), the slot A
/// left odd is complete again, and the epoch records the one recovery.
#[test]
fn a_writer_dies_mid_write_and_the_next_turn_recovers() {
    builder().check(|| {
        let seg = Arc::new(segment());
        let lock = Arc::new(RobustLock::new());

        let victim = {
            let (seg, lock) = (seg.clone(), lock.clone());
            thread::spawn(move || {
                let taken = lock.lock();
                let published =
                    begin_turn(&*seg, taken, WORDS, |_, _| {}, || {}, || lock.consistent())
                        .unwrap();
                // The start of `write_slot` for the next version, then death.
                let next = published + 1;
                let (seq, words) = seg.slot(seg.index().slot_of(next));
                seq.store(2 * next + 1, Relaxed);
                fence(Release);
                words[0].store(next, Relaxed);
                lock.owner_died();
            })
        };
        let survivor = {
            let (seg, lock) = (seg.clone(), lock.clone());
            thread::spawn(move || turn(&*seg, &lock, true).0)
        };
        let reader = {
            let seg = seg.clone();
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    let mut copy = [u64::MAX; WORDS];
                    if let Some(v) = read_latest(&*seg, WORDS, |i, w| copy[i] = w) {
                        assert!(copy.iter().all(|&w| w == v), "torn: {copy:?} as {v}");
                        assert!(v >= last, "went backwards from {last} to {v}");
                        last = v;
                    }
                }
            })
        };

        victim.join().unwrap();
        let mut recoveries = u64::from(survivor.join().unwrap());
        reader.join().unwrap();
        recoveries += u64::from(turn(&*seg, &lock, true).0);

        assert_eq!(
            recoveries, 1,
            "exactly one turn recovers from the dead writer"
        );
        assert_eq!(seg.epoch.load(Relaxed), 2, "the recovery is a new epoch");
        assert_eq!(
            seg.published.load(Relaxed),
            2,
            "two turns completed, each published once"
        );
        for i in 0..2 {
            assert_eq!(seg.slot(i).0.load(Relaxed) % 2, 0, "slot {i} left odd");
        }
        assert_eq!(lock.state.load(Relaxed), UNLOCKED);
    });
}

/// Writer A publishes a version and dies before waking the waiters; a waiter waits for version
/// 1 meanwhile; writer B takes a turn that publishes nothing (before or after A's), recovering
/// if A died first. After a last such turn by the main thread, one turn has recovered, and a
/// waiter that went to sleep must have been woken by that recovery's wake: there is no other.
#[test]
fn a_writer_dies_between_publishing_and_waking_and_the_recovery_wakes() {
    builder().check(|| {
        let seg = Arc::new(segment());
        let lock = Arc::new(RobustLock::new());

        let waiter = {
            let seg = seg.clone();
            thread::spawn(move || {
                wait_round(&seg.waiters, &seg.barrier, &seg.futex, || {
                    let version = seg.published.load(SeqCst);
                    (version > 0).then_some(version)
                })
            })
        };
        let victim = {
            let (seg, lock) = (seg.clone(), lock.clone());
            thread::spawn(move || {
                let taken = lock.lock();
                let published =
                    begin_turn(&*seg, taken, WORDS, |_, _| {}, || {}, || lock.consistent())
                        .unwrap();
                let next = published + 1;
                // Publishes, and dies before the wake its publication owes.
                let _owes_wake = publish(&*seg, next, WORDS, |_| next, Announce::Locked);
                lock.owner_died();
            })
        };
        let survivor = {
            let (seg, lock) = (seg.clone(), lock.clone());
            thread::spawn(move || turn(&*seg, &lock, false))
        };

        victim.join().unwrap();
        let (mut recovered, mut woke) = survivor.join().unwrap();
        if !recovered {
            (recovered, woke) = turn(&*seg, &lock, false);
        }
        assert!(recovered, "a turn after the victim's death recovers");
        assert_eq!(seg.epoch.load(Relaxed), 2);
        if let Waited::Sleeps(word) = waiter.join().unwrap() {
            assert_woken(word, woke, "a waiter of the writer that died before waking");
        }
    });
}
