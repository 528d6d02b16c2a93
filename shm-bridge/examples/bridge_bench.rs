//! End-to-end latency and throughput of the bridge on loopback, beside Zenoh's own pub/sub of
//! the same bytes between two processes, a plain TCP socket and shared memory on one host:
//!
//! ```sh
//! cargo build --release -p shm-bridge --bins --examples
//! target/release/examples/bridge_bench --samples 3000 --rounds 7
//! ```
//!
//! - `bridge`: a writer thread publishes a 64-byte state every `--interval-us`; two
//!   `shm-bridge` processes (Zenoh peers on 127.0.0.1) carry it to a mirror; a reader thread
//!   waits on the mirror (futex) and takes the one-way latency from the timestamp in the
//!   value (CLOCK_MONOTONIC is one clock for all processes of a host). Processes on the way:
//!   writer, exporting bridge, importing bridge, reader.
//! - `zenoh`: the same bytes, put by this process (one Zenoh peer session, a publisher with
//!   the QoS the bridge uses for state: express, congestion control *drop*) and received by a
//!   child process (another Zenoh peer session over TCP on loopback): either in the
//!   subscriber's callback, or (Zenoh's default handler) by an application thread waiting on
//!   the subscriber's channel, as the far reader of a mirror waits on the mirror. Processes on
//!   the way: writer, reader: what an application using Zenoh directly has.
//! - `tcp`: the same bytes written to a TCP socket on loopback (`TCP_NODELAY`) and read by
//!   another thread.
//!
//! `--spin-us N` passes `--spin-us N` to the exporting bridge. `--also PATH` (with
//! `--also-spin-us N`) runs a second bridge path through the build `PATH` in the same rounds,
//! so that two builds or settings are compared side by side, each against the Zenoh figures of
//! the same rounds:
//!
//! ```sh
//! target/release/examples/bridge_bench --samples 2000 --rounds 5 \
//!     --also target/release/shm-bridge --also-spin-us 2000
//! ```
//!
//! The Zenoh and bridge paths run one after the other in each of `--rounds` rounds (the
//! machine's load changes between rounds); the summary gives each path's median over the
//! rounds and the bridge's ratio to Zenoh's. Also: updates per second reaching the far reader
//! under a writer that publishes back to back (versions coalesce), and the CPU time both
//! bridge processes spent per update.

use shm_core::SharedState;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
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

fn sent_ns(b: &[u8]) -> u64 {
    u64::from_ne_bytes(b[..8].try_into().unwrap())
}

struct Args {
    samples: usize,
    interval: Duration,
    rounds: usize,
    /// `--spin-us N`: passed to the exporting bridge.
    spin_us: Option<String>,
    /// `--also PATH [--also-spin-us N]`: a second bridge path, through the build `PATH`, run
    /// in the same rounds (to compare two builds or settings side by side).
    also: Option<std::path::PathBuf>,
    also_spin_us: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        samples: 3000,
        interval: Duration::from_micros(1000),
        rounds: 5,
        spin_us: None,
        also: None,
        also_spin_us: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--samples", Some(n)) => a.samples = n.parse().expect("--samples N"),
            ("--interval-us", Some(n)) => {
                a.interval = Duration::from_micros(n.parse().expect("--interval-us N"))
            }
            ("--rounds", Some(n)) => a.rounds = n.parse().expect("--rounds N"),
            ("--spin-us", Some(n)) => a.spin_us = Some(n.clone()),
            ("--also", Some(p)) => a.also = Some(p.into()),
            ("--also-spin-us", Some(n)) => a.also_spin_us = Some(n.clone()),
            _ => panic!(
                "usage: bridge_bench [--samples N] [--interval-us N] [--rounds N] [--spin-us N] \
                 [--also PATH_TO_SHM_BRIDGE] [--also-spin-us N]"
            ),
        }
    }
    a
}

/// p50 and p99 of `ns`, in microseconds.
fn percentiles(ns: &mut [u64]) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

