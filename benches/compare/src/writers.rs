//! Several writers and several producers, each in a process of its own, 64-byte values.
//!
//! - `turns_write`: four writer processes (two pinned to each CPU) publish back to back into
//!   one value, each taking the lock for every write: our turn-taking writers
//!   (`Options::shared_writers`, a robust priority-inheriting pthread mutex in the segment)
//!   against the robust process-shared pthread mutex around a plain copy, without and with
//!   priority inheritance. The row gives the writes per second of the four together and of
//!   each.
//! - `turns_read`: the same four writers, all pinned to CPU 0, and one reader pinned to CPU 1
//!   reading and validating the value as fast as it can: ours reads without the lock, the
//!   mutexes' reader takes it. The row gives ns per validated read (median and p99 over the
//!   batches during which the value changed at least twice, as the other read cases).
//! - `mp_throughput`: four producer processes pinned to CPU 0 each send `count` numbered
//!   messages to one consumer pinned to CPU 1, which checks every message (its producer, its
//!   number, its other words) and counts the ones a lossy contender dropped. Lossless
//!   (backpressure): our lane queue, iceoryx2's publish-subscribe with four publishers that
//!   retry until delivered, and a Unix datagram socket with four senders (the baseline of the
//!   ratios). Lossy (a producer never waits, the oldest unread message goes): our lane stream
//!   and iceoryx2 with its default delivery. The row gives the consumer's ns per message
//!   received, first to last.
//!
//! The tables go to the end of `summary.md` (see [`summary`]).

use crate::contenders::{Kind, MutexSide, ReadSide, WithReader, WriteSide};
use crate::measure::now_ns;
use crate::{pin, tell, Budget, Row, STOP};
use iceoryx2::prelude::BackpressureStrategy;
use serde_json::json;
use shm_core::{Error, Options, SharedState};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Writer (or producer) processes.
pub const WRITERS: usize = 4;
/// Words per value: 64 bytes.
const W: usize = 8;
/// Ring capacity per lane, subscriber buffer, in messages.
const CAPACITY: usize = 1024;
/// Longest a consumer waits for the last messages.
const CONSUMER_DEADLINE: Duration = Duration::from_secs(60);

const TURN_CONTENDERS: [&str; 3] = ["ours-turns", "robust-mutex", "robust-pi-mutex"];
const MP_CONTENDERS: [&str; 5] = [
    "ours-lane-queue",
    "iceoryx2-4pub",
    "unix-dgram",
    "ours-lane-stream",
    "iceoryx2-4pub-lossy",
];
/// The multi-producer baseline.
const MP_BASELINE: &str = "unix-dgram";

