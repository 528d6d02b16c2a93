//! Multi-producer streams and queues (lanes), with real producer processes: four producers
//! send numbered messages into one stream and one queue while this process reads and consumes;
//! then producers are killed mid-send over and over and restarted, taking lanes again.
//!
//! What is checked, from the messages' own contents (each says its producer, its sequence
//! number, and the lane and lane number its producer sent it as): per producer, in order and
//! never duplicated; on the stream, every loss reported exactly (received + lost == sent, per
//! lane and per producer); on the queue, nothing lost.

mod common;

use common::{kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::stream::lanes::lane_name;
use shm_core::{Error, LaneConsumer, LaneReader, SharedState};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout};
use std::time::{Duration, Instant};

const LANES: usize = 4;

/// A message: who sent it, its place in its producer's sends, where its producer sent it
/// (lane and lane number), and filler words derived from all that (a torn copy fails the check).
trait Message: SharedState + Copy {
    fn make(producer: u64, seq: u64, lane: u64, number: u64) -> Self;
    /// `(producer, seq, lane, number)`, after checking the filler.
    fn check(&self) -> (u64, u64, u64, u64);
}

fn filler(head: [u64; 4], i: usize) -> u64 {
    (head[0] << 48 ^ head[1] ^ head[2] << 40 ^ head[3] << 20)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i as u64)
}

macro_rules! message {
    ($name:ident, $words:expr) => {
        #[derive(SharedState, Clone, Copy)]
        #[repr(C)]
        struct $name {
            head: [u64; 4],
            fill: [u64; $words],
        }
        impl Message for $name {
            fn make(producer: u64, seq: u64, lane: u64, number: u64) -> Self {
                let head = [producer, seq, lane, number];
                $name {
                    head,
                    fill: core::array::from_fn(|i| filler(head, i)),
                }
            }
            fn check(&self) -> (u64, u64, u64, u64) {
                for (i, &w) in self.fill.iter().enumerate() {
                    assert_eq!(w, filler(self.head, i), "torn message {:?}", self.head);
                }
                let [p, s, l, n] = self.head;
                (p, s, l, n)
            }
        }
    };
}

message!(Small, 1);
// A 4 KiB message: a send takes long enough that kills land inside one.
message!(Big, 508);

/// The removal of a multi-producer stream or queue and all its lanes, on drop.
struct LanesName(Name);

impl LanesName {
    fn new(tag: &str) -> Self {
        LanesName(Name::new(tag))
    }
}