/// Sleeps until the `i`th interval after `start` (sleeping, not spinning: on a machine of few
/// cores a spinning writer would take a core from the processes it measures; latencies are
/// taken from the timestamp in each value, so the pace's own jitter does not count).
fn pace(start: Instant, i: usize, interval: Duration) {
    let due = start + interval * i as u32;
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
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

/// Two bridges carrying the state `name` to its mirror, a writer and a reader of it.
struct BridgePath {
    name: String,
    w: shm_core::Writer<Sample>,
    r: Option<shm_core::Reader<Sample>>,
    importer: Child,
    exporter: Child,
    /// The last `seq` written.
    seq: u64,
}

impl BridgePath {
    /// Through the bridges `binary` runs, the exporting one with `extra` arguments; `tag`
    /// tells this path's names and host ids from another's.
    fn start(binary: &std::path::Path, extra: &[String], tag: &str) -> BridgePath {
        let name = format!("/shm-bench-bridge-{tag}-{}", std::process::id());
        let (a, b) = (format!("bench{tag}A"), format!("bench{tag}B"));
        let mirror = format!("{name}@{a}");
        let w = Sample::create(
            &name,
            &Sample {
                sent_ns: 0,
                seq: 0,
                pad: [0; 6],
            },
        )
        .unwrap();
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
        BridgePath {
            name,
            w,
            r: Some(r),
            importer,
            exporter,
            seq: 0,
        }
    }

    fn cpu(&self) -> Duration {
        cpu_time(self.importer.id()) + cpu_time(self.exporter.id())
    }

    /// One round: `a.samples` values at the pace, the reader timing each one it sees.
    fn round(&mut self, a: &Args) -> (f64, f64, usize, Duration) {
        let cpu_before = self.cpu();
        let r = self.r.take().unwrap();
        let last = self.seq + a.samples as u64;
        let reader = std::thread::spawn(move || {
            let mut l = Vec::new();
            let mut v = r.version();
            while let Ok(nv) = r.wait_for_update(v, Duration::from_secs(5)) {
                v = nv;
                let s = r.read();
                l.push(now_ns() - s.sent_ns);
                if s.seq >= last {
                    break;
                }
            }
            (r, l)
        });
        let start = Instant::now();
        for i in 1..=a.samples {
            pace(start, i, a.interval);
            self.seq += 1;
            self.w.write(&Sample {
                sent_ns: now_ns(),
                seq: self.seq,
                pad: [0; 6],
            });
        }
        let (r, mut l) = reader.join().unwrap();
        self.r = Some(r);
        let cpu = self.cpu() - cpu_before;
        let seen = l.len();
        let (p50, p99) = percentiles(&mut l);
        (p50, p99, seen, cpu / a.samples as u32)
    }

    /// Back to back for 2 s: how many distinct updates reach the far reader per second.
    fn back_to_back(&mut self) {
        let r = self.r.take().unwrap();
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
            (r, seen)
        });
        let first = self.seq;
        let cpu_before = self.cpu();
        while Instant::now() < stop_at {
            self.seq += 1;
            self.w.write(&Sample {
                sent_ns: now_ns(),
                seq: self.seq,
                pad: [0; 6],
            });
        }
        let (r, seen) = counter.join().unwrap();
        self.r = Some(r);
        let cpu = self.cpu() - cpu_before;
        println!(
            "bridge  back to back for 2 s: {} writes, {seen} distinct updates at the far reader \
             ({:.0} updates/s; versions coalesce); both bridges' CPU {:.2} s",
            self.seq - first,
            seen as f64 / 2.0,
            cpu.as_secs_f64()
        );
    }

    fn stop(mut self) {
        for child in [&mut self.exporter, &mut self.importer] {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        drop(self.r.take());
        drop(self.w);
        let _ = shm_core::remove(&self.name);
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

/// The receiving process of the Zenoh baseline (`--zenoh-sub ENDPOINT SAMPLES MODE`): a Zenoh
/// peer listening on `ENDPOINT`, subscribed to `bench/zenoh`, receiving in the subscriber's
/// callback (`callback`) or on an application thread waiting on the subscriber's channel
/// (`fifo`). Prints `ready`, then `got` once the first (warm-up, `seq` 0) sample arrived, then
/// `result P50 P99 COUNT` once `SAMPLES` samples arrived (or none for 5 s).
fn zenoh_sub_child(endpoint: &str, samples: u64, mode: &str) {
    let session = zenoh::open(zenoh_config(Some(endpoint), None))
        .wait()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(samples as usize)));
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let got = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let record = {
        let (latencies, last, got) = (latencies.clone(), last.clone(), got.clone());
        move |b: &[u8]| {
            let t = now_ns();
            let seq = u64::from_ne_bytes(b[8..16].try_into().unwrap());
            if seq == 0 {
                got.store(true, std::sync::atomic::Ordering::Relaxed);
            } else {
                latencies.lock().unwrap().push(t - sent_ns(b));
                last.store(seq, std::sync::atomic::Ordering::Relaxed);
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
            while let Ok(Some(s)) = sub.recv_timeout(Duration::from_secs(30)) {
                record(&s.payload().to_bytes());
            }
        });
        Box::new(thread)
    };
    println!("ready");
    let mut told = false;
    let mut idle_since = Instant::now();
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if !told && got.load(std::sync::atomic::Ordering::Relaxed) {
            println!("got");
            told = true;
        }
        let now = last.load(std::sync::atomic::Ordering::Relaxed);
        if now != seen {
            seen = now;
            idle_since = Instant::now();
        }
        if now >= samples || (seen > 0 && idle_since.elapsed() > Duration::from_secs(5)) {
            break;
        }
    }
    let mut l = latencies.lock().unwrap().clone();
    let n = l.len();
    let (p50, p99) = percentiles(&mut l);
    println!("result {p50} {p99} {n}");
    std::process::exit(0);
}