/// A child process of this binary in a writers role.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(args: &[String]) -> Proc {
        let mut child = Command::new(std::env::current_exe().expect("own executable"))
            .arg("--writers-role")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a child");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Proc { child, out }
    }

    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        self.out.read_line(&mut line).ok()?;
        Some(line.trim().to_string()).filter(|l| !l.is_empty())
    }

    fn go(&mut self) {
        if let Some(s) = self.child.stdin.as_mut() {
            let _ = s.write_all(b"g\n");
            let _ = s.flush();
        }
    }

    /// Closes stdin (the child's stop), reads its last line, waits for it (5 s at most).
    fn finish(mut self) -> Option<String> {
        drop(self.child.stdin.take());
        let line = self.line();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        line
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the cases whose name contains `only` (all without it). `prefix` makes the names
/// unique to this run.
pub fn run_all(quick: bool, only: Option<&str>, b: Budget, prefix: &str) -> Vec<Row> {
    let rounds = if quick { 1 } else { 3 };
    let write_for = if quick {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(1000)
    };
    let count: u64 = if quick { 10_000 } else { 500_000 };
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = || format!("/{prefix}w{}", N.fetch_add(1, Ordering::Relaxed));
    let mut rows = Vec::new();
    let wanted = |case: &str| only.is_none_or(|o| case.contains(o));
    let mut go =
        |case: &str, contenders: &[&str], run: &mut dyn FnMut(&str, &str) -> Option<Row>| {
            if !wanted(case) {
                return;
            }
            let mut per: Vec<Vec<Row>> = vec![Vec::new(); contenders.len()];
            for _ in 0..rounds {
                for (i, c) in contenders.iter().enumerate() {
                    match run(c, &name()) {
                        Some(mut r) => {
                            r.case = case.into();
                            r.contender = c.to_string();
                            r.bytes = W * 8;
                            per[i].push(r);
                        }
                        None => eprintln!("{case} {c}: no result"),
                    }
                }
            }
            for runs in per.into_iter().filter(|r| !r.is_empty()) {
                let mut row = runs[0].clone();
                row.median_ns = median(runs.iter().map(|r| r.median_ns).collect());
                row.p99_ns = median(runs.iter().map(|r| r.p99_ns).collect());
                row.ops = runs.iter().map(|r| r.ops).sum();
                row.torn = runs.iter().map(|r| r.torn).sum();
                row.retries = runs.iter().map(|r| r.retries).sum();
                row.distinct = runs.iter().map(|r| r.distinct).sum();
                row.used = runs.iter().map(|r| r.used).sum();
                // Per writer: the median of the rounds' rates.
                row.samples = (0..row.samples.len())
                    .map(|k| {
                        median(
                            runs.iter()
                                .filter_map(|r| r.samples.get(k).copied())
                                .collect(),
                        )
                    })
                    .collect();
                eprintln!(
                    "{case:>22} {:>16} {:>9} B  {:>12.1} ns  torn {:>6}  lost {:>8}",
                    row.contender, row.bytes, row.median_ns, row.torn, row.retries
                );
                rows.push(row);
            }
        };
    go("turns_write", &TURN_CONTENDERS, &mut |c, n| {
        turns(c, n, false, write_for, b)
    });
    go("turns_read", &TURN_CONTENDERS, &mut |c, n| {
        turns(c, n, true, write_for, b)
    });
    go("mp_throughput", &MP_CONTENDERS, &mut |c, n| mp(c, n, count));
    rows
}

/// One `turns_write` (`with_reader` false: writers spread over both CPUs for `write_for`) or
/// `turns_read` (writers on CPU 0, a reader on CPU 1 for its batches) run.
fn turns(
    contender: &str,
    name: &str,
    with_reader: bool,
    write_for: Duration,
    b: Budget,
) -> Option<Row> {
    let mut writers = Vec::new();
    let mut ok = true;
    for id in 0..WRITERS {
        let cpu = if with_reader { 0 } else { id % 2 };
        let mut p = Proc::spawn(&[
            "turn-writer".into(),
            contender.into(),
            name.into(),
            cpu.to_string(),
            id.to_string(),
        ]);
        ok &= p.line().as_deref() == Some("ready");
        writers.push(p);
        if !ok {
            break;
        }
    }
    let mut reader_line = None;
    if ok {
        for p in &mut writers {
            p.go();
        }
        if with_reader {
            let mut r = Proc::spawn(&[
                "turn-reader".into(),
                contender.into(),
                name.into(),
                "1".into(),
                b.samples.to_string(),
                b.batch.as_nanos().to_string(),
            ]);
            reader_line = r.line();
            let _ = r.finish();
        } else {
            std::thread::sleep(write_for);
        }
    }
    let mut rates = Vec::new();
    let mut writes = 0u64;
    for p in writers {
        let line = p.finish();
        let v: serde_json::Value = serde_json::from_str(&line?).ok()?;
        let n = v["writes"].as_u64()?;
        writes += n;
        rates.push(n as f64 / v["secs"].as_f64()?);
    }
    let _ = std::fs::remove_file(format!("/dev/shm{name}"));
    if !ok {
        return None;
    }
    let total: f64 = rates.iter().sum();
    let mut row = if with_reader {
        crate::measure::parse(&reader_line?)?
    } else {
        Row {
            case: String::new(),
            contender: String::new(),
            bytes: 0,
            median_ns: 1e9 / total,
            p99_ns: f64::NAN,
            ops: writes,
            torn: 0,
            retries: 0,
            distinct: writes,
            used: WRITERS as u64,
            samples: Vec::new(),
            cpu_ns: f64::NAN,
            threads: 0,
            writer_per_s: f64::NAN,
        }
    };
    row.samples = rates;
    Some(row)
}

/// One `mp_throughput` run.
fn mp(contender: &str, name: &str, count: u64) -> Option<Row> {
    let lanes = match contender {
        "ours-lane-stream" => {
            drop(<[u64; W]>::create_lanes(name, WRITERS, CAPACITY).expect("create the lanes"));
            true
        }
        "ours-lane-queue" => {
            drop(<[u64; W]>::create_lane_queue(name, WRITERS, CAPACITY).expect("create the lanes"));
            true
        }
        _ => false,
    };
    let mut consumer = Proc::spawn(&[
        "consumer".into(),
        contender.into(),
        name.into(),
        "1".into(),
        count.to_string(),
    ]);
    let mut line = None;
    if consumer.line().as_deref() == Some("ready") {
        let mut producers = Vec::new();
        let mut ok = true;
        for id in 0..WRITERS {
            let mut p = Proc::spawn(&[
                "producer".into(),
                contender.into(),
                name.into(),
                "0".into(),
                count.to_string(),
                id.to_string(),
            ]);
            ok &= p.line().as_deref() == Some("ready");
            producers.push(p);
            if !ok {
                break;
            }
        }
        if ok {
            if contender.starts_with("iceoryx2") {
                // Its subscriber connects to a new publisher lazily, in `receive`; until then a
                // publisher's samples go nowhere, even without overflow.
                std::thread::sleep(Duration::from_millis(100));
            }
            for p in &mut producers {
                p.go();
            }
            line = consumer.line();
        }
        for p in producers {
            let _ = p.finish();
        }
    }
    let _ = consumer.finish();
    if lanes {
        let _ = shm_core::remove_lanes(name);
    }
    let _ = std::fs::remove_file(dgram_path(name));
    crate::measure::parse(&line?)
}

fn dgram_path(name: &str) -> String {
    format!("/tmp{name}.dgram")
}

// ---------------------------------------------------------------------------------------------
// Children

/// A child's entry: `--writers-role ROLE CONTENDER NAME CPU ...`.
pub fn child(args: &[String]) {
    let args = args.to_vec();
    let worker = std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            pin(args[3].parse().expect("cpu"));
            let (contender, name) = (args[1].as_str(), args[2].as_str());
            match args[0].as_str() {
                "turn-writer" => turn_writer(contender, name, args[4].parse().expect("id")),
                "turn-reader" => turn_reader(
                    contender,
                    name,
                    Budget {
                        samples: args[4].parse().expect("samples"),
                        batch: Duration::from_nanos(args[5].parse().expect("batch")),
                    },
                ),
                "consumer" => consumer(contender, name, args[4].parse().expect("count")),
                "producer" => producer(
                    contender,
                    name,
                    args[4].parse().expect("count"),
                    args[5].parse().expect("id"),
                ),
                other => panic!("unknown role {other}"),
            }
        })
        .expect("spawn the worker thread");
    if worker.join().is_err() {
        std::process::exit(1);
    }
}