impl std::ops::Deref for LanesName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for LanesName {
    fn drop(&mut self) {
        let _ = shm_core::remove_lanes(&self.0);
        for k in 0..LANES {
            let _ = shm_core::remove(&lane_name(&self.0, k));
        }
    }
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("small") => produce::<Small>(),
        Some("big") => produce::<Big>(),
        Some("turns") => take_turns(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Joins the stream and the queue, says which lanes it took and the lane numbers it starts
/// at, sends `SHM_COUNT` messages to each (stream first, then queue, per message), and says
/// what it completed.
fn produce<M: Message>() {
    let producer: u64 = common::env("SHM_PRODUCER").parse().unwrap();
    let count: u64 = common::env("SHM_COUNT").parse().unwrap();
    let mut tx = M::join_stream(&common::env("SHM_STREAM")).expect("join the stream");
    let mut q = M::join_queue(&common::env("SHM_QUEUE")).expect("join the queue");
    let (sl, ql) = (tx.lane() as u64, q.lane() as u64);
    println!(
        "joined stream={sl}@{} queue={ql}@{}",
        tx.sent() + 1,
        q.sent() + 1
    );
    let mut m = Box::new(M::make(0, 0, 0, 0));
    for seq in 1..=count {
        *m = M::make(producer, seq, sl, tx.sent() + 1);
        tx.send(&m);
        *m = M::make(producer, seq, ql, q.sent() + 1);
        q.send(&m);
    }
    println!("completed {count}");
}

/// One producer incarnation as its "joined" line says.
#[derive(Clone, Copy, Debug)]
struct Joined {
    stream_lane: usize,
    stream_from: u64,
    queue_lane: usize,
    queue_from: u64,
}

fn spawn_producer(
    role: &str,
    stream: &str,
    queue: &str,
    producer: u64,
    count: u64,
) -> (Child, Lines<BufReader<ChildStdout>>, Joined) {
    let mut child = spawn_role(
        ENTRY,
        role,
        &[
            ("SHM_STREAM", stream.to_string()),
            ("SHM_QUEUE", queue.to_string()),
            ("SHM_PRODUCER", producer.to_string()),
            ("SHM_COUNT", count.to_string()),
        ],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("joined "))
        .expect("producer's joined line");
    let parse = |part: &str| {
        let (lane, from) = part.split_once('=').unwrap().1.split_once('@').unwrap();
        (lane.parse().unwrap(), from.parse().unwrap())
    };
    let mut parts = line["joined ".len()..].split(' ');
    let (stream_lane, stream_from) = parse(parts.next().unwrap());
    let (queue_lane, queue_from) = parse(parts.next().unwrap());
    (
        child,
        lines,
        Joined {
            stream_lane,
            stream_from,
            queue_lane,
            queue_from,
        },
    )
}

/// The stream reader's record: per lane, the next lane number expected and the lane numbers
/// received or reported lost (as ranges); per producer, the last `(seq, number)` received.
#[derive(Default)]
struct StreamTally {
    next: [u64; LANES],
    received: [u64; LANES],
    lost: [u64; LANES],
    /// Lost lane-number ranges `[from, to)` per lane.
    gaps: [Vec<(u64, u64)>; LANES],
    /// Per producer: lane, and `number - seq` (constant for a producer's messages on one lane).
    last: HashMap<u64, (u64, u64)>,
    /// Messages received per producer.
    per_producer: HashMap<u64, u64>,
}

impl StreamTally {
    fn new() -> Self {
        StreamTally {
            next: [1; LANES],
            ..Default::default()
        }
    }

    /// Receives what is available now, at most `limit` messages or gaps; returns how many it
    /// handled.
    fn drain<M: Message>(&mut self, rx: &mut LaneReader<M>, limit: u64) -> u64 {
        let mut handled = 0;
        while handled < limit {
            match rx.try_recv() {
                Ok(Some(m)) => {
                    let (p, seq, lane, number) = m.check();
                    let l = rx.last_lane();
                    assert_eq!(
                        lane as usize, l,
                        "message of lane {lane} returned as lane {l}'s"
                    );
                    assert_eq!(
                        number, self.next[l],
                        "lane {l}: out of order, duplicated or an unreported gap"
                    );
                    assert_eq!(rx.position(l), number + 1);
                    if let Some(&(plane, offset)) = self.last.get(&p) {
                        assert_eq!(plane, lane, "producer {p} moved lanes without a restart");
                        assert_eq!(
                            number - seq,
                            offset,
                            "producer {p}: message {seq} out of order, duplicated or lost without a report"
                        );
                    }
                    assert!(seq >= 1 && seq <= number);
                    self.last.insert(p, (lane, number - seq));
                    self.next[l] = number + 1;
                    self.received[l] += 1;
                    *self.per_producer.entry(p).or_default() += 1;
                }
                Ok(None) => return handled,
                Err(Error::Lagged { missed }) => {
                    let l = rx.last_lane();
                    let to = rx.position(l);
                    assert_eq!(
                        to - missed,
                        self.next[l],
                        "lane {l}: a gap that does not start where the lane stopped"
                    );
                    self.gaps[l].push((self.next[l], to));
                    self.lost[l] += missed;
                    self.next[l] = to;
                }
                Err(e) => panic!("receive: {e}"),
            }
            handled += 1;
        }
        handled
    }

    /// Received plus lost on every lane.
    fn total(&self) -> u64 {
        self.received.iter().sum::<u64>() + self.lost.iter().sum::<u64>()
    }

    /// Lost lane numbers of `lane` within `[from, to)`.
    fn lost_within(&self, lane: usize, from: u64, to: u64) -> u64 {
        self.gaps[lane]
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }
}

/// The consumer's record: per producer, the last seq taken (each must be the one after).
#[derive(Default)]
struct QueueTally {
    next: [u64; LANES],
    last_seq: HashMap<u64, u64>,
    taken: u64,
}

impl QueueTally {
    fn new() -> Self {
        QueueTally {
            next: [1; LANES],
            ..Default::default()
        }
    }

    fn take<M: Message>(&mut self, c: &mut LaneConsumer<M>, m: M) {
        let (p, seq, lane, number) = m.check();
        let l = c.last_lane();
        assert_eq!(lane as usize, l);
        assert_eq!(
            number, self.next[l],
            "queue lane {l}: out of order, duplicated or lost"
        );
        assert_eq!(c.taken(l), number);
        let prev = self.last_seq.insert(p, seq).unwrap_or(0);
        assert_eq!(
            seq,
            prev + 1,
            "queue: producer {p}'s messages out of order, duplicated or lost"
        );
        self.next[l] = number + 1;
        self.taken += 1;
    }

    /// Takes what is available now, at most `limit` messages; returns how many.
    fn drain<M: Message>(&mut self, c: &mut LaneConsumer<M>, limit: u64) -> u64 {
        let mut n = 0;
        while n < limit {
            let Some(m) = c.try_recv().expect("take") else {
                break;
            };
            self.take(c, m);
            n += 1;
        }
        n
    }
}

fn per_producer_count() -> u64 {
    if std::env::var("SHM_STRESS_FULL").is_ok_and(|v| v == "1") {
        5_000_000
    } else {
        500_000
    }
}

#[test]
fn four_producers_into_one_stream_and_one_queue() {
    if role().is_some() {
        return;
    }
    let count = per_producer_count();
    let stream = LanesName::new("lanes-s");
    let queue = LanesName::new("lanes-q");
    drop(Small::create_lanes(&stream, LANES, 1024).unwrap());
    drop(Small::create_lane_queue(&queue, LANES, 1024).unwrap());
    let mut rx = Small::subscribe_lanes(&stream).unwrap();
    let mut consumer = Small::open_lane_consumer(&queue).unwrap();
    assert!(matches!(
        Small::open_lane_consumer(&queue),
        Err(Error::ConsumerBusy)
    ));

    let start = Instant::now();
    let mut children: Vec<_> = (0..LANES as u64)
        .map(|p| spawn_producer("small", &stream, &queue, p, count))
        .collect();
    let mut lanes_taken: Vec<usize> = children.iter().map(|c| c.2.stream_lane).collect();
    lanes_taken.sort();
    assert_eq!(
        lanes_taken,
        [0, 1, 2, 3],
        "each producer has a lane of its own"
    );
    // A fifth producer finds no free lane.
    assert!(matches!(
        Small::join_stream(&stream),
        Err(Error::NoFreeLane { lanes: 4 })
    ));

    let total = count * LANES as u64;
    let mut qt = QueueTally::new();
    let (st, rx) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut st = StreamTally::new();
            let mut idle = 0u64;
            while st.total() < total {
                if st.drain(&mut rx, u64::MAX) == 0 {
                    idle += 1;
                    assert!(idle < 50_000_000, "the reader waited without end");
                    std::thread::yield_now();
                }
            }
            (st, rx)
        });
        while qt.taken < total {
            match consumer.recv_timeout(Duration::from_secs(120)) {
                Ok(m) => qt.take(&mut consumer, m),
                Err(e) => panic!("consumer: {e} after {} messages", qt.taken),
            }
        }
        reader.join().unwrap()
    });
    let elapsed = start.elapsed();
    for (child, lines, _) in &mut children {
        let line = lines
            .map_while(Result::ok)
            .find(|l| l.starts_with("completed "));
        assert_eq!(line, Some(format!("completed {count}")));
        assert!(child.wait().unwrap().success());
    }
    for l in 0..LANES {
        assert_eq!(
            st.received[l] + st.lost[l],
            count,
            "stream lane {l}: received + lost == sent"
        );
        assert_eq!(rx.sent(l), count);
        assert_eq!(consumer.taken(l), count);
    }
    for (p, (_, _, j)) in children.iter().enumerate() {
        let p = p as u64;
        assert_eq!(qt.last_seq[&p], count, "queue: producer {p} lost nothing");
        // One producer per lane for the whole run: its losses are its lane's.
        assert_eq!(
            st.per_producer[&p] + st.lost_within(j.stream_lane, j.stream_from, count + 1),
            count,
            "stream: producer {p} received + lost == sent"
        );
    }
    assert_eq!(consumer.backlog(), 0);
    eprintln!(
        "{LANES} producers x {count} messages in {:.2?}: stream received {} lost {} (per lane received {:?} lost {:?}); queue took {}",
        elapsed,
        st.received.iter().sum::<u64>(),
        st.lost.iter().sum::<u64>(),
        st.received,
        st.lost,
        qt.taken
    );
}

