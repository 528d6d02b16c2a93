//! End-to-end latency and throughput of the bridge on loopback, beside Zenoh's own pub/sub of
//! the same bytes and a plain TCP socket:
//!
//! ```sh
//! cargo build --release -p shm-bridge && cargo run --release -p shm-bridge --example bridge_bench
//! ```
//!
//! - `bridge`: a writer thread publishes a 64-byte state every `--interval-us`; two
//!   `shm-bridge` processes (Zenoh peers on 127.0.0.1) carry it to a mirror; a reader thread
//!   waits on the mirror (futex) and takes the one-way latency from the timestamp in the
//!   value (CLOCK_MONOTONIC is one clock for all processes of a host).
//! - `zenoh`: the same bytes, put by one Zenoh peer session and received in a subscriber
//!   callback of another (two sessions over TCP on loopback, default configuration but no
//!   multicast).
//! - `tcp`: the same bytes written to a TCP socket on loopback (`TCP_NODELAY`) and read by
//!   another thread.
//!
//! Also: updates per second reaching the far reader under a writer that publishes back to
//! back (versions coalesce), and the CPU time both bridge processes spent per update.

use shm_core::SharedState;
use std::io::{Read, Write};
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
}

fn args() -> Args {
    let mut a = Args {
        samples: 5000,
        interval: Duration::from_micros(1000),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--samples", Some(n)) => a.samples = n.parse().expect("--samples N"),
            ("--interval-us", Some(n)) => {
                a.interval = Duration::from_micros(n.parse().expect("--interval-us N"))
            }
            _ => panic!("usage: bridge_bench [--samples N] [--interval-us N]"),
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

fn pace(start: Instant, i: usize, interval: Duration) {
    let due = start + interval * i as u32;
    while Instant::now() < due {
        std::hint::spin_loop();
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

fn bridge_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("shm-bridge")
}

fn start_bridge(args: &[&str]) -> Child {
    let mut child = Command::new(bridge_binary())
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

fn bench_bridge(a: &Args) {
    let name = format!("/shm-bench-bridge-{}", std::process::id());
    let mirror = format!("{name}@benchA");
    let mut w = Sample::create(
        &name,
        &Sample {
            sent_ns: 0,
            seq: 0,
            pad: [0; 6],
        },
    )
    .unwrap();
    let endpoint = free_endpoint();
    let import = format!("benchA/{}", name.trim_start_matches('/'));
    let mut importer =
        start_bridge(&["--id", "benchB", "--listen", &endpoint, "--import", &import]);
    let mut exporter = start_bridge(&["--id", "benchA", "--connect", &endpoint, "--export", &name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = loop {
        if let Ok(r) = Sample::open(&mirror) {
            break r;
        }
        assert!(Instant::now() < deadline, "the mirror never appeared");
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu_before = cpu_time(importer.id()) + cpu_time(exporter.id());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(a.samples)));
    let samples = a.samples as u64;
    let reader = {
        let latencies = latencies.clone();
        std::thread::spawn(move || {
            let mut v = r.version();
            while let Ok(nv) = r.wait_for_update(v, Duration::from_secs(5)) {
                v = nv;
                let s = r.read();
                latencies.lock().unwrap().push(now_ns() - s.sent_ns);
                if s.seq >= samples {
                    break;
                }
            }
            r
        })
    };
    let start = Instant::now();
    for i in 1..=a.samples {
        pace(start, i, a.interval);
        w.write(&Sample {
            sent_ns: now_ns(),
            seq: i as u64,
            pad: [0; 6],
        });
    }
    let r = reader.join().unwrap();
    let cpu = cpu_time(importer.id()) + cpu_time(exporter.id()) - cpu_before;
    let mut l = latencies.lock().unwrap().clone();
    let received = l.len();
    let (p50, p99) = percentiles(&mut l);
    println!(
        "bridge  64 B state, one way writer -> far reader: p50 {p50:.1} us, p99 {p99:.1} us \
         ({received} of {} updates seen); both bridges' CPU: {:.1} us per update",
        a.samples,
        cpu.as_secs_f64() * 1e6 / a.samples as f64
    );

    // Back to back for 2 s: how many distinct updates reach the far reader per second.
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
    let mut seq = samples;
    let cpu_before = cpu_time(importer.id()) + cpu_time(exporter.id());
    while Instant::now() < stop_at {
        seq += 1;
        w.write(&Sample {
            sent_ns: now_ns(),
            seq,
            pad: [0; 6],
        });
    }
    let seen = counter.join().unwrap();
    let cpu = cpu_time(importer.id()) + cpu_time(exporter.id()) - cpu_before;
    println!(
        "bridge  back to back for 2 s: {} writes, {seen} distinct updates at the far reader \
         ({:.0} updates/s; versions coalesce); both bridges' CPU {:.2} s",
        seq - samples,
        seen as f64 / 2.0,
        cpu.as_secs_f64()
    );
    for child in [&mut exporter, &mut importer] {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
    drop(w);
    let _ = shm_core::remove(&name);
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

fn bench_zenoh(a: &Args, express: bool) {
    let endpoint = free_endpoint();
    let sub_session = zenoh::open(zenoh_config(Some(&endpoint), None))
        .wait()
        .unwrap();
    let pub_session = zenoh::open(zenoh_config(None, Some(&endpoint)))
        .wait()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(a.samples)));
    let l2 = latencies.clone();
    let _sub = sub_session
        .declare_subscriber("bench/zenoh")
        .callback(move |s| {
            let t = sent_ns(&s.payload().to_bytes());
            l2.lock().unwrap().push(now_ns() - t);
        })
        .wait()
        .unwrap();
    let publisher = pub_session
        .declare_publisher("bench/zenoh")
        .express(express)
        .wait()
        .unwrap();
    // Wait for the route to be there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.lock().unwrap().is_empty() {
        publisher
            .put(
                encode(&Sample {
                    sent_ns: now_ns(),
                    seq: 0,
                    pad: [0; 6],
                })
                .to_vec(),
            )
            .wait()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(Instant::now() < deadline, "zenoh sessions never connected");
    }
    std::thread::sleep(Duration::from_millis(100));
    latencies.lock().unwrap().clear();
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
    std::thread::sleep(Duration::from_millis(200));
    let mut l = latencies.lock().unwrap().clone();
    let received = l.len();
    let (p50, p99) = percentiles(&mut l);
    println!(
        "zenoh   64 B put -> subscriber callback, one way{}: p50 {p50:.1} us, p99 {p99:.1} us \
         ({received} of {} received)",
        if express { ", express" } else { "" },
        a.samples
    );
}

/// Zenoh's default way to receive: the subscriber's FIFO channel, read by an application
/// thread that waits on it (as a far reader waits on the mirror).
fn bench_zenoh_fifo(a: &Args) {
    let endpoint = free_endpoint();
    let sub_session = zenoh::open(zenoh_config(Some(&endpoint), None))
        .wait()
        .unwrap();
    let pub_session = zenoh::open(zenoh_config(None, Some(&endpoint)))
        .wait()
        .unwrap();
    let sub = sub_session.declare_subscriber("bench/fifo").wait().unwrap();
    let publisher = pub_session.declare_publisher("bench/fifo").wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publisher
            .put(
                encode(&Sample {
                    sent_ns: now_ns(),
                    seq: 0,
                    pad: [0; 6],
                })
                .to_vec(),
            )
            .wait()
            .unwrap();
        if sub
            .recv_timeout(Duration::from_millis(20))
            .ok()
            .flatten()
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "zenoh sessions never connected");
    }
    while sub.try_recv().ok().flatten().is_some() {}
    let samples = a.samples;
    let reader = std::thread::spawn(move || {
        let mut l = Vec::with_capacity(samples);
        while let Ok(Some(s)) = sub.recv_timeout(Duration::from_secs(5)) {
            l.push(now_ns() - sent_ns(&s.payload().to_bytes()));
            if l.len() == samples {
                break;
            }
        }
        l
    });
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
    let mut l = reader.join().unwrap();
    let (p50, p99) = percentiles(&mut l);
    println!(
        "zenoh   64 B put -> application thread waiting on the subscriber's channel: p50 {p50:.1} us, p99 {p99:.1} us"
    );
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
    let a = args();
    println!(
        "{} samples each, one every {:?}, on 127.0.0.1",
        a.samples, a.interval
    );
    bench_local(&a);
    bench_tcp(&a);
    bench_zenoh_fifo(&a);
    bench_zenoh(&a, false);
    bench_zenoh(&a, true);
    bench_bridge(&a);
}