/// Waits for the parent's go line, then watches stdin for its end ([`STOP`]).
fn wait_for_go() {
    let mut go = String::new();
    let _ = std::io::stdin().read_line(&mut go);
    crate::watch_stdin();
}

/// Writer `id`: says ready, waits for the go, then publishes back to back until stdin ends;
/// every word of a value is `id << 56 | n`. Reports its writes and seconds.
fn turn_writer(contender: &str, name: &str, id: u64) {
    let run = |publish: &mut dyn FnMut(&[u64; W])| {
        tell("ready");
        wait_for_go();
        let start = Instant::now();
        let mut n = 0u64;
        while !STOP.load(Ordering::Relaxed) {
            n += 1;
            publish(&[id << 56 | n; W]);
        }
        tell(&json!({"writes": n, "secs": start.elapsed().as_secs_f64()}).to_string());
    };
    match contender {
        "ours-turns" => {
            let mut w = Options::new()
                .shared_writers(true)
                .open_or_create::<[u64; W]>(name, &[0; W])
                .expect("open a turn-taking writer");
            run(&mut |v| {
                let mut t = w.turn(Duration::from_secs(10)).expect("take a turn");
                *t = *v;
            });
        }
        "robust-mutex" | "robust-pi-mutex" => {
            // Writer 0 starts alone and makes the mutex; the others open it.
            let mut m = if id == 0 && contender == "robust-mutex" {
                MutexSide::<W>::create(name)
            } else if id == 0 {
                MutexSide::<W>::create_pi(name)
            } else {
                MutexSide::<W>::open(name)
            };
            run(&mut |v| m.publish(v));
        }
        other => panic!("unknown contender {other}"),
    }
}

