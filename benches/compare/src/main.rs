//! Side-by-side harness: shm-core against what users would otherwise pick for shared state
//! on one host, each contender in separate processes pinned to different CPUs.
//!
//! ```text
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- [--quick] [--out DIR] [--only CASE]
//! ```
//!
//! The parent process runs every case as a writer child (pinned to CPU 0) and a reader child
//! (pinned to CPU 1), both this binary in a role; children report one JSON line each (the
//! stream cases, `streams.rs`, and the async waiting cases, `asyncwait.rs`, a sender and a
//! receiver the same way). Results
//! go to `DIR/results.csv`, `DIR/results.json`, `DIR/summary.md` and SVG plots. `--only CASE`
//! runs the cases whose name contains `CASE`.
//!
//! The bridge group (`bridge.rs`: `bridge_latency`, `bridge_ratio`, `bridge_updates`) measures
//! `shm-bridge`, which mirrors a segment to another host over Zenoh, on loopback beside Zenoh's
//! own pub/sub, TCP and local shared memory. This crate does not depend on Zenoh: the group
//! builds the main workspace's binaries (`cargo build --locked --release --workspace --bins
//! --examples`, which compiles nothing after the README's `cargo test --workspace --release`)
//! and runs its example `bridge_bench --json`. If that build or run fails, the harness says so
//! (on stderr, at the end of the run and in `summary.md`) and the other cases go on.

mod asyncwait;
mod bridge;
mod contenders;
mod measure;
mod report;
mod streams;
mod writers;

use contenders::Kind;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One measured result.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: String,
    pub contender: String,
    pub bytes: usize,
    /// Median ns per operation (or p50 for latencies, ns per attach).
    pub median_ns: f64,
    pub p99_ns: f64,
    pub ops: u64,
    pub torn: u64,
    pub retries: u64,
    /// Distinct values seen (reads) or samples (latencies).
    pub distinct: u64,
    /// Batches (or samples) the median is over: with a writer running, only the batches
    /// during which it published.
    pub used: u64,
    /// The latency samples, for distributions (latency cases only).
    pub samples: Vec<f64>,
    /// CPU ns the receiving process spent per observed value (async cases only).
    pub cpu_ns: f64,
    /// Threads the receiving process ran (async cases only).
    pub threads: u64,
    /// Values the writer published per second while the reader measured (contended read
    /// cases; NaN elsewhere): which rows were really contended.
    pub writer_per_s: f64,
}

/// Payload sizes in 8-byte words for the latency cases, and for throughput.
pub const SIZES: [usize; 4] = [8, 64, 4096, 65536];
pub const BIG_SIZES: [usize; 2] = [1 << 20, 16 << 20];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--role") {
        child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--stream-role") {
        streams::child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--async-role") {
        asyncwait::child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--writers-role") {
        writers::child(&args[i + 1..]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| "benches/compare/results".into());
    std::fs::create_dir_all(&out).expect("create the output directory");
    let _cleanup = Cleanup;
    install_signal_cleanup();
    let started = Instant::now();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args[i + 1].clone());
    let rows = run_all(quick, only.as_deref());
    report::write(&out, &rows, quick);
    writers::summary(&out, &rows);
    eprintln!(
        "{} results in {:.1} s; written to {out}",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(why) = bridge::failure() {
        eprintln!("error: bridge rows left out: {why}");
    }
}

/// Removes every `/dev/shm/shm-bench-<pid>-*` and `/tmp/shm-bench-<pid>-*` this run made,
/// however the run ends.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_leftovers();
    }
}

fn prefix() -> String {
    format!("shm-bench-{}-", std::process::id())
}

