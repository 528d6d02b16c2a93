//! End-to-end latency and throughput of the bridge on loopback, beside Zenoh's own pub/sub of
//! the same bytes between two processes, a plain TCP socket between two processes and shared
//! memory on one host:
//!
//! ```sh
//! cargo build --release -p shm-bridge --bins --examples
//! target/release/examples/bridge_bench --samples 3000
//! ```
//!
//! Paths, each carrying a 64-byte value stamped with CLOCK_MONOTONIC (one clock for every
//! process of a host), the one-way latency taken by the receiver:
//! - `bridge`: a writer thread publishes a state every `--interval-us`; two `shm-bridge`
//!   processes (Zenoh peers on 127.0.0.1) carry it to a mirror; a reader thread waits on the
//!   mirror (futex). Processes on the way: writer, exporting bridge, importing bridge, reader.
//! - `zenoh-channel` and `zenoh-callback`: the same bytes put by this process (one Zenoh peer
//!   session, a publisher with the QoS the bridge uses for state: express, congestion control
//!   *drop*) and received by a child process (another Zenoh peer session over TCP on
//!   loopback): by an application thread waiting on the subscriber's channel (Zenoh's default
//!   handler; the far reader of a mirror waits the same way) or in the subscriber's callback.
//!   Processes on the way: writer, reader: what an application using Zenoh directly has.
//! - `tcp`: the same bytes written to a TCP socket on loopback (`TCP_NODELAY`) and read by a
//!   child process.
//! - `local`: the same state, one host, no bridge: a reader thread waiting on the futex.
//!
//! Every path is set up once and stays up; the values then go in blocks of `--block` values,
//! each path's block after the other's, the order rotating from one cycle to the next, until
//! every path has carried `--samples` values. The machine's load changes from one second to
//! the next: interleaved this way, every path meets the same load. Reported per path: the p50
//! and p99 of all its values; for the bridge, also the median over the cycles of its block's
//! p50 divided by the Zenoh block's p50 of the same cycle.
//!
//! `--spin-us N` passes `--spin-us N` to the exporting bridge. `--also PATH` (with
//! `--also-spin-us N`) adds a second bridge path through the build `PATH`, so that two builds
//! or settings are compared side by side:
//!
//! ```sh
//! target/release/examples/bridge_bench --samples 2000 \
//!     --also target/release/shm-bridge --also-spin-us 2000
//! ```
//!
//! Also: updates per second reaching the far reader under a writer that publishes back to back
//! (versions coalesce), and the CPU time both bridge processes spent per update. `--json`
//! prints the results as JSON lines too (the comparison harness reads them).

use shm_core::SharedState;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::Wait;

#[derive(SharedState, Clone, Copy, Debug)]
#[repr(C)]
struct Sample {
    sent_ns: u64,
    seq: u64,
    pad: [u64; 6],
}