/// The reader: batches of validated reads (see the module), reported as the read cases do.
fn turn_reader(contender: &str, name: &str, b: Budget) {
    struct Measure(Budget);
    impl WithReader<W> for Measure {
        fn run<R: ReadSide<W>>(self, mut side: R) {
            let b = self.0;
            let mut out = [0u64; W];
            let (mut last, mut torn, mut retries, mut distinct) = (0u64, 0u64, 0u64, 0u64);
            // One validated read; true if the value changed since the previous one.
            let mut read = |side: &mut R| {
                retries += u64::from(side.read(&mut out));
                if out.iter().any(|&x| x != out[0]) {
                    torn += 1;
                }
                let changed = out[0] != last;
                last = out[0];
                distinct += u64::from(changed);
                changed
            };
            let mut k = 1u64;
            loop {
                let t = Instant::now();
                for _ in 0..k {
                    std::hint::black_box(read(&mut side));
                }
                if t.elapsed() >= b.batch / 2 || k >= 1 << 24 {
                    break;
                }
                k *= 2;
            }
            let mut per = Vec::with_capacity(b.samples);
            for _ in 0..b.samples {
                let t = Instant::now();
                let mut changes = 0u64;
                for _ in 0..k {
                    changes += u64::from(read(&mut side));
                }
                per.push((t.elapsed().as_nanos() as f64 / k as f64, changes));
            }
            let mut used: Vec<f64> = per.iter().filter(|p| p.1 >= 2).map(|p| p.0).collect();
            if used.is_empty() {
                used = per.iter().map(|p| p.0).collect();
            }
            used.sort_by(f64::total_cmp);
            let q = |q: f64| used[((used.len() - 1) as f64 * q).round() as usize];
            tell(
                &json!({
                    "median_ns": q(0.5), "p99_ns": q(0.99), "ops": k * b.samples as u64,
                    "torn": torn, "retries": retries, "distinct": distinct, "used": used.len(),
                })
                .to_string(),
            );
        }
    }
    let kind = match contender {
        "ours-turns" => Kind::Ours(4),
        "robust-mutex" | "robust-pi-mutex" => Kind::Mutex,
        other => panic!("unknown contender {other}"),
    };
    crate::contenders::with_reader::<W>(kind, name, Measure(b));
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// Message `n` of producer `id`, stamped with the send time.
fn message(id: u64, n: u64) -> [u64; W] {
    let head = id << 48 | n;
    core::array::from_fn(|i| match i {
        0 => head,
        1 => now_ns(),
        _ => head.wrapping_mul(MIX) ^ i as u64,
    })
}

/// The producer and number of `m`, if every word agrees with them.
fn check(m: &[u64; W]) -> Option<(usize, u64)> {
    let head = m[0];
    (2..W)
        .all(|i| m[i] == head.wrapping_mul(MIX) ^ i as u64)
        .then_some(((head >> 48) as usize, head & ((1 << 48) - 1)))
}

/// Spins, yielding the CPU every 64 rounds (the producers share one CPU).
fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins % 64 == 0 {
        std::thread::yield_now();
    } else {
        core::hint::spin_loop();
    }
}

/// Producer `id`: says ready, waits for the go, sends `count` messages (`send` returns false
/// when there is no room), then keeps its end open until stdin ends.
fn producer(contender: &str, name: &str, count: u64, id: u64) {
    let run = |send: &mut dyn FnMut(&[u64; W]) -> bool| {
        tell("ready");
        let mut go = String::new();
        let _ = std::io::stdin().read_line(&mut go);
        let mut spins = 0;
        for n in 1..=count {
            let m = message(id, n);
            while !send(&m) {
                pause(&mut spins);
            }
        }
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    };
    match contender {
        "ours-lane-stream" => {
            let mut tx = <[u64; W]>::join_stream(name).expect("join the lanes");
            run(&mut |m| {
                tx.send(m);
                true
            });
        }
        "ours-lane-queue" => {
            let mut tx = <[u64; W]>::join_queue(name).expect("join the lanes");
            run(&mut |m| match tx.try_send(m) {
                Ok(()) => true,
                Err(Error::Full) => false,
                Err(e) => panic!("send: {e}"),
            });
        }
        "iceoryx2-4pub" | "iceoryx2-4pub-lossy" => {
            let lossy = contender.ends_with("lossy");
            let node = ice::node();
            let service = ice::service(&node, name, lossy);
            let publisher = service
                .publisher_builder()
                .backpressure_strategy(if lossy {
                    BackpressureStrategy::DiscardData
                } else {
                    BackpressureStrategy::RetryUntilDelivered
                })
                .create()
                .expect("publisher");
            run(&mut |m| {
                let sample = publisher.loan_uninit().expect("loan");
                sample.write_payload(*m).send().expect("send");
                true
            });
        }
        "unix-dgram" => {
            let s = std::os::unix::net::UnixDatagram::unbound().expect("socket");
            s.connect(dgram_path(name)).expect("connect");
            run(&mut |m| {
                s.send(as_bytes(m)).expect("send");
                true
            });
        }
        other => panic!("unknown contender {other}"),
    }
}