fn remove_leftovers() {
    let prefix = prefix();
    for dir in ["/dev/shm", "/tmp"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    bridge::on_signal();
    remove_leftovers();
    // SAFETY: restoring the default action and re-raising ends the process as the signal would.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_signal_cleanup() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)`, as `signal` expects.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Pins the calling process to `cpu` (modulo the CPUs there are).
pub fn pin(cpu: usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed `cpu_set_t` is a valid empty set; CPU_SET and sched_setaffinity get a
    // pointer to it and its size.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// How long a case measures.
#[derive(Clone, Copy)]
pub struct Budget {
    /// Batches (read/write cases) or samples (latency, attach).
    pub samples: usize,
    /// Target time per batch.
    pub batch: Duration,
}

fn budget(quick: bool) -> Budget {
    if quick {
        Budget {
            samples: 10,
            batch: Duration::from_micros(100),
        }
    } else {
        Budget {
            samples: 300,
            batch: Duration::from_micros(200),
        }
    }
}

fn run_all(quick: bool, only: Option<&str>) -> Vec<Row> {
    let b = budget(quick);
    let ours: Vec<Kind> = (1..=4).map(Kind::Ours).collect();
    let peers = [Kind::Mutex, Kind::Iceoryx2, Kind::MmapSync];
    let mut rows = Vec::new();
    // Read and write cases run in rounds, every contender once per round, and report the
    // median of the rounds: noise from other work on the machine then falls on all
    // contenders of a size alike, not on whichever ran during a burst.
    let rounds = if quick { 1 } else { 5 };
    let mut go = |case: &str, kinds: &[Kind], sizes: &[usize], mode: &str| {
        if only.is_some_and(|o| !case.contains(o)) {
            return;
        }
        let rounds = if case.starts_with("read") || case == "write" || case == "latency_wake" {
            rounds
        } else {
            1
        };
        for &bytes in sizes {
            let mut per_kind: Vec<Vec<Row>> = vec![Vec::new(); kinds.len()];
            for _ in 0..rounds {
                for (i, &k) in kinds.iter().enumerate() {
                    if let Some(r) = run_case(case, k, bytes, mode, b) {
                        per_kind[i].push(r);
                    }
                }
            }
            for runs in per_kind {
                let Some(r) = combine(runs) else { continue };
                eprintln!(
                    "{case:>22} {:>14} {bytes:>9} B  {:>12.1} ns  torn {:>6}  retries {:>8}",
                    r.contender, r.median_ns, r.torn, r.retries
                );
                rows.push(r);
            }
        }
    };
    let mut all = vec![Kind::Limit];
    all.extend(&ours);
    all.extend(peers);
    let mut with_socket = all.clone();
    with_socket.push(Kind::Socket);

    go("read_uncontended", &with_socket, &SIZES, "idle");
    go(
        "read_uncontended",
        &[Kind::Limit, Kind::Ours(4), Kind::Ours(2)],
        &BIG_SIZES,
        "idle",
    );
    go("read_writer_b2b", &with_socket, &SIZES, "b2b");
    go("read_writer_10us", &all, &SIZES, "10us");
    let mut writers = vec![Kind::Limit];
    writers.extend(&ours);
    writers.extend(peers);
    go("write", &writers, &SIZES, "write");
    go(
        "write",
        &[Kind::Limit, Kind::Ours(4), Kind::Ours(2)],
        &BIG_SIZES,
        "write",
    );
    go(
        "latency_spin",
        &[
            Kind::Ours(4),
            Kind::Ours(2),
            Kind::Mutex,
            Kind::Iceoryx2,
            Kind::MmapSync,
        ],
        &[64],
        "latency-spin",
    );
    // The raw futex is the floor of a blocked reader's wake-up (store, `FUTEX_WAKE`; the
    // reader `FUTEX_WAIT`s and loads): run in the same rounds as ours, so that noise falls
    // on both alike.
    go(
        "latency_wake",
        &[Kind::Ours(4), Kind::Futex, Kind::Iceoryx2],
        &[8, 64, 4096],
        "latency-wake",
    );
    go(
        "attach",
        &[
            Kind::Ours(4),
            Kind::Mutex,
            Kind::Socket,
            Kind::Iceoryx2,
            Kind::MmapSync,
        ],
        &[64],
        "attach",
    );
    for case in ["stream_throughput", "latency_stream"] {
        if only.is_some_and(|o| !case.contains(o)) {
            continue;
        }
        for bytes in streams::SIZES {
            for c in streams::ALL {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let name = format!("/{}s{}", prefix(), N.fetch_add(1, Ordering::Relaxed));
                let Some(r) = streams::run_case(case, c, bytes, &name, b) else {
                    eprintln!("{case} {}: no result", c.label());
                    continue;
                };
                eprintln!(
                    "{case:>22} {:>14} {bytes:>9} B  {:>12.1} ns  torn {:>6}  lost {:>8}",
                    r.contender, r.median_ns, r.torn, r.retries
                );
                rows.push(r);
            }
        }
    }
    for s in asyncwait::SPECS {
        if only.is_some_and(|o| !s.case.contains(o)) {
            continue;
        }
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!("/{}a{}", prefix(), N.fetch_add(1, Ordering::Relaxed));
        let got = asyncwait::run_case(s, &name, b);
        if got.is_empty() {
            eprintln!("{} {} {:?}: no result", s.case, s.style, s.backend);
        }
        for r in got {
            print_async(&r);
            rows.push(r);
        }
        if s.style == "futex" && s.case == "async_wake" {
            // iceoryx2's listener (its event service), as `latency_wake` measures it, among
            // the async rows: the same run, minutes apart at most.
            if let Some(mut r) = run_case("async_wake", Kind::Iceoryx2, 64, "latency-wake", b) {
                r.contender = "iceoryx2-listener".into();
                print_async(&r);
                rows.push(r);
            }
        }
    }
    rows.extend(writers::run_all(quick, only, b, &prefix()));
    rows.extend(bridge::run_all(quick, only));
    rows
}

fn print_async(r: &Row) {
    eprintln!(
        "{:>22} {:>32}  p50 {:>10.1} ns  p99 {:>10.1} ns  cpu/op {:>8.1} ns  threads {}",
        r.case, r.contender, r.median_ns, r.p99_ns, r.cpu_ns, r.threads
    );
}

/// One row from the rounds of a case: the median of their medians and of their p99s, the
/// sums of their counts (a starved round makes the whole row starved).
fn combine(mut runs: Vec<Row>) -> Option<Row> {
    if runs.len() <= 1 {
        return runs.pop();
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut row = runs[0].clone();
    row.median_ns = median(runs.iter().map(|r| r.median_ns).collect());
    row.p99_ns = median(runs.iter().map(|r| r.p99_ns).collect());
    row.ops = runs.iter().map(|r| r.ops).sum();
    row.torn = runs.iter().map(|r| r.torn).sum();
    row.distinct = runs.iter().map(|r| r.distinct).sum();
    row.used = runs.iter().map(|r| r.used).sum();
    row.writer_per_s = median(runs.iter().map(|r| r.writer_per_s).collect());
    row.retries = if runs.iter().any(|r| r.retries == u64::MAX) {
        u64::MAX
    } else {
        runs.iter().map(|r| r.retries).sum()
    };
    Some(row)
}

/// A child process of this binary in a role, its stdin piped (closing it stops the child).
fn spawn(
    role: &str,
    kind: Kind,
    bytes: usize,
    mode: &str,
    name: &str,
    cpu: usize,
    b: Budget,
) -> Child {
    Command::new(std::env::current_exe().expect("own executable"))
        .args([
            "--role",
            role,
            &kind.label(),
            &bytes.to_string(),
            mode,
            name,
            &cpu.to_string(),
            &b.samples.to_string(),
            &b.batch.as_nanos().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a child")
}

fn first_line(child: &mut Child) -> Option<String> {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut()?)
        .read_line(&mut line)
        .ok()?;
    (!line.is_empty()).then_some(line)
}

fn run_case(case: &str, kind: Kind, bytes: usize, mode: &str, b: Budget) -> Option<Row> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!("/{}{}", prefix(), N.fetch_add(1, Ordering::Relaxed));
    let result = if mode == "write" {
        // The writer alone.
        let mut w = spawn("write", kind, bytes, mode, &name, 0, b);
        let line = first_line(&mut w);
        let _ = w.wait();
        line
    } else {
        let mut w = spawn("writer", kind, bytes, mode, &name, 0, b);
        let ready = first_line(&mut w);
        let line = if ready.as_deref().map(str::trim) == Some("ready") {
            let mut r = spawn("reader", kind, bytes, mode, &name, 1, b);
            let line = first_line(&mut r);
            let _ = r.wait();
            line
        } else {
            eprintln!("{case} {}: the writer did not start", kind.label());
            None
        };
        drop(w.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while w.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = w.kill();
                let _ = w.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        line
    };
    for p in contenders::leftovers(kind, &name) {
        let _ = std::fs::remove_file(p);
    }
    let line = result?;
    let mut row = measure::parse(&line)?;
    row.case = case.into();
    row.contender = kind.label();
    row.bytes = bytes;
    Some(row)
}

/// A child's entry: `--role ROLE KIND BYTES MODE NAME CPU SAMPLES BATCH_NS`.
fn child(args: &[String]) {
    let kind = Kind::parse(&args[1]).expect("contender");
    let bytes: usize = args[2].parse().unwrap();
    let b = Budget {
        samples: args[6].parse().unwrap(),
        batch: Duration::from_nanos(args[7].parse().unwrap()),
    };
    let cpu: usize = args[5].parse().unwrap();
    let job = measure::Job {
        role: args[0].clone(),
        kind,
        mode: args[3].clone(),
        name: args[4].clone(),
        budget: b,
    };
    // A large stack: the contenders' code for the 16 MiB instantiation keeps value-sized
    // temporaries in its frames (iceoryx2's API passes values by value), even where unused.
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            pin(cpu);
            match bytes / 8 {
                1 => measure::run::<1>(&job),
                8 => measure::run::<8>(&job),
                512 => measure::run::<512>(&job),
                8192 => measure::run::<8192>(&job),
                131072 => measure::run::<131072>(&job),
                2097152 => measure::run::<2097152>(&job),
                w => panic!("no instantiation for {w} words"),
            }
        })
        .expect("spawn the worker thread");
    if worker.join().is_err() {
        std::process::exit(1);
    }
}

/// Set when the parent closes our stdin: the writer child stops and cleans up.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Watches stdin in a thread; EOF sets [`STOP`].
pub fn watch_stdin() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        STOP.store(true, Ordering::Relaxed);
    });
}

/// Prints one line to the parent.
pub fn tell(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
