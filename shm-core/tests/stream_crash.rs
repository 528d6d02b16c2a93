//! A stream writer process killed with SIGKILL in the middle of sends, many times, at random
//! moments: readers keep every message published before the kill, never see a torn one, and
//! the writer that takes over continues the numbering (no gap, no duplicate; only the message
//! whose send was cut short is gone, and its number is used again).

mod common;

use common::{kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::{Error, QueueConsumer, SharedState, StreamReader};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// A 4 KiB message: a send takes long enough that many kills land inside one.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Big {
    words: [u64; 512],
}

fn word(n: u64, i: usize) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64) ^ (i as u64) << 40
}

fn big(n: u64) -> Big {
    Big {
        words: core::array::from_fn(|i| if i == 0 { n } else { word(n, i) }),
    }
}

/// The message's number, after checking every word agrees with it.
fn check(m: &Big) -> u64 {
    let n = m.words[0];
    for (i, &w) in m.words.iter().enumerate().skip(1) {
        assert_eq!(
            w,
            word(n, i),
            "message {n} is torn or inconsistent at word {i}"
        );
    }
    n
}

const CAPACITY: usize = 64;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("writer") => writer(),
        Some("producer") => producer(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Takes over the stream, says where it continues, and sends forever.
fn writer() {
    let mut tx = Big::open_stream_writer(&common::env("SHM_NAME")).expect("take over");
    println!("took-over-at={}", tx.sent());
    let mut value = Box::new(big(0));
    loop {
        let n = tx.sent() + 1;
        *value = big(n);
        tx.send(&value);
    }
}

/// Takes over the queue, says where it continues, and sends forever (waiting while full).
fn producer() {
    let mut tx = Big::open_queue_producer(&common::env("SHM_NAME")).expect("take over");
    println!("took-over-at={}", tx.sent());
    let mut value = Box::new(big(0));
    loop {
        let n = tx.sent() + 1;
        *value = big(n);
        tx.send(&value);
    }
}

/// A reader's tally: the next number it expects, what it received and lost.
struct Tally {
    next: u64,
    received: u64,
    lost: u64,
}

impl Tally {
    /// Receives everything available, checking every message.
    fn drain(&mut self, rx: &mut StreamReader<Big>) {
        loop {
            match rx.try_recv() {
                Ok(Some(m)) => {
                    let n = check(&m);
                    assert_eq!(n, self.next, "out of order, duplicated or unreported gap");
                    self.next = n + 1;
                    self.received += 1;
                }
                Ok(None) => return,
                Err(Error::Lagged { missed }) => {
                    self.lost += missed;
                    self.next += missed;
                }
                Err(e) => panic!("receive: {e}"),
            }
        }
    }
}

#[test]
fn stream_writer_killed_mid_send_then_taken_over() {
    if role().is_some() {
        return;
    }
    let name = Name::new("scrash");
    drop(Big::create_stream(&name, CAPACITY).unwrap());
    let mut rx = Big::subscribe(&name).unwrap();
    let mut tally = Tally {
        next: 1,
        received: 0,
        lost: 0,
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut kills, mut mid_send) = (0u64, 0u64);
    while mid_send < 20 {
        assert!(
            kills < 300,
            "only {mid_send} of {kills} kills landed mid-send"
        );
        let before = rx.sent();
        let mut child = spawn_role(ENTRY, "writer", &[("SHM_NAME", name.to_string())]);
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("took-over-at="))
            .expect("writer report");
        assert_eq!(
            line,
            format!("took-over-at={before}"),
            "the new writer continues after the last published message"
        );
        let start = Instant::now();
        while rx.sent() <= before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "writer sent nothing"
            );
            std::thread::yield_now();
        }
        assert_eq!(
            rx.info().writer().epoch(),
            2 + kills,
            "a takeover is a new epoch"
        );
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        kill(&mut child);
        kills += 1;
        assert!(
            !rx.info().writer().alive(),
            "the lease dies with its process"
        );

        let published = rx.sent();
        let sequences =
            shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::stream_raw(&rx));
        let torn = sequences.iter().filter(|s| *s % 2 == 1).count();
        assert!(torn <= 1, "one send at a time");
        mid_send += torn as u64;

        // The long-lived reader gets every message up to the last published, or counts it lost.
        tally.drain(&mut rx);
        assert_eq!(tally.next, published + 1);
        assert_eq!(tally.received + tally.lost, published);

        // A new reader from the oldest gets exactly what the ring holds: the last `CAPACITY`
        // messages, less the oldest if the killed writer had begun the next send (torn, or
        // complete but not published) in its slot.
        let mut old = Big::subscribe_from_oldest(&name).unwrap();
        let first = published.saturating_sub(CAPACITY as u64 - 1).max(1);
        let mut fresh = Tally {
            next: first,
            received: 0,
            lost: 0,
        };
        fresh.drain(&mut old);
        assert_eq!(fresh.next, published + 1);
        let expected_lost = if published >= CAPACITY as u64 {
            let oldest = published + 1 - CAPACITY as u64;
            let seq = sequences[((published + 1) % CAPACITY as u64) as usize];
            u64::from(seq != 2 * oldest + 2)
        } else {
            0
        };
        assert_eq!(
            fresh.lost, expected_lost,
            "only the overwritten slot is lost"
        );
        assert_eq!(fresh.received + fresh.lost, published + 1 - first);
    }
    eprintln!(
        "{kills} kills, {mid_send} mid-send; the long-lived reader received {} and lost {}",
        tally.received, tally.lost
    );
}

/// Takes every message the queue has, checking each is the next in order.
fn take_all(rx: &mut QueueConsumer<Big>, next: &mut u64) {
    while let Some(m) = rx.try_recv().expect("take") {
        assert_eq!(check(&m), *next, "queue out of order, duplicated or lost");
        *next += 1;
    }
}

#[test]
fn queue_producer_killed_mid_send_then_taken_over() {
    if role().is_some() {
        return;
    }
    let name = Name::new("qcrash");
    drop(Big::create_queue(&name, CAPACITY).unwrap());
    let mut rx = Big::open_consumer(&name).unwrap();
    let mut next = 1u64;
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let (mut kills, mut mid_send) = (0u64, 0u64);
    // Until a few kills landed mid-send: the producer mostly waits for room, so most do not.
    while mid_send < 3 {
        assert!(
            kills < 400,
            "only {mid_send} of {kills} kills landed mid-send"
        );
        let before = rx.taken() + rx.backlog();
        let mut child = spawn_role(ENTRY, "producer", &[("SHM_NAME", name.to_string())]);
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("took-over-at="))
            .expect("producer report");
        assert_eq!(line, format!("took-over-at={before}"));
        // Take messages on another thread while the producer runs; kill it after a random
        // while, mostly in the middle of a send since the consumer keeps making room.
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    take_all(&mut rx, &mut next);
                }
            });
            std::thread::sleep(Duration::from_micros(500 + rng.below(3000)));
            kill(&mut child);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        kills += 1;
        assert!(!rx.info().writer().alive());
        let sequences = shm_core::__private::hooks::queue_slot_sequences(&rx);
        mid_send += sequences.iter().any(|s| s % 2 == 1) as u64;
        take_all(&mut rx, &mut next);
        assert_eq!(rx.backlog(), 0);
        assert_eq!(rx.taken(), next - 1, "every published message was taken");
    }
    assert!(next > 1000, "the producers sent too little: {next}");
    eprintln!(
        "{kills} kills, {mid_send} mid-send; {} messages taken in order",
        next - 1
    );
}