fn as_bytes(m: &[u64; W]) -> &[u8] {
    // SAFETY: `[u64; W]` is `W * 8` initialized bytes with no padding.
    unsafe { core::slice::from_raw_parts(m.as_ptr() as *const u8, W * 8) }
}

/// The consumer: says ready once its end exists, then takes messages until it has every
/// producer's last one (or [`CONSUMER_DEADLINE`] passed), checking each; reports ns per
/// message received, the torn or out-of-order ones and the ones lost (gaps in a producer's
/// numbers).
fn consumer(contender: &str, name: &str, count: u64) {
    // `recv` gives `Some(true)` with a message in `m`, `Some(false)` after a loss it reports
    // (the gap is counted from the numbers), `None` when nothing is there yet.
    let run = |recv: &mut dyn FnMut(&mut [u64; W]) -> Option<bool>| {
        tell("ready");
        let mut m = [0u64; W];
        let mut next = [1u64; WRITERS];
        let (mut received, mut lost, mut bad, mut done) = (0u64, 0u64, 0u64, 0usize);
        let (mut first, mut last) = (0u64, 0u64);
        let deadline = Instant::now() + CONSUMER_DEADLINE;
        let mut polls = 0u32;
        while done < WRITERS {
            match recv(&mut m) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    polls = polls.wrapping_add(1);
                    if polls % 1024 == 0 && Instant::now() > deadline {
                        break;
                    }
                    core::hint::spin_loop();
                    continue;
                }
            }
            let now = now_ns();
            let Some((id, n)) =
                check(&m).filter(|&(id, n)| id < WRITERS && n >= next[id.min(WRITERS - 1)])
            else {
                bad += 1;
                continue;
            };
            if received == 0 {
                first = now;
            }
            last = now;
            received += 1;
            lost += n - next[id];
            next[id] = n + 1;
            if n == count {
                done += 1;
            }
        }
        let per = (last - first) as f64 / received.saturating_sub(1).max(1) as f64;
        tell(
            &json!({
                "median_ns": per, "p99_ns": per, "ops": received, "torn": bad,
                "retries": lost + (WRITERS - done) as u64, "distinct": received, "used": done,
            })
            .to_string(),
        );
    };
    match contender {
        "ours-lane-stream" => {
            let mut rx = <[u64; W]>::subscribe_lanes(name).expect("subscribe");
            run(&mut |m| match rx.try_recv() {
                Ok(Some(v)) => {
                    *m = v;
                    Some(true)
                }
                Ok(None) => None,
                Err(Error::Lagged { .. }) => Some(false),
                Err(e) => panic!("receive: {e}"),
            });
        }
        "ours-lane-queue" => {
            let mut rx = <[u64; W]>::open_lane_consumer(name).expect("open the consumer");
            run(&mut |m| {
                let v = rx.try_recv().expect("receive")?;
                *m = v;
                Some(true)
            });
        }
        "iceoryx2-4pub" | "iceoryx2-4pub-lossy" => {
            let node = ice::node();
            let service = ice::service(&node, name, contender.ends_with("lossy"));
            let subscriber = service
                .subscriber_builder()
                .buffer_size(CAPACITY)
                .create()
                .expect("subscriber");
            run(&mut |m| {
                let sample = subscriber.receive().expect("receive")?;
                *m = *sample;
                Some(true)
            });
        }
        "unix-dgram" => {
            let path = dgram_path(name);
            let _ = std::fs::remove_file(&path);
            let s = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            run(&mut |m| {
                // SAFETY: any bytes are a valid `[u64; W]`, which is `W * 8` bytes.
                let buf =
                    unsafe { core::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut u8, W * 8) };
                match s.recv(buf) {
                    Ok(n) if n == W * 8 => Some(true),
                    Ok(_) => {
                        m[0] = u64::MAX;
                        Some(true)
                    }
                    Err(_) => None,
                }
            });
            let _ = std::fs::remove_file(&path);
        }
        other => panic!("unknown contender {other}"),
    }
}

