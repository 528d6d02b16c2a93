//! Wake-ups of stream and queue waits, with processes: a stream reader's and a queue
//! consumer's wait for a message, a queue producer's wait for room, a consumer takeover that
//! wakes a producer its predecessor owed a wake-up, and waits that find a hostile waiter count
//! at its maximum.
//!
//! Every test here makes this process's waits sleep on their futex for up to an hour at a time
//! (`hooks::set_stream_wait_slice`) instead of 100 ms, so a wait ends only when it is woken (or
//! polls): a missed wake-up is not a short delay but a wait that reaches its bound, which the
//! tests report as a failure. No test asserts on elapsed time.

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::__private::hooks;
use shm_core::SharedState;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::Child;
use std::time::{Duration, Instant};

/// Messages (or waits for room) per missed-wake run.
const ROUNDS: u64 = 20_000;
/// The writer's longest pause between seeing an acknowledgement and acting.
const MAX_PAUSE_NS: u64 = 800;
/// The bound of every wait: reaching it means the wake-up was missed.
const BOUND: Duration = Duration::from_secs(20);

/// Offsets in the header and the control line (docs/segment-format.md).
const FUTEX: u64 = 192;
const WAITERS: u64 = 196;
const SPACE_FUTEX: u64 = 264;
const SPACE_WAITERS: u64 = 268;

fn long_slices() {
    hooks::set_stream_wait_slice(Duration::from_secs(3600));
}

fn file_of(name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
}

fn u32_at(f: &File, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, offset).unwrap();
    u32::from_ne_bytes(b)
}

fn put_u32(f: &File, offset: u64, v: u32) {
    f.write_all_at(&v.to_ne_bytes(), offset).unwrap();
}

/// Spins for a random pause below `MAX_PAUSE_NS`, so that what follows races with the other
/// process registering as a waiter.
fn pause(rng: &mut Rng) {
    let pause = Duration::from_nanos(rng.below(MAX_PAUSE_NS));
    let start = Instant::now();
    while start.elapsed() < pause {
        core::hint::spin_loop();
    }
}