impl Sample {
    fn now(seq: u64) -> Sample {
        Sample {
            sent_ns: now_ns(),
            seq,
            pad: [0; 6],
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn encode(s: &Sample) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..8].copy_from_slice(&s.sent_ns.to_ne_bytes());
    b[8..16].copy_from_slice(&s.seq.to_ne_bytes());
    b
}

/// `(seq, latency in ns)` of a received value, taken now.
fn received(b: &[u8]) -> (u64, u64) {
    let sent = u64::from_ne_bytes(b[..8].try_into().unwrap());
    let seq = u64::from_ne_bytes(b[8..16].try_into().unwrap());
    (seq, now_ns().saturating_sub(sent))
}

/// What a receiver recorded: `(seq, latency ns)` of each value.
type Records = Vec<(u64, u64)>;

/// The `seq` that tells a receiving child to report and exit.
const LAST: u64 = u64::MAX;

struct Args {
    samples: usize,
    block: usize,
    interval: Duration,
    /// `--spin-us N`: passed to the exporting bridge.
    spin_us: Option<String>,
    /// `--also PATH [--also-spin-us N]`: a second bridge path, through the build `PATH`,
    /// interleaved with the others (to compare two builds or settings side by side).
    also: Option<std::path::PathBuf>,
    also_spin_us: Option<String>,
    json: bool,
}

fn args() -> Args {
    let mut a = Args {
        samples: 3000,
        block: 250,
        interval: Duration::from_micros(1000),
        spin_us: None,
        also: None,
        also_spin_us: None,
        json: false,
    };
    let usage = "usage: bridge_bench [--samples N] [--block N] [--interval-us N] [--spin-us N] \
                 [--also PATH_TO_SHM_BRIDGE] [--also-spin-us N] [--json]";
    let mut v = std::env::args().skip(1);
    while let Some(flag) = v.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let value = v.next().unwrap_or_else(|| panic!("{usage}"));
        let number = || value.parse::<usize>().unwrap_or_else(|_| panic!("{usage}"));
        match flag.as_str() {
            "--samples" => a.samples = number().max(1),
            "--block" => a.block = number().max(1),
            "--interval-us" => a.interval = Duration::from_micros(number() as u64),
            "--spin-us" => a.spin_us = Some(value),
            "--also" => a.also = Some(value.into()),
            "--also-spin-us" => a.also_spin_us = Some(value),
            _ => panic!("{usage}"),
        }
    }
    a
}

/// p50 and p99 of `ns`, in microseconds (`NaN` for none).
fn percentiles(ns: &[u64]) -> (f64, f64) {
    if ns.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut ns = ns.to_vec();
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The writer's pace: sleeps until the next interval (sleeping, not spinning: on a machine of
/// few cores a spinning writer would take a core from the processes it measures; latencies
/// are taken from the timestamp in each value, so the pace's own jitter does not count).
/// A value that is late (after a block's end, say) is sent at once, and the next one an
/// interval later: no burst to catch up.
struct Pace {
    last: Instant,
    interval: Duration,
}

impl Pace {
    fn new(interval: Duration) -> Pace {
        Pace {
            last: Instant::now(),
            interval,
        }
    }

    fn next(&mut self) {
        let due = self.last + self.interval;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            self.last = due;
        } else {
            self.last = now;
        }
    }
}

fn free_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("tcp/127.0.0.1:{port}")
}

/// `target/release/shm-bridge`, or the binary `SHM_BRIDGE` names.
fn bridge_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("SHM_BRIDGE") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("shm-bridge")
}

fn start_bridge(binary: &std::path::Path, args: &[&str]) -> Child {
    let mut child = Command::new(binary)
        .args(args)
        .arg("--quiet")
        .stderr(Stdio::null())
        .spawn()
        .expect("run target/release/shm-bridge (cargo build --release -p shm-bridge)");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "shm-bridge exited");
    child
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// A way for values to go from this process's writer to a reader, set up once.
trait Path {
    /// Sends the value numbered `seq`, stamped now.
    fn send(&mut self, seq: u64);
    /// Called before and after each block (the bridge counts its processes' CPU time).
    fn block_started(&mut self) {}
    fn block_ended(&mut self) {}
    /// Ends the path: every `(seq, latency ns)` the reader received.
    fn finish(self: Box<Self>) -> Vec<(u64, u64)>;
    /// CPU time per value its own processes spent carrying the values (the bridge's).
    fn cpu_per_value(&self) -> Option<Duration> {
        None
    }
}

/// A reader thread in this process waiting on a state's futex, recording what it reads.
struct FutexReader {
    done: Arc<AtomicU64>,
    /// The `seq` of the last value read.
    seen: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<(shm_core::Reader<Sample>, Records)>,
}