/// iceoryx2's publish-subscribe service for four publishers and a subscriber buffer of the
/// lanes' capacity, lossless (backpressure) or with its default delivery (lossy).
mod ice {
    use super::{CAPACITY, W, WRITERS};
    use iceoryx2::prelude::*;

    pub type Factory =
        iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u64; W], ()>;

    pub fn node() -> Node<ipc::Service> {
        iceoryx2::prelude::set_log_level(LogLevel::Error);
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .expect("iceoryx2 node")
    }

    /// `lossy`: a full subscriber buffer loses its oldest sample (iceoryx2's default);
    /// otherwise a publisher retries until the subscriber has room.
    pub fn service(node: &Node<ipc::Service>, name: &str, lossy: bool) -> Factory {
        let service_name: ServiceName = format!("shm-bench/{}/mp", name.trim_start_matches('/'))
            .as_str()
            .try_into()
            .expect("service name");
        node.service_builder(&service_name)
            .publish_subscribe::<[u64; W]>()
            .max_publishers(WRITERS)
            .enable_safe_overflow(lossy)
            .subscriber_max_buffer_size(CAPACITY)
            .open_or_create()
            .expect("publish-subscribe service")
    }
}

// ---------------------------------------------------------------------------------------------
// Report

/// Appends the tables of these cases to `DIR/summary.md`, if there are any rows of them.
pub fn summary(out: &str, rows: &[Row]) {
    let of = |case: &str| -> Vec<&Row> { rows.iter().filter(|r| r.case == case).collect() };
    let (tw, tr, mp) = (of("turns_write"), of("turns_read"), of("mp_throughput"));
    if tw.is_empty() && tr.is_empty() && mp.is_empty() {
        return;
    }
    let mut s = String::from("\n## Several writers\n\n");
    let ours = |v: &[&Row], name: &str| v.iter().find(|r| r.contender == name).map(|r| r.median_ns);
    let rate = |ns: f64| format!("{:.2} M/s", 1e3 / ns);
    if !tw.is_empty() {
        let o = ours(&tw, "ours-turns");
        s.push_str(
            "### turns_write: 4 writer processes (2 per CPU), 64 B, back to back\n\n\
             | contender | writes/s, all 4 | ns per write | x ours (ns) | each writer (writes/s) |\n\
             |---|---|---|---|---|\n",
        );
        for r in &tw {
            let each: Vec<String> = r
                .samples
                .iter()
                .map(|x| format!("{:.2} M", x / 1e6))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {} | {} |",
                r.contender,
                rate(r.median_ns),
                r.median_ns,
                o.map_or("-".into(), |o| format!("{:.2}", r.median_ns / o)),
                each.join(", ")
            );
        }
        s.push('\n');
    }
    if !tr.is_empty() {
        let o = ours(&tr, "ours-turns");
        s.push_str(
            "### turns_read: 4 writer processes on CPU 0, a reader on CPU 1, 64 B\n\n\
             | contender | ns per validated read (p50) | p99 | x ours (p50) | writes/s meanwhile | values seen | torn | retries |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in &tr {
            let _ = writeln!(
                s,
                "| {} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                r.contender,
                r.median_ns,
                r.p99_ns,
                o.map_or("-".into(), |o| format!("{:.2}", r.median_ns / o)),
                rate(1e9 / r.samples.iter().sum::<f64>()),
                r.distinct,
                r.torn,
                r.retries
            );
        }
        s.push('\n');
    }
    if !mp.is_empty() {
        let base = ours(&mp, MP_BASELINE);
        s.push_str(
            "### mp_throughput: 4 producer processes on CPU 0, a consumer on CPU 1, 64 B\n\n\
             | contender | messages/s at the consumer | ns per message | x unix-dgram (messages/s) | delivered | lost | torn |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for r in &mp {
            let _ = writeln!(
                s,
                "| {} | {} | {:.1} | {} | {:.1}% | {} | {} |",
                r.contender,
                rate(r.median_ns),
                r.median_ns,
                base.map_or("-".into(), |b| format!("{:.2}", b / r.median_ns)),
                100.0 * r.ops as f64 / (r.ops + r.retries).max(1) as f64,
                r.retries,
                r.torn
            );
        }
        s.push('\n');
    }
    let path = format!("{out}/summary.md");
    let mut doc = std::fs::read_to_string(&path).unwrap_or_default();
    doc.push_str(&s);
    std::fs::write(&path, doc).expect("write summary.md");
}
