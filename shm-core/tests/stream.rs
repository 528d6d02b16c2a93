//! Streams and queues: the API in one process, then across processes: a writer sending 10
//! million messages to two fast readers and a deliberately slow one (order, consistency, exact
//! loss counts), and a queue whose consumer is killed and restarted mid-stream (nothing lost,
//! nothing duplicated).
//!
//! `SHM_STREAM_MESSAGES` sets the broadcast test's message count (default 10,000,000).

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::{Error, Options, SegmentKind, SharedState};
use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

/// A 64-byte message whose every word derives from its number.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Msg {
    words: [u64; 8],
}

fn word(n: u64, i: usize) -> u64 {
    if i == 0 {
        n
    } else {
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(7 * i as u32)
            ^ i as u64
    }
}

fn msg(n: u64) -> Msg {
    Msg {
        words: core::array::from_fn(|i| word(n, i)),
    }
}

/// The message's number, after checking that every field agrees with it.
fn check(m: &Msg) -> u64 {
    let n = m.words[0];
    assert_eq!(*m, msg(n), "message {n} is inconsistent");
    n
}

const WAIT: Duration = Duration::from_secs(30);

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("broadcast-writer") => broadcast_writer(),
        Some("broadcast-reader") => broadcast_reader(false),
        Some("slow-reader") => broadcast_reader(true),
        Some("queue-producer") => queue_producer(),
        Some("queue-consumer") => queue_consumer(),
        Some("without-syscalls") => send_and_receive_without_syscalls(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn total() -> u64 {
    env("SHM_TOTAL").parse().unwrap()
}

fn broadcast_writer() {
    let mut tx = Msg::open_stream_writer(&env("SHM_NAME")).expect("take over the stream");
    assert_eq!(tx.sent(), 0);
    for n in 1..=total() {
        tx.send(&msg(n));
    }
}

/// Receives until message `total`, checking each; prints what it received and lost.
fn broadcast_reader(slow: bool) {
    let mut rx = Msg::subscribe(&env("SHM_NAME")).expect("subscribe");
    println!("ready");
    let total = total();
    let (mut next, mut received, mut missed, mut gaps) = (1u64, 0u64, 0u64, 0u64);
    while next <= total {
        match rx.recv_timeout(WAIT) {
            Ok(m) => {
                let n = check(&m);
                assert_eq!(n, next, "out of order, duplicated or unreported gap");
                next = n + 1;
                received += 1;
                if slow && received % 20_000 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(Error::Lagged { missed: m }) => {
                assert!(m > 0);
                missed += m;
                gaps += 1;
                next += m;
            }
            Err(e) => panic!("receive: {e}"),
        }
    }
    assert!(
        matches!(rx.try_recv(), Ok(None)),
        "nothing after the last message"
    );
    println!("received={received} missed={missed} gaps={gaps}");
}

/// Waits for a child's `ready` line.
fn wait_ready(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The child's test harness prints its own lines first.
    while line.trim() != "ready" {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child ended before it was ready"
        );
    }
    out
}

/// Waits for a child to succeed and returns the `key=value` numbers of its last line.
fn finish(mut child: Child, mut out: BufReader<std::process::ChildStdout>) -> Vec<(String, u64)> {
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "child failed: {rest}");
    rest.lines()
        .rfind(|l| l.contains('='))
        .expect("child report")
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn get(kv: &[(String, u64)], key: &str) -> u64 {
    kv.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn ten_million_messages_to_two_readers_and_a_slow_one() {
    if role().is_some() {
        return;
    }
    let total: u64 = std::env::var("SHM_STREAM_MESSAGES")
        .map(|v| v.parse().unwrap())
        .unwrap_or(10_000_000);
    let name = Name::new("bcast");
    drop(Msg::create_stream(&name, 4096).unwrap());
    let envs = [
        ("SHM_NAME", name.to_string()),
        ("SHM_TOTAL", total.to_string()),
    ];
    let mut readers = Vec::new();
    for role in ["broadcast-reader", "broadcast-reader", "slow-reader"] {
        let mut child = spawn_role(ENTRY, role, &envs);
        let out = wait_ready(&mut child);
        readers.push((role, child, out));
    }
    let mut writer = spawn_role(ENTRY, "broadcast-writer", &envs);
    for (role, child, out) in readers {
        let kv = finish(child, out);
        let (received, missed) = (get(&kv, "received"), get(&kv, "missed"));
        eprintln!(
            "{role}: received {received}, lost {missed} in {} gaps",
            get(&kv, "gaps")
        );
        assert_eq!(
            received + missed,
            total,
            "{role}: every message received or counted lost"
        );
        assert!(received > 0);
        if role == "slow-reader" {
            assert!(missed > 0, "the slow reader should have fallen behind");
        }
    }
    assert!(writer.wait().unwrap().success());
}

/// A log in shared memory that consumer processes record into, which survives their deaths:
/// the position each consumer started at, and how often each message number was received.
struct Log {
    ptr: *mut u8,
    len: usize,
    /// The file to remove on drop (the creator's log only).
    owned: Option<String>,
}

const LOG_STARTS: usize = 64;

impl Log {
    fn create(path: &str, messages: u64) -> Log {
        let f = std::fs::File::create_new(path).unwrap();
        f.set_len((LOG_STARTS * 8) as u64 + messages + 1).unwrap();
        let mut log = Self::map(path);
        log.owned = Some(path.to_string());
        log
    }

    fn map(path: &str) -> Log {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let len = f.metadata().unwrap().len() as usize;
        use std::os::fd::AsRawFd;
        // SAFETY: mapping a regular file we opened, of `len` bytes, shared, with no address
        // hint; the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Log {
            ptr: ptr as *mut u8,
            len,
            owned: None,
        }
    }

    fn start(&self, instance: usize) -> &AtomicU64 {
        assert!(instance < LOG_STARTS);
        // SAFETY: the first LOG_STARTS * 8 bytes of the page-aligned mapping are the starts,
        // 8-aligned; atomics are valid for any bytes; the borrow is tied to the mapping.
        unsafe { &*(self.ptr as *const AtomicU64).add(instance) }
    }

    fn count(&self, n: u64) -> &AtomicU8 {
        let i = LOG_STARTS * 8 + n as usize;
        assert!(i < self.len);
        // SAFETY: `i` is inside the mapping (asserted); AtomicU8 has alignment 1.
        unsafe { &*(self.ptr.add(i) as *const AtomicU8) }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        if let Some(path) = &self.owned {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The most messages a consumer receives at once.
const BATCH: usize = 16;

fn queue_producer() {
    let mut tx = Msg::open_queue_producer(&env("SHM_NAME")).expect("take over the queue");
    for n in tx.sent() + 1..=total() {
        tx.send(&msg(n));
    }
}

/// Takes messages until the last, checking each continues exactly after the previous one
/// taken (by this process or the one before it), and counts each in the log.
fn queue_consumer() {
    let log = Log::map(&env("SHM_LOG"));
    let instance: usize = env("SHM_INSTANCE").parse().unwrap();
    let mut rx = Msg::open_consumer(&env("SHM_NAME")).expect("open the consumer");
    let mut next = rx.taken() + 1;
    log.start(instance).store(next, Ordering::SeqCst);
    let total = total();
    let mut batch = [msg(0); BATCH];
    while next <= total {
        // Alternate batches, receives into a buffer (waiting with a receive when there is
        // nothing yet) and single receives: each stores the position.
        let got = match next % 3 {
            0 => rx.recv_batch(&mut batch).unwrap(),
            1 if rx.recv_into(&mut batch[0]).unwrap() => 1,
            _ => {
                batch[0] = rx.recv_timeout(WAIT).expect("receive");
                1
            }
        };
        for m in &batch[..got] {
            let n = check(m);
            assert_eq!(n, next, "queue out of order or duplicated");
            log.count(n).fetch_add(1, Ordering::SeqCst);
            next += 1;
        }
        assert_eq!(rx.taken(), next - 1);
    }
    println!("taken={}", rx.taken());
}

#[test]
fn queue_consumer_killed_and_restarted_loses_and_repeats_nothing() {
    if role().is_some() {
        return;
    }
    let total = 2_000_000u64;
    let name = Name::new("queue");
    let log_path = format!("/dev/shm{}-log", &*name);
    let log = Log::create(&log_path, total);
    drop(Msg::create_queue(&name, 1024).unwrap());
    let envs = |instance: usize| {
        vec![
            ("SHM_NAME", name.to_string()),
            ("SHM_TOTAL", total.to_string()),
            ("SHM_LOG", log_path.clone()),
            ("SHM_INSTANCE", instance.to_string()),
        ]
    };
    let mut producer = spawn_role(ENTRY, "queue-producer", &envs(0));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let kills = 8u64;
    // Each consumer is killed once it has counted a message past a random target in its share
    // of the stream, wherever it is then: killing on progress rather than after a fixed sleep
    // keeps every kill mid-stream however fast or slow the machine is.
    let share = total / (kills + 1);
    for instance in 0..kills {
        let mut c = spawn_role(ENTRY, "queue-consumer", &envs(instance as usize));
        let target = instance * share + 1 + rng.below(share);
        let deadline = std::time::Instant::now() + WAIT;
        while log.count(target).load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "consumer {instance} never reached message {target}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
        kill(&mut c);
    }
    let last = spawn_role(ENTRY, "queue-consumer", &envs(kills as usize));
    let out = last.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(producer.wait().unwrap().success());

    // A consumer killed after storing its position but before counting what it received may
    // leave those messages uncounted: at most one batch, right before the next consumer's
    // start. Nothing else may be missing, and nothing may be counted twice.
    let mut starts = Vec::new();
    for instance in 1..=kills as usize {
        let s = log.start(instance).load(Ordering::SeqCst);
        if s > 0 {
            starts.push(s);
        }
    }
    let may_be_uncounted = |n: u64| starts.iter().any(|&s| n < s && s - n <= BATCH as u64);
    let mut uncounted = 0;
    for n in 1..=total {
        match log.count(n).load(Ordering::SeqCst) {
            1 => {}
            0 if may_be_uncounted(n) => uncounted += 1,
            c => panic!("message {n} received {c} times (consumer starts: {starts:?})"),
        }
    }
    eprintln!("consumer starts: {starts:?}; {uncounted} taken by a consumer killed before it counted them");
    assert!(
        starts.len() >= 3 && starts.windows(2).any(|w| w[0] != w[1]),
        "the consumers should have been killed mid-stream: starts {starts:?}"
    );
}

#[test]
fn send_receive_in_one_process() {
    let name = Name::new("basic");
    let mut tx = Msg::create_stream(&name, 8).unwrap();
    assert!(tx.created());
    assert_eq!(
        (tx.info().slots(), tx.sent(), tx.info().writer().epoch()),
        (8, 0, 1)
    );
    tx.send(&msg(1));
    let mut rx = Msg::subscribe(&name).unwrap();
    assert_eq!(
        rx.position(),
        2,
        "a new reader starts after the newest message"
    );
    assert!(matches!(rx.try_recv(), Ok(None)));
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    for n in 2..=4 {
        tx.send(&msg(n));
    }
    assert_eq!(check(&rx.try_recv().unwrap().unwrap()), 2);
    assert_eq!(check(&rx.recv().unwrap()), 3);
    let got: Vec<u64> = rx.try_iter().map(|m| check(&m.unwrap())).collect();
    assert_eq!(got, [4]);

    let mut old = Msg::subscribe_from_oldest(&name).unwrap();
    assert_eq!(old.position(), 1);
    assert_eq!(check(&old.iter().next().unwrap().unwrap()), 1);

    // Fall behind: 20 more messages into 8 slots. The reader at 5 lost 5..=16.
    for n in 5..=24 {
        tx.send(&msg(n));
    }
    match rx.try_recv() {
        Err(Error::Lagged { missed }) => assert_eq!(missed, 12),
        other => panic!("expected Lagged, got {other:?}"),
    }
    let mut buf = [msg(0); 5];
    assert_eq!(rx.recv_batch(&mut buf).unwrap(), 5);
    assert_eq!(buf.map(|m| check(&m)), [17, 18, 19, 20, 21]);
    assert_eq!(rx.recv_batch(&mut buf).unwrap(), 3);
    assert_eq!(rx.recv_batch(&mut buf).unwrap(), 0);

    // A gap met mid-batch ends the batch, and the next call reports it.
    old.recv_batch(&mut [msg(0); 1]).unwrap_err();
    let mut r2 = tx.subscribe().unwrap();
    tx.send(&msg(25));
    let mut one = [msg(0); 4];
    assert_eq!(r2.recv_batch(&mut one).unwrap(), 1);
    for n in 26..=40 {
        tx.send(&msg(n));
    }
    assert!(matches!(
        r2.recv_batch(&mut one),
        Err(Error::Lagged { missed: 7 })
    ));
    assert_eq!(r2.recv_batch(&mut one).unwrap(), 4);
    assert_eq!(check(&one[0]), 33);

    // A second writer is refused while the first lives; a takeover continues the numbering.
    assert!(matches!(
        Msg::open_stream_writer(&name),
        Err(Error::WriterBusy { .. })
    ));
    assert!(rx.info().writer().alive());
    drop(tx);
    assert!(!rx.info().writer().alive());
    let mut tx = Msg::open_stream_writer(&name).unwrap();
    assert_eq!(
        (tx.sent(), tx.info().writer().epoch(), tx.created()),
        (40, 2, false)
    );
    assert_eq!(rx.info().writer().epoch(), 2);
    tx.send(&msg(41));
    // The reader at 25 lost 25..=33 (the ring holds 34..=41), whichever writer sent them.
    assert!(matches!(rx.try_recv(), Err(Error::Lagged { missed: 9 })));
    let rest: Vec<u64> = rx.try_iter().map(|m| check(&m.unwrap())).collect();
    assert_eq!(rest, (34..=41).collect::<Vec<_>>());
}

#[test]
fn a_blocked_reader_is_woken_by_a_send_from_another_thread() {
    let name = Name::new("wake");
    let mut tx = Msg::create_stream(&name, 4).unwrap();
    let mut rx = Msg::subscribe(&name).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx.send(&msg(1));
        tx
    });
    assert_eq!(check(&rx.recv_timeout(Duration::from_secs(10)).unwrap()), 1);
    drop(t.join().unwrap());
}

#[test]
fn queue_in_one_process() {
    let name = Name::new("q");
    let mut tx = Msg::create_queue(&name, 4).unwrap();
    let mut rx = Msg::open_consumer(&name).unwrap();
    assert!(matches!(
        Msg::open_consumer(&name),
        Err(Error::ConsumerBusy)
    ));
    assert!(matches!(rx.try_recv(), Ok(None)));
    for n in 1..=4 {
        tx.try_send(&msg(n)).unwrap();
    }
    assert!(matches!(tx.try_send(&msg(5)), Err(Error::Full)));
    assert!(matches!(
        tx.send_timeout(&msg(5), Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!((tx.backlog(), rx.backlog()), (4, 4));
    assert_eq!(check(&rx.try_recv().unwrap().unwrap()), 1);
    tx.try_send(&msg(5)).unwrap();
    let mut buf = [msg(0); 8];
    assert_eq!(rx.recv_batch(&mut buf).unwrap(), 4);
    assert_eq!(buf[..4].iter().map(check).collect::<Vec<_>>(), [2, 3, 4, 5]);

    // A producer blocked on a full queue is woken by the consumer.
    for n in 6..=9 {
        tx.send(&msg(n));
    }
    let t = std::thread::spawn(move || {
        tx.send(&msg(10));
        tx
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(check(&rx.recv().unwrap()), 6);
    let tx = t.join().unwrap();
    assert_eq!(tx.sent(), 10);

    // A consumer that reopens continues after the last message taken.
    drop(rx);
    let mut rx = Msg::open_consumer(&name).unwrap();
    assert_eq!(rx.taken(), 6);
    assert_eq!(check(&rx.recv_timeout(WAIT).unwrap()), 7);
    drop(tx);
    let mut tx = Msg::open_queue_producer(&name).unwrap();
    assert_eq!((tx.sent(), tx.info().writer().epoch()), (10, 2));
    tx.try_send(&msg(11)).unwrap();
    let got: Vec<u64> = (0..4)
        .map(|_| check(&rx.try_recv().unwrap().unwrap()))
        .collect();
    assert_eq!(got, [8, 9, 10, 11]);

    // `recv_into` takes the next message into a buffer, or reports none.
    let mut into = msg(0);
    assert!(!rx.recv_into(&mut into).unwrap());
    tx.try_send(&msg(12)).unwrap();
    tx.try_send(&msg(13)).unwrap();
    assert!(rx.recv_into(&mut into).unwrap());
    assert_eq!((check(&into), rx.taken()), (12, 12));
    assert_eq!(check(&rx.try_recv().unwrap().unwrap()), 13);
    assert!(!rx.recv_into(&mut into).unwrap());
    assert_eq!(tx.backlog(), 0);
}

#[test]
fn each_kind_refuses_the_others_with_a_clear_error() {
    let state = Name::new("kind-state");
    let stream = Name::new("kind-stream");
    let queue = Name::new("kind-queue");
    let _w = Msg::create(&state, &msg(0)).unwrap();
    let _s = Msg::create_stream(&stream, 4).unwrap();
    let _q = Msg::create_queue(&queue, 4).unwrap();

    let e = Msg::open(&stream).unwrap_err();
    assert!(matches!(
        e,
        Error::WrongKind {
            expected: SegmentKind::State,
            found: SegmentKind::Stream
        }
    ));
    assert_eq!(
        e.to_string(),
        "this segment holds a broadcast stream (read it with `subscribe`), not shared state (read it with `open`)"
    );
    assert!(matches!(
        shm_core::RawReader::open(&queue),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Msg::open_writer(&stream),
        Err(Error::WrongKind { .. })
    ));
    let e = Msg::subscribe(&state).unwrap_err();
    assert!(matches!(
        e,
        Error::WrongKind {
            expected: SegmentKind::Stream,
            found: SegmentKind::State
        }
    ));
    assert!(e.to_string().contains("with `open`"), "{e}");
    assert!(matches!(
        Msg::subscribe(&queue),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Msg::open_consumer(&stream),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        Msg::open_queue_producer(&stream),
        Err(Error::WrongKind { .. })
    ));
    // The layout is still checked: a stream of another type is a layout mismatch.
    assert!(matches!(
        u64::subscribe(&stream),
        Err(Error::LayoutMismatch { .. })
    ));
    // An unknown kind is a corrupt header.
    common::poke_bytes(&stream, 96, &7u32.to_ne_bytes());
    assert!(matches!(
        Msg::subscribe(&stream),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        Options::new()
            .ready_wait(Duration::ZERO)
            .open::<Msg>(&stream),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn errors_display_lowercase() {
    for e in [
        Error::Lagged { missed: 3 },
        Error::Lagged { missed: 1 },
        Error::Full,
        Error::ConsumerBusy,
    ] {
        let s = e.to_string();
        assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
    }
    assert_eq!(
        Error::Lagged { missed: 3 }.to_string(),
        "the reader fell behind and lost 3 messages"
    );
}

/// Sends and receives 10,000 messages on a stream and a queue under a seccomp filter that kills
/// the process at its first system call other than exit_group: it survives only if sending
/// and receiving make none.
fn send_and_receive_without_syscalls() {
    let mut tx = Msg::open_stream_writer(&env("SHM_NAME")).unwrap();
    let mut rx = tx.subscribe().unwrap();
    let mut qtx = Msg::open_queue_producer(&env("SHM_QUEUE")).unwrap();
    let mut qrx = Msg::open_consumer(&env("SHM_QUEUE")).unwrap();
    let messages: Vec<Msg> = (1..=10_000).map(msg).collect();
    common::seccomp::forbid_syscalls_except_exit();
    let mut ok = true;
    for m in &messages {
        tx.send(m);
        ok &= matches!(rx.try_recv(), Ok(Some(r)) if r == *m);
        ok &= qtx.try_send(m).is_ok();
        ok &= matches!(qrx.try_recv(), Ok(Some(r)) if r == *m);
        let mut into = msg(0);
        ok &= qtx.try_send(m).is_ok();
        ok &= matches!(qrx.recv_into(&mut into), Ok(true)) && into == *m;
    }
    // SAFETY: exit_group ends the process at once; nothing after it runs.
    unsafe { libc::syscall(libc::SYS_exit_group, if ok { 0 } else { 1 }) };
    unreachable!();
}

#[test]
fn sending_and_receiving_make_no_syscall_unless_somebody_waits() {
    use std::os::unix::process::ExitStatusExt;
    if role().is_some() {
        return;
    }
    let stream = Name::new("nosys-stream");
    let queue = Name::new("nosys-queue");
    drop(Msg::create_stream(&stream, 64).unwrap());
    drop(Msg::create_queue(&queue, 64).unwrap());
    let run = || {
        let envs = [
            ("SHM_NAME", stream.to_string()),
            ("SHM_QUEUE", queue.to_string()),
        ];
        spawn_role(ENTRY, "without-syscalls", &envs).wait().unwrap()
    };
    let status = run();
    assert!(
        status.success(),
        "a send or receive made a syscall: {status:?}"
    );
    assert_eq!(
        Msg::subscribe_from_oldest(&stream)
            .unwrap()
            .try_recv()
            .unwrap(),
        Some(msg(9_937))
    );

    // With a waiter registered (as a reader blocked in `recv` would be), a send wakes it with a
    // futex syscall, and the filter kills the sender: the check above can fail.
    common::poke(&stream, common::Field::Waiters, 1);
    let status = run();
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{status:?}");
}

/// The message in `bytes`, as a [`RawStreamReader`](shm_core::RawStreamReader) copied it.
fn msg_of_bytes(bytes: &[u8]) -> Msg {
    Msg {
        words: core::array::from_fn(|i| {
            u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap())
        }),
    }
}

#[test]
fn untyped_reader_receives_another_process_messages_by_the_stored_layout() {
    if role().is_some() {
        return;
    }
    let total = 300_000u64;
    let name = Name::new("raw");
    drop(Msg::create_stream(&name, 256).unwrap());
    let mut rx = shm_core::RawStreamReader::subscribe(&name).unwrap();
    assert_eq!(rx.info().kind(), SegmentKind::Stream);
    assert_eq!((rx.info().slots(), rx.payload_size()), (256, 64));
    assert_eq!(rx.info().layout_hash(), Msg::LAYOUT_HASH);
    assert_eq!(rx.taken(), None);
    let writer = spawn_role(
        ENTRY,
        "broadcast-writer",
        &[
            ("SHM_NAME", name.to_string()),
            ("SHM_TOTAL", total.to_string()),
        ],
    );
    let mut bytes = vec![0u8; rx.payload_size()];
    let (mut next, mut received, mut missed) = (1u64, 0u64, 0u64);
    while next <= total {
        match rx.recv_timeout(&mut bytes, WAIT) {
            Ok(n) => {
                assert_eq!(n, next, "out of order, duplicated or unreported gap");
                assert_eq!(check(&msg_of_bytes(&bytes)), n);
                if n == 1 {
                    // The stored layout decodes the bytes with no Rust type at hand.
                    let value = rx.layout().decode_value(&bytes).unwrap();
                    assert!(format!("{value:?}").contains(&word(1, 3).to_string()));
                }
                next = n + 1;
                received += 1;
                if received % 25_000 == 0 {
                    // Fall behind now and then, so that the writer laps this reader.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(Error::Lagged { missed: m }) => {
                missed += m;
                next += m;
            }
            Err(e) => panic!("receive: {e}"),
        }
    }
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(received + missed, total);
    assert_eq!(rx.sent(), total);
    assert!(matches!(rx.try_recv(&mut bytes), Ok(None)));
    eprintln!("received {received}, lost {missed}");
}

#[test]
fn untyped_reader_observes_a_queue_without_taking_and_refuses_state() {
    let queue = Name::new("raw-queue");
    let state = Name::new("raw-state");
    let mut producer = Msg::create_queue(&queue, 8).unwrap();
    for n in 1..=3 {
        producer.send(&msg(n));
    }
    let mut bytes = [0u8; 64];
    let mut observer = shm_core::RawStreamReader::subscribe_from_oldest(&queue).unwrap();
    assert_eq!(observer.info().kind(), SegmentKind::Queue);
    for n in 1..=3 {
        assert_eq!(observer.try_recv(&mut bytes).unwrap(), Some(n));
        assert_eq!(check(&msg_of_bytes(&bytes)), n);
    }
    assert!(matches!(observer.try_recv(&mut bytes), Ok(None)));
    assert_eq!(observer.taken(), Some(0), "observing takes nothing");

    // The consumer still gets everything; a new observer from the oldest starts after what it
    // took.
    let mut consumer = Msg::open_consumer(&queue).unwrap();
    assert_eq!(check(&consumer.recv().unwrap()), 1);
    assert_eq!(check(&consumer.recv().unwrap()), 2);
    let mut late = shm_core::RawStreamReader::subscribe_from_oldest(&queue).unwrap();
    assert_eq!((late.taken(), late.position()), (Some(2), 3));
    assert_eq!(late.try_recv(&mut bytes).unwrap(), Some(3));
    producer.send(&msg(4));
    assert_eq!(
        observer.recv_timeout(&mut bytes, WAIT).unwrap(),
        4,
        "an observer waits for the producer like a stream reader"
    );
    assert_eq!(check(&consumer.recv().unwrap()), 3);

    let _w = Msg::create(&state, &msg(0)).unwrap();
    let e = shm_core::RawStreamReader::subscribe(&state).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongKind {
                expected: SegmentKind::Stream,
                found: SegmentKind::State
            }
        ),
        "{e}"
    );
}