impl FutexReader {
    fn start(r: shm_core::Reader<Sample>) -> FutexReader {
        let done = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let (d, seen_by_reader) = (done.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut l = Vec::new();
            let mut v = r.version();
            let mut idle_since: Option<Instant> = None;
            loop {
                match r.wait_for_update(v, Duration::from_millis(100)) {
                    Ok(nv) => {
                        v = nv;
                        let s = r.read();
                        if s.seq != 0 {
                            l.push(received(&encode(&s)));
                        }
                        seen_by_reader.store(s.seq, Ordering::Relaxed);
                        if d.load(Ordering::Relaxed) != 0 && s.seq >= d.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    Err(_) => {
                        // Told to stop: the last value may have coalesced away.
                        if d.load(Ordering::Relaxed) != 0
                            && idle_since.get_or_insert_with(Instant::now).elapsed()
                                > Duration::from_secs(2)
                        {
                            break;
                        }
                    }
                }
            }
            (r, l)
        });
        FutexReader { done, seen, thread }
    }

    fn finish(self, last: u64) -> (shm_core::Reader<Sample>, Vec<(u64, u64)>) {
        self.done.store(last.max(1), Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The same writer and reader on one host, no bridge: what the shared memory itself costs.
struct Local {
    name: String,
    w: shm_core::Writer<Sample>,
    reader: FutexReader,
    last: u64,
}

impl Local {
    fn start() -> Local {
        let name = format!("/shm-bench-local-{}", std::process::id());
        let w = Sample::create(&name, &Sample::now(0)).unwrap();
        let reader = FutexReader::start(Sample::open(&name).unwrap());
        Local {
            name,
            w,
            reader,
            last: 0,
        }
    }
}

impl Path for Local {
    fn send(&mut self, seq: u64) {
        self.last = seq;
        self.w.write(&Sample::now(seq));
    }

    fn finish(self: Box<Self>) -> Vec<(u64, u64)> {
        let (_, l) = self.reader.finish(self.last);
        drop(self.w);
        let _ = shm_core::remove(&self.name);
        l
    }
}

/// Two bridges carrying the state `name` to its mirror, a writer and a reader of it.
struct Bridge {
    name: String,
    w: shm_core::Writer<Sample>,
    reader: Option<FutexReader>,
    /// What the reader received, once it stopped.
    records: Vec<(u64, u64)>,
    importer: Child,
    exporter: Child,
    /// The last `seq` written.
    last: u64,
    cpu_before: Duration,
    cpu: Duration,
    values: u32,
}

impl Bridge {
    /// Through the bridges `binary` runs, the exporting one with `extra` arguments; `tag`
    /// tells this path's names and host ids from another's.
    fn start(binary: &std::path::Path, extra: &[String], tag: &str) -> Bridge {
        let name = format!("/shm-bench-bridge-{tag}-{}", std::process::id());
        let (a, b) = (format!("bench{tag}A"), format!("bench{tag}B"));
        let mirror = format!("{name}@{a}");
        let w = Sample::create(&name, &Sample::now(0)).unwrap();
        let endpoint = free_endpoint();
        let import = format!("{a}/{}", name.trim_start_matches('/'));
        let importer = start_bridge(
            binary,
            &["--id", &b, "--listen", &endpoint, "--import", &import],
        );
        let mut args = vec!["--id", &a, "--connect", &endpoint, "--export", &name];
        args.extend(extra.iter().map(String::as_str));
        let exporter = start_bridge(binary, &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        let r = loop {
            if let Ok(r) = Sample::open(&mirror) {
                break r;
            }
            assert!(Instant::now() < deadline, "the mirror never appeared");
            std::thread::sleep(Duration::from_millis(10));
        };
        Bridge {
            name,
            w,
            reader: Some(FutexReader::start(r)),
            records: Vec::new(),
            importer,
            exporter,
            last: 0,
            cpu_before: Duration::ZERO,
            cpu: Duration::ZERO,
            values: 0,
        }
    }

    fn processes_cpu(&self) -> Duration {
        cpu_time(self.importer.id()) + cpu_time(self.exporter.id())
    }

    /// Back to back for 2 s: how many distinct updates reach the far reader per second, and
    /// the bridges' CPU time per distinct update.
    fn back_to_back(&mut self, a: &Args) {
        let (r, records) = self.reader.take().unwrap().finish(self.last);
        self.records = records;
        let stop_at = Instant::now() + Duration::from_secs(2);
        let counter = std::thread::spawn(move || {
            let (mut seen, mut last) = (0u64, 0u64);
            while Instant::now() < stop_at + Duration::from_millis(200) {
                let s = r.read();
                if s.seq != last {
                    seen += 1;
                    last = s.seq;
                }
                let _ = r.wait_for_update(r.version(), Duration::from_millis(50));
            }
            seen
        });
        let first = self.last;
        let cpu_before = self.processes_cpu();
        while Instant::now() < stop_at {
            self.last += 1;
            self.w.write(&Sample::now(self.last));
        }
        let seen = counter.join().unwrap();
        let cpu = self.processes_cpu() - cpu_before;
        println!(
            "bridge  back to back for 2 s: {} writes, {seen} distinct updates at the far reader \
             ({:.0} updates/s; versions coalesce); both bridges' CPU {:.2} s",
            self.last - first,
            seen as f64 / 2.0,
            cpu.as_secs_f64()
        );
        if a.json {
            println!(
                "{{\"path\":\"bridge-b2b\",\"writes\":{},\"updates_per_s\":{:.1},\"cpu_s\":{:.3}}}",
                self.last - first,
                seen as f64 / 2.0,
                cpu.as_secs_f64()
            );
        }
    }
}

impl Path for Bridge {
    fn send(&mut self, seq: u64) {
        self.last = seq;
        self.values += 1;
        self.w.write(&Sample::now(seq));
    }

    fn block_started(&mut self) {
        self.cpu_before = self.processes_cpu();
    }

    fn block_ended(&mut self) {
        // The block's last value is still on its way: its CPU counted once the far reader has
        // it (or, coalesced away by a later one that never comes, after a bound).
        if let Some(r) = &self.reader {
            let bound = Instant::now() + Duration::from_millis(100);
            while r.seen.load(Ordering::Relaxed) < self.last && Instant::now() < bound {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.cpu += self.processes_cpu() - self.cpu_before;
    }

    fn cpu_per_value(&self) -> Option<Duration> {
        Some(self.cpu / self.values.max(1))
    }

    fn finish(mut self: Box<Self>) -> Vec<(u64, u64)> {
        let l = match self.reader.take() {
            Some(r) => r.finish(self.last).1,
            None => std::mem::take(&mut self.records),
        };
        for child in [&mut self.exporter, &mut self.importer] {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = shm_core::remove(&self.name);
        l
    }
}

fn zenoh_config(listen: Option<&str>, connect: Option<&str>) -> zenoh::Config {
    let mut z = zenoh::Config::default();
    let list = |e: Option<&str>| e.map_or("[]".to_string(), |e| format!("[{e:?}]"));
    for (k, v) in [
        ("mode", r#""peer""#.to_string()),
        ("scouting/multicast/enabled", "false".into()),
        ("listen/endpoints", list(listen)),
        ("connect/endpoints", list(connect)),
    ] {
        z.insert_json5(k, &v).unwrap();
    }
    z
}

/// A receiving child process: prints `ready`, (Zenoh) `got` at the warm-up value, and at
/// the value numbered [`LAST`], its records as `seq latency` lines and `end`.
struct Receiver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Receiver {
    fn spawn(args: &[&str]) -> Receiver {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Receiver {
            child,
            stdin,
            lines,
        }
    }

    fn line(&mut self) -> String {
        self.lines.next().expect("the child's output").unwrap()
    }

    /// Reads the records after the last value was sent.
    fn records(mut self) -> Vec<(u64, u64)> {
        let mut l = Vec::new();
        loop {
            let line = self.line();
            if line == "end" {
                break;
            }
            let mut f = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            l.push((f.next().unwrap(), f.next().unwrap()));
        }
        drop(self.stdin.take());
        let _ = self.child.wait();
        l
    }
}

/// Records kept by a receiving child, printed once the last value arrived (or its parent's
/// stdin closed).
fn report_records(records: &Mutex<Vec<(u64, u64)>>, finished: &AtomicBool) {
    let mut stdin = String::new();
    // The parent closes stdin when it is done; the last value normally comes first.
    let watcher = std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_string(&mut stdin);
    });
    while !finished.load(Ordering::Relaxed) && !watcher.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = std::io::stdout().lock();
    for (seq, ns) in records.lock().unwrap().iter() {
        writeln!(out, "{seq} {ns}").unwrap();
    }
    writeln!(out, "end").unwrap();
    out.flush().unwrap();
    std::process::exit(0);
}

/// Zenoh's own pub/sub: this process's publisher, a child's subscriber.
struct ZenohPath {
    publisher: zenoh::pubsub::Publisher<'static>,
    receiver: Option<Receiver>,
    _session: zenoh::Session,
}

impl ZenohPath {
    fn start(mode: &str) -> ZenohPath {
        let endpoint = free_endpoint();
        let mut receiver = Receiver::spawn(&["--zenoh-sub", &endpoint, mode]);
        assert_eq!(receiver.line(), "ready");
        let session = zenoh::open(zenoh_config(None, Some(&endpoint)))
            .wait()
            .unwrap();
        // The bridge's QoS for state.
        let publisher = session
            .declare_publisher("bench/zenoh")
            .express(true)
            .congestion_control(zenoh::qos::CongestionControl::Drop)
            .wait()
            .unwrap();
        // Warm-up until the route is there (the child says `got`).
        let got = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !got.load(Ordering::Relaxed) {
                    publisher
                        .put(encode(&Sample::now(0)).to_vec())
                        .wait()
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    assert!(Instant::now() < deadline, "zenoh sessions never connected");
                }
            });
            assert_eq!(receiver.line(), "got");
            got.store(true, Ordering::Relaxed);
        });
        ZenohPath {
            publisher,
            receiver: Some(receiver),
            _session: session,
        }
    }
}

impl Path for ZenohPath {
    fn send(&mut self, seq: u64) {
        self.publisher
            .put(encode(&Sample::now(seq)).to_vec())
            .wait()
            .unwrap();
    }

    fn finish(mut self: Box<Self>) -> Vec<(u64, u64)> {
        // Express, congestion control drop: sent until the child has it.
        let receiver = self.receiver.take().unwrap();
        let stop = AtomicBool::new(false);
        let publisher = &self.publisher;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = publisher.put(encode(&Sample::now(LAST)).to_vec()).wait();
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let records = receiver.records();
            stop.store(true, Ordering::Relaxed);
            records
        })
    }
}