/// Waits (bounded) until `ack` reads at least `v`.
fn await_ack(ack: &shm_core::Reader<u64>, v: u64) {
    let start = Instant::now();
    while ack.read() < v {
        assert!(start.elapsed() < BOUND, "no acknowledgement of {v}");
        core::hint::spin_loop();
    }
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    let Some(role) = role() else { return };
    let name = || env("SHM_NAME");
    let ack = || u64::open(&env("ACK_NAME")).unwrap();
    let mut rng = Rng(env("SEED").parse().unwrap());
    match role.as_str() {
        // Sends messages 1..=ROUNDS to the stream, each after the reader acknowledged the
        // previous one and a random pause.
        "stream-writer" => {
            let mut tx = u64::open_stream_writer(&name()).unwrap();
            let ack = ack();
            for m in 1..=ROUNDS {
                await_ack(&ack, m - 1);
                pause(&mut rng);
                tx.send(&m);
            }
        }
        // The same into a queue.
        "queue-producer" => {
            let mut tx = u64::open_queue_producer(&name()).unwrap();
            let ack = ack();
            for m in 1..=ROUNDS {
                await_ack(&ack, m - 1);
                pause(&mut rng);
                tx.try_send(&m).unwrap();
            }
        }
        // Takes message m once the producer acknowledged sending it (and then waits for room
        // to send m + 1 in a queue of capacity 1), after a random pause.
        "queue-consumer" => {
            let mut rx = u64::open_consumer(&name()).unwrap();
            let ack = ack();
            for m in 1..=ROUNDS {
                await_ack(&ack, m);
                pause(&mut rng);
                assert_eq!(rx.try_recv().unwrap(), Some(m));
            }
        }
        // Takes over the producer of a full queue with waits that only a wake-up ends, and
        // sends one more message: it blocks until the consumer makes room and wakes it.
        "blocked-producer" => {
            long_slices();
            let mut tx = u64::open_queue_producer(&name()).unwrap();
            let next = tx.sent() + 1;
            // No deadline: only a wake-up (or an hour) ends the wait, never the test's bound.
            tx.send(&next);
        }
        // Takes one message and is killed right after the commit that owes the waiting
        // producer a wake-up, before the wake-up.
        "consumer-killed-before-wake" => {
            hooks::kill_consumer_between_commit_and_wake();
            let mut rx = u64::open_consumer(&name()).unwrap();
            let _ = rx.try_recv();
            panic!("the commit did not owe a wake-up: the producer was not waiting");
        }
        other => panic!("unknown role {other}"),
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// Spawns `role` on `name`, with the acknowledgement segment `ack` and a fresh seed.
fn spawn(role: &str, name: &str, ack: &str, seed: u64) -> Child {
    spawn_role(
        ENTRY,
        role,
        &[
            ("SHM_NAME", name.to_string()),
            ("ACK_NAME", ack.to_string()),
            ("SEED", seed.to_string()),
        ],
    )
}

/// Waits (bounded) for `child` to exit and returns whether it succeeded.
fn bounded_wait(child: &mut Child, what: &str) -> bool {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if start.elapsed() > BOUND {
            kill(child);
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A stream reader blocked in `recv_timeout` is woken for every message, however the send
/// races with its registration (the waiter's `membarrier` pairs with a writer that publishes
/// without a locked instruction).
#[test]
fn a_stream_reader_is_woken_for_every_message() {
    if role().is_some() {
        return;
    }
    long_slices();
    let name = Name::new("wake-stream");
    let ack_name = Name::new("wake-stream-ack");
    drop(u64::create_stream(&name, 64).unwrap());
    let mut ack = u64::create(&ack_name, &0).unwrap();
    let mut rx = u64::subscribe(&name).unwrap();
    let seed = seed();
    let mut writer = spawn("stream-writer", &name, &ack_name, seed);
    let (f, mut woken) = (file_of(&name), 0);
    for m in 1..=ROUNDS {
        let word = u32_at(&f, FUTEX);
        let start = Instant::now();
        let got = rx.recv_timeout(BOUND);
        woken += u64::from(u32_at(&f, FUTEX) != word);
        // A wait that reached its bound was not woken, even if its last look found the message.
        if start.elapsed() >= BOUND {
            kill(&mut writer);
            panic!("message {m} (seed {seed}): the wait reached {BOUND:?}: the wake-up was missed");
        }
        match got {
            Ok(got) => assert_eq!(got, m),
            Err(e) => {
                kill(&mut writer);
                panic!("message {m} (seed {seed}): {e}: the wake-up was missed");
            }
        }
        ack.write(&m);
    }
    assert!(writer.wait().unwrap().success());
    eprintln!("{ROUNDS} messages (seed {seed}): {woken} waits woken by the writer");
}

/// A queue consumer blocked in `recv_timeout` is woken for every message.
#[test]
fn a_queue_consumer_is_woken_for_every_message() {
    if role().is_some() {
        return;
    }
    long_slices();
    let name = Name::new("wake-queue");
    let ack_name = Name::new("wake-queue-ack");
    drop(u64::create_queue(&name, 64).unwrap());
    let mut ack = u64::create(&ack_name, &0).unwrap();
    let mut rx = u64::open_consumer(&name).unwrap();
    let seed = seed();
    let mut producer = spawn("queue-producer", &name, &ack_name, seed);
    let (f, mut woken) = (file_of(&name), 0);
    for m in 1..=ROUNDS {
        let word = u32_at(&f, FUTEX);
        let start = Instant::now();
        let got = rx.recv_timeout(BOUND);
        woken += u64::from(u32_at(&f, FUTEX) != word);
        // A wait that reached its bound was not woken, even if its last look found the message.
        if start.elapsed() >= BOUND {
            kill(&mut producer);
            panic!("message {m} (seed {seed}): the wait reached {BOUND:?}: the wake-up was missed");
        }
        match got {
            Ok(got) => assert_eq!(got, m),
            Err(e) => {
                kill(&mut producer);
                panic!("message {m} (seed {seed}): {e}: the wake-up was missed");
            }
        }
        ack.write(&m);
    }
    assert!(producer.wait().unwrap().success());
    eprintln!("{ROUNDS} messages (seed {seed}): {woken} waits woken by the producer");
}

/// A producer blocked in `send_timeout` on a full queue is woken by every commit that makes
/// room, however the commit races with its registration.
#[test]
fn a_producer_waiting_for_room_is_woken_by_the_commit_that_makes_it() {
    if role().is_some() {
        return;
    }
    long_slices();
    let name = Name::new("wake-room");
    let ack_name = Name::new("wake-room-ack");
    let mut tx = u64::create_queue(&name, 1).unwrap();
    let mut ack = u64::create(&ack_name, &0).unwrap();
    let seed = seed();
    let mut consumer = spawn("queue-consumer", &name, &ack_name, seed);
    tx.try_send(&1).unwrap();
    ack.write(&1);
    let (f, mut woken) = (file_of(&name), 0);
    for m in 2..=ROUNDS + 1 {
        // Full until the consumer takes m - 1, which it does after this acknowledgement.
        let word = u32_at(&f, SPACE_FUTEX);
        let start = Instant::now();
        let sent = tx.send_timeout(&m, BOUND);
        woken += u64::from(u32_at(&f, SPACE_FUTEX) != word);
        if start.elapsed() >= BOUND {
            kill(&mut consumer);
            panic!("message {m} (seed {seed}): the wait reached {BOUND:?}: the wake-up was missed");
        }
        if let Err(e) = sent {
            kill(&mut consumer);
            panic!("message {m} (seed {seed}): {e}: the wake-up was missed");
        }
        if m <= ROUNDS {
            ack.write(&m);
        }
    }
    assert!(consumer.wait().unwrap().success());
    eprintln!("{ROUNDS} waits for room (seed {seed}): {woken} woken by the consumer");
}

/// Whether every thread of process `pid` is asleep in a futex wait (its kernel wait channel
/// names a futex function).
fn asleep_on_a_futex(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let wchan = std::fs::read_to_string(task.path().join("wchan")).unwrap_or_default();
        if !wchan.contains("futex") {
            return false;
        }
        any = true;
    }
    any
}

/// A consumer killed between its commit and the wake-up it owed a producer waiting for room
/// leaves the producer asleep; the consumer that takes over wakes it.
#[test]
fn a_consumer_takeover_wakes_a_producer_its_predecessor_left_asleep() {
    if role().is_some() {
        return;
    }
    let name = Name::new("wake-takeover");
    let mut tx = u64::create_queue(&name, 1).unwrap();
    tx.try_send(&1).unwrap();
    drop(tx);
    let f = file_of(&name);
    let mut producer = spawn("blocked-producer", &name, "/unused", 1);
    // Observed progress: the producer registered as a waiter for room and sleeps on a futex.
    let start = Instant::now();
    while !(u32_at(&f, SPACE_WAITERS) == 1 && asleep_on_a_futex(producer.id())) {
        assert!(
            start.elapsed() < BOUND,
            "the producer never waited for room"
        );
        assert!(
            producer.try_wait().unwrap().is_none(),
            "the producer exited"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut dying = spawn("consumer-killed-before-wake", &name, "/unused", 1);
    let status = dying.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    // Message 1 is taken, and nobody woke the producer: the consumer that takes over must.
    let rx = u64::open_consumer(&name).unwrap();
    assert_eq!(rx.taken(), 1);
    assert!(
        bounded_wait(
            &mut producer,
            "the producer was not woken after the consumer takeover"
        ),
        "the producer failed"
    );
    drop(rx);
}

/// Starts `f` on a thread and returns once that thread sleeps (its state in /proc is `S`):
/// past its spinning, registered as a waiter or polling.
fn start_sleeping<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> std::thread::JoinHandle<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        // SAFETY: `gettid` has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        f()
    });
    let tid = rx.recv().unwrap();
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // The state follows the command name in parentheses.
        let state = stat.rsplit(')').next().unwrap().trim_start().chars().next();
        if state == Some('S') {
            return handle;
        }
        assert!(start.elapsed() < BOUND, "the waiting thread never slept");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A stream reader that finds the waiter count at its maximum (a hostile peer) does not wrap
/// it to 0, which would make the writer skip every wake-up: it polls, as a state reader does.
#[test]
fn a_stream_wait_at_the_maximal_waiter_count_polls_without_wrapping_it() {
    if role().is_some() {
        return;
    }
    long_slices();
    let name = Name::new("wake-hostile-waiters");
    let mut tx = u64::create_stream(&name, 8).unwrap();
    let f = file_of(&name);
    put_u32(&f, WAITERS, u32::MAX);
    let mut rx = u64::subscribe(&name).unwrap();
    let waiting = start_sleeping(move || rx.recv_timeout(BOUND));
    assert_eq!(
        u32_at(&f, WAITERS),
        u32::MAX,
        "the wait wrapped the waiter count"
    );
    tx.send(&7);
    assert_eq!(waiting.join().unwrap().unwrap(), 7);
    assert_eq!(u32_at(&f, WAITERS), u32::MAX);
}

/// A producer that finds the count of producers waiting for room at its maximum does not wrap
/// it either, and still sends once there is room.
#[test]
fn a_wait_for_room_at_the_maximal_waiter_count_polls_without_wrapping_it() {
    if role().is_some() {
        return;
    }
    long_slices();
    let name = Name::new("wake-hostile-space");
    let mut tx = u64::create_queue(&name, 1).unwrap();
    tx.try_send(&1).unwrap();
    let f = file_of(&name);
    put_u32(&f, SPACE_WAITERS, u32::MAX);
    let mut rx = u64::open_consumer(&name).unwrap();
    let waiting = start_sleeping(move || {
        let sent = tx.send_timeout(&2, BOUND);
        (sent, tx)
    });
    assert_eq!(
        u32_at(&f, SPACE_WAITERS),
        u32::MAX,
        "the wait wrapped the count of producers waiting for room"
    );
    assert_eq!(rx.try_recv().unwrap(), Some(1));
    let (sent, _tx) = waiting.join().unwrap();
    sent.unwrap();
    assert_eq!(rx.try_recv().unwrap(), Some(2));
    assert_eq!(u32_at(&f, SPACE_WAITERS), u32::MAX);
}