/// Zenoh's own pub/sub of the same bytes, from this process to a child process that receives
/// them as `mode` says (`callback` or `fifo`): p50, p99 and how many arrived.
fn bench_zenoh(a: &Args, mode: &str) -> (f64, f64, usize) {
    let endpoint = free_endpoint();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--zenoh-sub", &endpoint, &a.samples.to_string(), mode])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut line = || lines.next().expect("the child's output").unwrap();
    assert_eq!(line(), "ready");
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
    let warm = {
        let publisher = &publisher;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !d.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = encode(&Sample {
                        sent_ns: now_ns(),
                        seq: 0,
                        pad: [0; 6],
                    });
                    publisher.put(bytes.to_vec()).wait().unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    assert!(Instant::now() < deadline, "zenoh sessions never connected");
                }
            });
            let got = line();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            got
        })
    };
    assert_eq!(warm, "got");
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    for i in 1..=a.samples {
        pace(start, i, a.interval);
        let bytes = encode(&Sample {
            sent_ns: now_ns(),
            seq: i as u64,
            pad: [0; 6],
        });
        publisher.put(bytes.to_vec()).wait().unwrap();
    }
    let result = line();
    let _ = child.wait();
    let f: Vec<&str> = result.split_whitespace().collect();
    assert_eq!(f[0], "result", "{result}");
    (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The same writer and reader on one host, no bridge: what the shared memory itself costs
/// (the reader wakes from the futex).
fn bench_local(a: &Args) {
    let name = format!("/shm-bench-local-{}", std::process::id());
    let mut w = Sample::create(
        &name,
        &Sample {
            sent_ns: 0,
            seq: 0,
            pad: [0; 6],
        },
    )
    .unwrap();
    let r = Sample::open(&name).unwrap();
    let samples = a.samples as u64;
    let reader = std::thread::spawn(move || {
        let mut l = Vec::new();
        let mut v = r.version();
        while let Ok(nv) = r.wait_for_update(v, Duration::from_secs(5)) {
            v = nv;
            let s = r.read();
            l.push(now_ns() - s.sent_ns);
            if s.seq >= samples {
                break;
            }
        }
        l
    });
    let start = Instant::now();
    for i in 1..=a.samples {
        pace(start, i, a.interval);
        w.write(&Sample {
            sent_ns: now_ns(),
            seq: i as u64,
            pad: [0; 6],
        });
    }
    let mut l = reader.join().unwrap();
    let (p50, p99) = percentiles(&mut l);
    println!("local   64 B state, writer -> reader waiting on the futex, one host: p50 {p50:.1} us, p99 {p99:.1} us");
    drop(w);
    let _ = shm_core::remove(&name);
}

fn bench_tcp(a: &Args) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let samples = a.samples;
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut l = Vec::with_capacity(samples);
        let mut buf = [0u8; 64];
        for _ in 0..samples {
            s.read_exact(&mut buf).unwrap();
            l.push(now_ns() - sent_ns(&buf));
        }
        l
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let start = Instant::now();
    for i in 1..=a.samples {
        pace(start, i, a.interval);
        c.write_all(&encode(&Sample {
            sent_ns: now_ns(),
            seq: i as u64,
            pad: [0; 6],
        }))
        .unwrap();
    }
    let mut l = server.join().unwrap();
    let (p50, p99) = percentiles(&mut l);
    println!("tcp     64 B write -> read, one way, TCP_NODELAY: p50 {p50:.1} us, p99 {p99:.1} us");
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--zenoh-sub") {
        return zenoh_sub_child(&argv[2], argv[3].parse().unwrap(), &argv[4]);
    }
    let a = args();
    println!(
        "{} samples each, one every {:?}, on 127.0.0.1, {} rounds",
        a.samples, a.interval, a.rounds
    );
    bench_local(&a);
    bench_tcp(&a);
    let spin = |n: &Option<String>| {
        n.iter()
            .flat_map(|n| ["--spin-us".to_string(), n.clone()])
            .collect::<Vec<_>>()
    };
    let mut bridge = BridgePath::start(&bridge_binary(), &spin(&a.spin_us), "");
    let mut also = a
        .also
        .as_ref()
        .map(|path| BridgePath::start(path, &spin(&a.also_spin_us), "also"));
    let (mut fifo, mut callback, mut via, mut via_also) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=a.rounds {
        let f = bench_zenoh(&a, "fifo");
        println!(
            "round {round}: zenoh   put -> other process, thread waiting on the subscriber's channel: \
             p50 {:.1} us, p99 {:.1} us ({} of {})",
            f.0, f.1, f.2, a.samples
        );
        let c = bench_zenoh(&a, "callback");
        println!(
            "round {round}: zenoh   put -> other process, subscriber callback: \
             p50 {:.1} us, p99 {:.1} us ({} of {})",
            c.0, c.1, c.2, a.samples
        );
        let b = bridge.round(&a);
        println!(
            "round {round}: bridge  writer -> bridge -> bridge -> far reader (futex): \
             p50 {:.1} us, p99 {:.1} us ({} of {} seen); both bridges' CPU {:.1} us per update",
            b.0,
            b.1,
            b.2,
            a.samples,
            b.3.as_secs_f64() * 1e6
        );
        fifo.push((f.0, f.1));
        callback.push((c.0, c.1));
        via.push((b.0, b.1));
        if let Some(also) = also.as_mut() {
            let b = also.round(&a);
            println!(
                "round {round}: bridge (--also) writer -> bridge -> bridge -> far reader (futex): \
                 p50 {:.1} us, p99 {:.1} us ({} of {} seen); both bridges' CPU {:.1} us per update",
                b.0,
                b.1,
                b.2,
                a.samples,
                b.3.as_secs_f64() * 1e6
            );
            via_also.push((b.0, b.1));
        }
    }
    let p50 = |v: &[(f64, f64)]| median(&v.iter().map(|x| x.0).collect::<Vec<_>>());
    let p99 = |v: &[(f64, f64)]| median(&v.iter().map(|x| x.1).collect::<Vec<_>>());
    println!("medians over {} rounds:", a.rounds);
    for (what, v) in [
        ("zenoh, thread waiting on the channel", &fifo),
        ("zenoh, subscriber callback", &callback),
        ("bridge, far reader on the futex", &via),
    ] {
        println!("  {what}: p50 {:.1} us, p99 {:.1} us", p50(v), p99(v));
    }
    if also.is_some() {
        println!(
            "  bridge (--also), far reader on the futex: p50 {:.1} us, p99 {:.1} us",
            p50(&via_also),
            p99(&via_also)
        );
    }
    for (what, v) in [("the channel", &fifo), ("the callback", &callback)] {
        println!(
            "  bridge / zenoh ({what}): p50 {:.2}x, p99 {:.2}x",
            p50(&via) / p50(v),
            p99(&via) / p99(v)
        );
        if also.is_some() {
            println!(
                "  bridge (--also) / zenoh ({what}): p50 {:.2}x, p99 {:.2}x",
                p50(&via_also) / p50(v),
                p99(&via_also) / p99(v)
            );
        }
    }
    bridge.back_to_back();
    bridge.stop();
    if let Some(also) = also {
        also.stop();
    }
}