/// The receiving process of the Zenoh paths (`--zenoh-sub ENDPOINT MODE`): a Zenoh peer
/// listening on `ENDPOINT`, subscribed to `bench/zenoh`, receiving in the subscriber's
/// callback (`callback`) or on an application thread waiting on the subscriber's channel
/// (`fifo`).
fn zenoh_sub_child(endpoint: &str, mode: &str) {
    let session = zenoh::open(zenoh_config(Some(endpoint), None))
        .wait()
        .unwrap();
    let records = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let got = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let record = {
        let (records, got, finished) = (records.clone(), got.clone(), finished.clone());
        move |b: &[u8]| {
            let (seq, ns) = received(b);
            match seq {
                0 => got.store(true, Ordering::Relaxed),
                LAST => finished.store(true, Ordering::Relaxed),
                _ => records.lock().unwrap().push((seq, ns)),
            }
        }
    };
    let _keep: Box<dyn std::any::Any> = if mode == "callback" {
        let sub = session
            .declare_subscriber("bench/zenoh")
            .callback(move |s| record(&s.payload().to_bytes()))
            .wait()
            .unwrap();
        Box::new(sub)
    } else {
        let sub = session.declare_subscriber("bench/zenoh").wait().unwrap();
        let thread = std::thread::spawn(move || {
            while let Ok(s) = sub.recv() {
                record(&s.payload().to_bytes());
            }
        });
        Box::new(thread)
    };
    println!("ready");
    while !got.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("got");
    report_records(&records, &finished);
}