/// What the reader and the consumer threads share with the test's main thread.
struct Shared<R, C> {
    reader: std::sync::Mutex<(R, StreamTally)>,
    consumer: std::sync::Mutex<(C, QueueTally)>,
    stop: std::sync::atomic::AtomicBool,
}

/// Lane ranges of incarnations: `(incarnation, lane, first lane number)` → per incarnation, its
/// lane and the range `[from, to)` of lane numbers it completed, given each lane's final count.
fn ranges(joins: &[(u64, usize, u64)], sent: &[u64; LANES]) -> HashMap<u64, (usize, u64, u64)> {
    let mut out = HashMap::new();
    for &(id, lane, from) in joins {
        let to = joins
            .iter()
            .filter(|&&(_, l, f)| l == lane && f > from)
            .map(|&(_, _, f)| f)
            .min()
            .unwrap_or(sent[lane] + 1);
        out.insert(id, (lane, from, to));
    }
    out
}

#[test]
fn producers_killed_mid_send_and_restarted_take_lanes_again() {
    if role().is_some() {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    const CAPACITY: usize = 64;
    const FINAL: u64 = 2_000;
    const FOREVER: u64 = u64::MAX / 2;
    let stream = LanesName::new("lanes-ks");
    let queue = LanesName::new("lanes-kq");
    drop(Big::create_lanes(&stream, LANES, CAPACITY).unwrap());
    drop(Big::create_lane_queue(&queue, LANES, CAPACITY).unwrap());
    let shared = Shared {
        reader: std::sync::Mutex::new((Big::subscribe_lanes(&stream).unwrap(), StreamTally::new())),
        consumer: std::sync::Mutex::new((
            Big::open_lane_consumer(&queue).unwrap(),
            QueueTally::new(),
        )),
        stop: AtomicBool::new(false),
    };
    let mut rng = Rng(0x5eed_1a9e_0000_0001);
    let mut next_id = 0u64;
    let mut stream_joins = Vec::new();
    let mut queue_joins = Vec::new();
    let mut running: Vec<(Child, Lines<BufReader<ChildStdout>>, u64)> = Vec::new();
    let mut spawn = |count: u64,
                     stream_joins: &mut Vec<(u64, usize, u64)>,
                     queue_joins: &mut Vec<(u64, usize, u64)>| {
        let id = next_id;
        next_id += 1;
        let (child, lines, j) = spawn_producer("big", &stream, &queue, id, count);
        stream_joins.push((id, j.stream_lane, j.stream_from));
        queue_joins.push((id, j.queue_lane, j.queue_from));
        (child, lines, id, j)
    };
    let (mut kills, mut mid_stream, mut mid_queue) = (0u64, 0u64, 0u64);
    /// Stops the reader and consumer threads when the main thread ends, even by a panic.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let finals = std::thread::scope(|s| {
        let _stop = StopOnDrop(&shared.stop);
        s.spawn(|| loop {
            let stop = shared.stop.load(Ordering::SeqCst);
            let n = {
                let (rx, t) = &mut *shared.reader.lock().unwrap();
                t.drain(rx, 256)
            };
            if stop && n == 0 {
                return;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        s.spawn(|| loop {
            let stop = shared.stop.load(Ordering::SeqCst);
            let n = {
                let (c, t) = &mut *shared.consumer.lock().unwrap();
                t.drain(c, 256)
            };
            if stop && n == 0 {
                return;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        // Messages of incarnation `id` the consumer took.
        let taken_of = |id: u64| {
            shared
                .consumer
                .lock()
                .unwrap()
                .1
                .last_seq
                .get(&id)
                .copied()
                .unwrap_or(0)
        };
        let wait_progress = |id: u64, beyond: u64| {
            let start = Instant::now();
            while taken_of(id) <= beyond {
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "no progress from producer {id}: the consumer is blocked"
                );
                std::thread::sleep(Duration::from_micros(100));
            }
        };
        for _ in 0..LANES {
            let (child, lines, id, _) = spawn(FOREVER, &mut stream_joins, &mut queue_joins);
            running.push((child, lines, id));
        }
        // Kill a random producer once it has made progress, until enough kills landed in
        // the middle of a send on each side.
        while mid_stream < 3 || mid_queue < 3 {
            assert!(
                kills < 600,
                "only {mid_stream} stream and {mid_queue} queue kills of {kills} landed mid-send"
            );
            let v = rng.below(LANES as u64) as usize;
            let id = running[v].2;
            wait_progress(id, 0);
            std::thread::sleep(Duration::from_micros(rng.below(1500)));
            kill(&mut running[v].0);
            kills += 1;
            let (_, sl, _) = *stream_joins.iter().find(|j| j.0 == id).unwrap();
            let (_, ql, _) = *queue_joins.iter().find(|j| j.0 == id).unwrap();
            {
                let (rx, _) = &*shared.reader.lock().unwrap();
                let seqs = shm_core::__private::hooks::slot_sequences(
                    shm_core::__private::hooks::stream_raw(rx.lane_reader(sl)),
                );
                mid_stream += seqs.iter().any(|s| s % 2 == 1) as u64;
            }
            let queue_sent = {
                let (c, _) = &*shared.consumer.lock().unwrap();
                let seqs = shm_core::__private::hooks::queue_slot_sequences(c.lane_consumer(ql));
                mid_queue += seqs.iter().any(|s| s % 2 == 1) as u64;
                c.taken(ql) + c.lane_consumer(ql).backlog()
            };
            let stream_sent = shared.reader.lock().unwrap().0.sent(sl);
            // The dead producer's lanes are the only free ones: its successor takes them and
            // continues their numbering after the last complete message.
            let (child, lines, nid, j) = spawn(FOREVER, &mut stream_joins, &mut queue_joins);
            assert_eq!(
                (j.stream_lane, j.queue_lane),
                (sl, ql),
                "the free lanes are taken again"
            );
            assert_eq!(
                j.stream_from,
                stream_sent + 1,
                "stream lane {sl} continues its numbering"
            );
            assert_eq!(
                j.queue_from,
                queue_sent + 1,
                "queue lane {ql} continues its numbering"
            );
            // The other producers keep going while this one is dead and restarted.
            let other = running[(v + 1) % LANES].2;
            wait_progress(other, taken_of(other));
            running[v] = (child, lines, nid);
        }
        // Replace every producer by one that completes a known number of messages.
        let mut finals = Vec::new();
        for (child, _, id) in &mut running {
            wait_progress(*id, 0);
            kill(child);
            kills += 1;
            let (mut child, lines, nid, _) = spawn(FINAL, &mut stream_joins, &mut queue_joins);
            // Read to the end: the child's test harness writes after the report.
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            assert!(rest.contains(&format!("completed {FINAL}")), "{rest:?}");
            assert!(child.wait().unwrap().success());
            finals.push(nid);
        }
        shared.stop.store(true, Ordering::SeqCst);
        finals
    });
    let (rx, st) = shared.reader.into_inner().unwrap();
    let (consumer, qt) = shared.consumer.into_inner().unwrap();
    let stream_sent: [u64; LANES] = core::array::from_fn(|l| rx.sent(l));
    let queue_sent: [u64; LANES] = core::array::from_fn(|l| consumer.taken(l));
    assert_eq!(consumer.backlog(), 0, "the consumer took everything sent");
    for (l, sent) in stream_sent.iter().enumerate() {
        assert_eq!(
            st.received[l] + st.lost[l],
            *sent,
            "stream lane {l}: received + lost == sent"
        );
    }
    // Per incarnation: what it completed is the range of lane numbers it held; on the queue
    // it was all taken, in order; on the stream, received + lost == completed.
    let sr = ranges(&stream_joins, &stream_sent);
    let qr = ranges(&queue_joins, &queue_sent);
    for id in 0..next_id {
        let (lane, from, to) = sr[&id];
        let received = st.per_producer.get(&id).copied().unwrap_or(0);
        assert_eq!(
            received + st.lost_within(lane, from, to),
            to - from,
            "stream: producer {id} received + lost == completed"
        );
        let (_, qfrom, qto) = qr[&id];
        assert_eq!(
            qt.last_seq.get(&id).copied().unwrap_or(0),
            qto - qfrom,
            "queue: producer {id}'s completed messages were all taken"
        );
    }
    // The producers that were not killed say what they completed: their lanes agree.
    for id in finals {
        let (_, from, to) = sr[&id];
        let (_, qfrom, qto) = qr[&id];
        assert_eq!((to - from, qto - qfrom), (FINAL, FINAL), "producer {id}");
    }
    eprintln!(
        "{kills} kills ({mid_stream} mid-send on the stream, {mid_queue} on the queue), {next_id} producers: stream sent {} received {} lost {}; queue sent and took {}",
        stream_sent.iter().sum::<u64>(),
        st.received.iter().sum::<u64>(),
        st.lost.iter().sum::<u64>(),
        qt.taken
    );
}

/// A message with its send time, for the merge in send order.
#[derive(SharedState, Clone, Copy, Debug)]
#[repr(C)]
struct Stamped {
    stamp: u64,
    seq: u64,
}

const TURNS: u64 = 4_000;

/// One of two producers taking turns: sends message `seq` (stamped at the start of its send)
/// only once it has received every message before it, the other producer's among them, so
/// each send begins after the previous one returned and its producer knows it.
fn take_turns() {
    let me: u64 = common::env("SHM_PRODUCER").parse().unwrap();
    let name = common::env("SHM_STREAM");
    let mut tx = Stamped::join_stream(&name).expect("join");
    let mut rx = shm_core::Options::new()
        .subscribe_lanes_from_oldest::<Stamped>(&name)
        .expect("subscribe");
    let mut seen = 0u64;
    for seq in (me..TURNS).step_by(2) {
        let start = Instant::now();
        while seen < seq {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(_) => seen += 1,
                Err(e) => panic!("producer {me} waiting for turn {seq}: {e}"),
            }
            assert!(start.elapsed() < Duration::from_secs(120));
        }
        tx.send(&Stamped {
            stamp: shm_core::stream::lanes::monotonic_ns(),
            seq,
        });
    }
}

#[test]
fn merged_by_send_time_in_causal_order() {
    if role().is_some() {
        return;
    }
    let stream = LanesName::new("lanes-t");
    drop(Stamped::create_lanes(&stream, 2, TURNS as usize).unwrap());
    let mut rx = Stamped::subscribe_lanes(&stream).unwrap();
    let mut children: Vec<Child> = (0..2u64)
        .map(|p| {
            spawn_role(
                ENTRY,
                "turns",
                &[
                    ("SHM_STREAM", stream.to_string()),
                    ("SHM_PRODUCER", p.to_string()),
                ],
            )
        })
        .collect();
    let mut lanes_seen = [0u64; 2];
    for expected in 0..TURNS {
        let m = rx
            .recv_ordered_timeout(|m| m.stamp, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("waiting for message {expected}: {e}"));
        assert_eq!(m.seq, expected, "merged out of send order");
        lanes_seen[rx.last_lane()] += 1;
    }
    for c in &mut children {
        let mut out = String::new();
        std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(
        lanes_seen,
        [TURNS / 2; 2],
        "each producer sent on its own lane"
    );
}

#[test]
fn readers_rotate_over_lanes_and_a_fifth_producer_waits_for_a_free_lane() {
    if role().is_some() {
        return;
    }
    let stream = LanesName::new("lanes-r");
    let mut producers = vec![Stamped::create_lanes(&stream, LANES, 64).unwrap()];
    for _ in 1..LANES {
        producers.push(Stamped::join_stream(&stream).unwrap());
    }
    assert!(matches!(
        Stamped::join_stream(&stream),
        Err(Error::NoFreeLane { lanes: 4 })
    ));
    let mut rx = Stamped::subscribe_lanes(&stream).unwrap();
    // Every lane has 10 messages waiting, lane 0 first: a reader takes one from each in turn.
    for tx in &mut producers {
        for seq in 1..=10 {
            tx.send(&Stamped {
                stamp: 0,
                seq: tx.lane() as u64 * 100 + seq,
            });
        }
    }
    let lanes: Vec<usize> = (0..2 * LANES)
        .map(|_| {
            let m = rx.try_recv().unwrap().unwrap();
            assert_eq!(m.seq / 100, rx.last_lane() as u64);
            rx.last_lane()
        })
        .collect();
    assert_eq!(lanes, [0, 1, 2, 3, 0, 1, 2, 3], "no lane is favoured");
    // A producer that leaves frees its lane; the next one continues its numbering.
    let lane = producers[2].lane();
    drop(producers.remove(2));
    let tx = Stamped::join_stream(&stream).unwrap();
    assert_eq!((tx.lane(), tx.sent()), (lane, 10));
}

/// The waiter count in the header of segment `name` (offset 196, docs/segment-format.md),
/// read through its file as a tool would.
fn waiters_of(name: &str) -> u32 {
    let bytes = std::fs::read(format!("/dev/shm{name}")).expect("read the segment's file");
    u32::from_ne_bytes(bytes[196..200].try_into().unwrap())
}

/// Waits (bounded) until every lane of `stream` counts one waiter at the same moment: a
/// receive that sleeps on all lanes at once, not on one lane after another.
fn wait_until_every_lane_is_waited_on(stream: &str, round: u64) {
    let start = Instant::now();
    while !(0..LANES).all(|k| waiters_of(&lane_name(stream, k)) == 1) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "round {round}: the receive never waited on every lane at once (waiters {:?})",
            (0..LANES)
                .map(|k| waiters_of(&lane_name(stream, k)))
                .collect::<Vec<_>>()
        );
        std::thread::yield_now();
    }
}

/// Runs `ROUNDS` rounds against a receive loop on another thread (`got` counts what it
/// received): each round waits until every lane of `name` counts the receive as a waiter at
/// once, sends on one lane, and waits until the receive has it.
fn lock_step(name: &str, got: &std::sync::atomic::AtomicU64, mut send: impl FnMut(usize, u64)) {
    use std::sync::atomic::Ordering;
    for round in 0..ROUNDS {
        wait_until_every_lane_is_waited_on(name, round);
        // Each round on another lane: whichever lane the message comes on ends the sleep.
        send(((round * 7 + 3) % LANES as u64) as usize, round);
        let start = Instant::now();
        while got.load(Ordering::SeqCst) <= round {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: never woken"
            );
            std::thread::yield_now();
        }
    }
}

const ROUNDS: u64 = 200;

/// Receives `ROUNDS` messages with `recv` on a thread of its own, counting them in the
/// returned counter; the thread returns their `seq` numbers.
fn receive_rounds(
    mut recv: impl FnMut() -> shm_core::Result<Stamped> + Send + 'static,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    std::thread::JoinHandle<Vec<u64>>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let got = std::sync::Arc::new(AtomicU64::new(0));
    let count = std::sync::Arc::clone(&got);
    let thread = std::thread::spawn(move || {
        (0..ROUNDS)
            .map(|_| {
                let seq = recv().unwrap().seq;
                count.fetch_add(1, Ordering::SeqCst);
                seq
            })
            .collect()
    });
    (got, thread)
}

#[test]
fn a_waiting_reader_and_consumer_sleep_on_every_lane_at_once() {
    if role().is_some() {
        return;
    }
    let stream = LanesName::new("lanes-w");
    let mut producers = vec![Stamped::create_lanes(&stream, LANES, 64).unwrap()];
    for _ in 1..LANES {
        producers.push(Stamped::join_stream(&stream).unwrap());
    }
    let mut rx = Stamped::subscribe_lanes(&stream).unwrap();
    let (got, reader) = receive_rounds(move || rx.recv_timeout(Duration::from_secs(120)));
    lock_step(&stream, &got, |lane, seq| {
        let tx = producers.iter_mut().find(|p| p.lane() == lane).unwrap();
        tx.send(&Stamped { stamp: 0, seq });
    });
    assert_eq!(reader.join().unwrap(), (0..ROUNDS).collect::<Vec<_>>());

    let queue = LanesName::new("lanes-wq");
    let mut producers = vec![Stamped::create_lane_queue(&queue, LANES, 64).unwrap()];
    for _ in 1..LANES {
        producers.push(Stamped::join_queue(&queue).unwrap());
    }
    let mut rx = Stamped::open_lane_consumer(&queue).unwrap();
    let (got, consumer) = receive_rounds(move || rx.recv_timeout(Duration::from_secs(120)));
    lock_step(&queue, &got, |lane, seq| {
        let tx = producers.iter_mut().find(|p| p.lane() == lane).unwrap();
        tx.send(&Stamped { stamp: 0, seq });
    });
    assert_eq!(consumer.join().unwrap(), (0..ROUNDS).collect::<Vec<_>>());
}