/// A plain TCP socket (`TCP_NODELAY`) to a child process reading it.
struct TcpPath {
    stream: std::net::TcpStream,
    receiver: Receiver,
}

impl TcpPath {
    fn start() -> TcpPath {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let mut receiver = Receiver::spawn(&["--tcp-recv", &port]);
        let (stream, _) = listener.accept().unwrap();
        stream.set_nodelay(true).unwrap();
        assert_eq!(receiver.line(), "ready");
        TcpPath { stream, receiver }
    }
}

impl Path for TcpPath {
    fn send(&mut self, seq: u64) {
        self.stream.write_all(&encode(&Sample::now(seq))).unwrap();
    }

    fn finish(mut self: Box<Self>) -> Vec<(u64, u64)> {
        self.stream.write_all(&encode(&Sample::now(LAST))).unwrap();
        self.receiver.records()
    }
}

/// The receiving process of the TCP path (`--tcp-recv PORT`).
fn tcp_recv_child(port: &str) {
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_nodelay(true).unwrap();
    println!("ready");
    let records = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let finished = Arc::new(AtomicBool::new(false));
    let (r, f) = (records.clone(), finished.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while s.read_exact(&mut buf).is_ok() {
            let (seq, ns) = received(&buf);
            if seq == LAST {
                break;
            }
            r.lock().unwrap().push((seq, ns));
        }
        f.store(true, Ordering::Relaxed);
    });
    report_records(&records, &finished);
}

/// One path's figures.
struct Figures {
    label: &'static str,
    p50: f64,
    p99: f64,
    received: usize,
    sent: usize,
    /// p50 of each of its blocks, by cycle.
    block_p50: Vec<f64>,
    cpu: Option<Duration>,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some("--zenoh-sub") => return zenoh_sub_child(&argv[2], &argv[3]),
        Some("--tcp-recv") => return tcp_recv_child(&argv[2]),
        _ => {}
    }
    let a = args();
    let cycles = a.samples.div_ceil(a.block);
    // The writer's pace as a periodic task sets it (a control loop, a sensor's driver): its
    // timer fires when set, not up to 50 us later (Linux's default slack for a thread).
    // SAFETY: PR_SET_TIMERSLACK takes a value and changes only this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
    let spin = |n: &Option<String>| {
        n.iter()
            .flat_map(|n| ["--spin-us".to_string(), n.clone()])
            .collect::<Vec<_>>()
    };
    let mut labels: Vec<&'static str> = vec!["local", "tcp", "zenoh-channel", "zenoh-callback"];
    let mut paths: Vec<Box<dyn Path>> = vec![
        Box::new(Local::start()),
        Box::new(TcpPath::start()),
        Box::new(ZenohPath::start("fifo")),
        Box::new(ZenohPath::start("callback")),
    ];
    let mut bridge = Bridge::start(&bridge_binary(), &spin(&a.spin_us), "");
    let also = a
        .also
        .as_ref()
        .map(|path| Bridge::start(path, &spin(&a.also_spin_us), "also"));
    if let Some(also) = also {
        labels.push("bridge-also");
        paths.push(Box::new(also));
    }
    println!(
        "{} values per path, 64 B, one every {:?}, on 127.0.0.1, in {cycles} cycles of blocks \
         of {} per path ({} paths interleaved)",
        cycles * a.block,
        a.interval,
        a.block,
        paths.len() + 1
    );
    // The bridge is a path of its own; kept aside for the back-to-back run afterwards.
    let bridge_index = paths.len();
    labels.push("bridge");
    // (path, first seq, last seq) of every block.
    let mut blocks: Vec<(usize, u64, u64)> = Vec::new();
    let mut seq = 0u64;
    let mut pace = Pace::new(a.interval);
    let started = Instant::now();
    for cycle in 0..cycles {
        for k in 0..=paths.len() {
            let i = (cycle + k) % (paths.len() + 1);
            let path: &mut dyn Path = if i == bridge_index {
                &mut bridge
            } else {
                paths[i].as_mut()
            };
            path.block_started();
            let first = seq + 1;
            for _ in 0..a.block {
                pace.next();
                seq += 1;
                path.send(seq);
            }
            path.block_ended();
            blocks.push((i, first, seq));
        }
        if !a.json || cycle + 1 == cycles {
            eprint!(
                "\rcycle {} of {cycles} ({:.0?})",
                cycle + 1,
                started.elapsed()
            );
        }
    }
    eprintln!();
    let bridge_cpu = bridge.cpu_per_value();
    let mut all: Vec<(Records, Option<Duration>)> = paths
        .into_iter()
        .map(|p| {
            let cpu = p.cpu_per_value();
            (p.finish(), cpu)
        })
        .collect();
    bridge.back_to_back(&a);
    all.push((Box::new(bridge).finish(), bridge_cpu));
    let figures: Vec<Figures> = all
        .into_iter()
        .enumerate()
        .map(|(i, (records, cpu))| {
            let mine: Vec<(u64, u64)> = blocks
                .iter()
                .filter(|b| b.0 == i)
                .map(|b| (b.1, b.2))
                .collect();
            let sent: u64 = mine.iter().map(|(f, l)| l - f + 1).sum();
            let in_blocks: Vec<u64> = records
                .iter()
                .filter(|(s, _)| mine.iter().any(|(f, l)| s >= f && s <= l))
                .map(|r| r.1)
                .collect();
            let block_p50 = mine
                .iter()
                .map(|(f, l)| {
                    let ns: Vec<u64> = records
                        .iter()
                        .filter(|(s, _)| s >= f && s <= l)
                        .map(|r| r.1)
                        .collect();
                    percentiles(&ns).0
                })
                .collect();
            let (p50, p99) = percentiles(&in_blocks);
            Figures {
                label: labels[i],
                p50,
                p99,
                received: in_blocks.len(),
                sent: sent as usize,
                block_p50,
                cpu,
            }
        })
        .collect();
    let by = |label: &str| figures.iter().find(|f| f.label == label).unwrap();
    for f in &figures {
        let cpu = f.cpu.map_or(String::new(), |c| {
            format!(
                "; both bridges' CPU {:.1} us per value",
                c.as_secs_f64() * 1e6
            )
        });
        println!(
            "{:<15} p50 {:>7.1} us, p99 {:>8.1} us ({} of {} received){cpu}",
            f.label, f.p50, f.p99, f.received, f.sent
        );
    }
    let mut ratios = Vec::new();
    for b in ["bridge", "bridge-also"] {
        if !figures.iter().any(|f| f.label == b) {
            continue;
        }
        for z in ["zenoh-channel", "zenoh-callback"] {
            let per_cycle: Vec<f64> = by(b)
                .block_p50
                .iter()
                .zip(&by(z).block_p50)
                .map(|(x, y)| x / y)
                .collect();
            let (lo, hi) = per_cycle
                .iter()
                .filter(|x| x.is_finite())
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let m = median(&per_cycle);
            println!(
                "{b} / {z}: p50 {:.2}x (all values), {m:.2}x (median over {} cycles, {lo:.2} to {hi:.2}); p99 {:.2}x",
                by(b).p50 / by(z).p50,
                per_cycle.len(),
                by(b).p99 / by(z).p99,
            );
            ratios.push((b, z, by(b).p50 / by(z).p50, m, by(b).p99 / by(z).p99));
        }
    }
    if a.json {
        for f in &figures {
            println!(
                "{{\"path\":\"{}\",\"bytes\":64,\"p50_us\":{:.3},\"p99_us\":{:.3},\"received\":{},\"sent\":{},\"cpu_us_per_value\":{}}}",
                f.label,
                f.p50,
                f.p99,
                f.received,
                f.sent,
                f.cpu.map_or("null".into(), |c| format!("{:.3}", c.as_secs_f64() * 1e6))
            );
        }
        for (b, z, all, cycles, p99) in ratios {
            println!(
                "{{\"ratio\":\"{b}/{z}\",\"p50_all\":{all:.4},\"p50_cycles\":{cycles:.4},\"p99_all\":{p99:.4}}}"
            );
        }
    }
}
