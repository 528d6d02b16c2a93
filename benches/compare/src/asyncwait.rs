//! Async waiting: how long a reader that waits without spinning takes to hold a value another
//! process published, and what waiting costs it.
//!
//! A sender process (pinned to CPU 0) creates one or more 64-byte segments and publishes, every
//! 30-70 us, a value whose words are the `CLOCK_MONOTONIC` time just before the publish (into
//! one segment, picked at random, when there are several). A receiver process (pinned to
//! CPU 1, with every thread it starts) waits in one of the ways below, reads the value when
//! woken and takes the time. Rows give p50 and p99 of publish-to-observe, the receiver's CPU
//! time per observed value (all its threads, `CLOCK_PROCESS_CPUTIME_ID`) and the threads it runs.
//!
//! - `async_wake`: one segment; the reader blocked in `wait_for_update`, awaiting
//!   `changed()` on tokio (a current-thread runtime, or a task on a two-worker runtime), and a
//!   [`WaitSet`]'s descriptor in an epoll loop, each on the io_uring and `futex_waitv`
//!   backends (`SHM_WAIT_BACKEND`); against a raw futex word (`FUTEX_WAIT` / `FUTEX_WAKE` on
//!   a plain shared mapping, the floor of a blocking wake-up across processes) and tokio's
//!   `watch` channel inside one process (sender thread on CPU 0, receiving task on a
//!   current-thread runtime on CPU 1: the floor of an async wake-up). iceoryx2's listener
//!   joins these rows from the main harness (`latency_wake`, relabelled).
//! - `async_segments`: 1, 16 and 256 segments attached to one [`WaitSet`], the receiver
//!   blocked in [`WaitSet::wait`]; one publish at a time into any of them, 200-300 us apart
//!   (a receiver with many segments takes longer per wake-up; with the gaps of `async_wake`
//!   it would fall behind and measure its backlog). The raw futex and the blocking wait again,
//!   at this pace, for the ratios: a longer sleep wakes slower here.
//! - `async_arm`: with nothing published: a fresh `changed()` future polled once (it arms a
//!   wait: registration, the writer's pidfd, the backend's sleep) and dropped (cancelled), per
//!   pair; and a [`WaitSet`] arming its 1/16/256 segments at once (`ready()` after attaching)
//!   and cancelling them (detaching), per segment.

use crate::measure::now_ns;
use crate::{pin, tell, Budget, Row, STOP};
use serde_json::json;
use shm_core::{Reader, SharedState, WaitSet};
use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::Context;
use std::time::{Duration, Instant};

/// The payload: 8 words, all equal to the publish time.
type Value = [u64; 8];

/// One row to measure: a receiver style over `segments` segments on `backend`.
#[derive(Clone, Copy)]
pub struct Spec {
    pub case: &'static str,
    /// `futex`, `blocking`, `tokio-ct`, `tokio-mt2`, `epoll`, `set-wait`, `watch`, `arm`.
    pub style: &'static str,
    pub segments: usize,
    /// `SHM_WAIT_BACKEND` for the receiver, if forced.
    pub backend: Option<&'static str>,
}

const fn spec(
    case: &'static str,
    style: &'static str,
    segments: usize,
    backend: Option<&'static str>,
) -> Spec {
    Spec {
        case,
        style,
        segments,
        backend,
    }
}

const URING: Option<&str> = Some("io_uring");
const WAITV: Option<&str> = Some("futex_waitv");

/// Every row this module measures, in the order of the tables.
pub const SPECS: [Spec; 21] = [
    spec("async_wake", "futex", 1, None),
    spec("async_wake", "blocking", 1, None),
    spec("async_wake", "tokio-ct", 1, URING),
    spec("async_wake", "tokio-mt2", 1, URING),
    spec("async_wake", "epoll", 1, URING),
    spec("async_wake", "tokio-ct", 1, WAITV),
    spec("async_wake", "tokio-mt2", 1, WAITV),
    spec("async_wake", "epoll", 1, WAITV),
    spec("async_wake", "watch", 1, None),
    spec("async_segments", "futex", 1, None),
    spec("async_segments", "blocking", 1, None),
    spec("async_segments", "set-wait", 1, URING),
    spec("async_segments", "set-wait", 16, URING),
    spec("async_segments", "set-wait", 256, URING),
    spec("async_segments", "set-wait", 1, WAITV),
    spec("async_segments", "set-wait", 16, WAITV),
    spec("async_segments", "set-wait", 256, WAITV),
    spec("async_arm", "arm", 1, URING),
    spec("async_arm", "arm", 16, WAITV),
    spec("async_arm", "arm", 256, URING),
    spec("async_arm", "arm", 256, WAITV),
];

/// Runs `spec`: the sender and receiver children (or the one process of `watch`). `name` is
/// unique to this run. Returns the receiver's rows.
pub fn run_case(s: Spec, name: &str, b: Budget) -> Vec<Row> {
    let samples = b.samples * 20;
    let spawn = |role: &str, cpu: usize| -> Child {
        let mut c = Command::new(std::env::current_exe().expect("own executable"));
        c.args([
            "--async-role",
            role,
            s.style,
            &s.segments.to_string(),
            name,
            &cpu.to_string(),
            &samples.to_string(),
            if s.case == "async_segments" {
                "slow"
            } else {
                "fast"
            },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(backend) = s.backend {
            c.env("SHM_WAIT_BACKEND", backend);
        }
        c.spawn().expect("spawn a child")
    };
    let lines = if s.style == "watch" {
        let mut one = spawn("watch", 1);
        let lines = lines_of(&mut one);
        let _ = one.wait();
        lines
    } else {
        let mut tx = spawn("send", 0);
        let lines = if first_line(&mut tx).as_deref() == Some("ready") {
            let mut rx = spawn("receive", 1);
            let lines = lines_of(&mut rx);
            let _ = rx.wait();
            lines
        } else {
            eprintln!("{} {}: the sender did not start", s.case, s.style);
            Vec::new()
        };
        drop(tx.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while tx.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = tx.kill();
                let _ = tx.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        lines
    };
    for i in 0..s.segments {
        let _ = std::fs::remove_file(format!("/dev/shm{}", segment(name, i)));
    }
    let _ = std::fs::remove_file(format!("/dev/shm{name}"));
    lines
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let mut row = crate::measure::parse(l)?;
            row.case = s.case.into();
            row.contender = v["label"].as_str()?.into();
            row.bytes = 64;
            Some(row)
        })
        .collect()
}

fn first_line(child: &mut Child) -> Option<String> {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut()?)
        .read_line(&mut line)
        .ok()?;
    Some(line.trim().to_string()).filter(|l| !l.is_empty())
}

fn lines_of(child: &mut Child) -> Vec<String> {
    let Some(out) = child.stdout.as_mut() else {
        return Vec::new();
    };
    BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn segment(name: &str, i: usize) -> String {
    format!("{name}-{i}")
}

/// A child's entry: `--async-role ROLE STYLE SEGMENTS NAME CPU SAMPLES PACE` (`PACE`: `slow`
/// for publishes 200-300 us apart, else 30-70 us).
pub fn child(args: &[String]) {
    let (role, style) = (args[0].as_str(), args[1].as_str());
    let segments: usize = args[2].parse().unwrap();
    let name = args[3].as_str();
    let cpu: usize = args[4].parse().unwrap();
    let samples: usize = args[5].parse().unwrap();
    pin(cpu);
    match role {
        "send" => send(style, segments, name, args[6] == "slow"),
        "receive" => receive(style, segments, name, samples),
        "watch" => watch_floor(samples),
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sender

/// The raw futex contender's mapping: the futex word, then the publish time.
struct FutexWord {
    map: crate::contenders::Mapping,
}

impl FutexWord {
    fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping is at least 16 bytes, page-aligned, and lives as long as `self`;
        // both processes access these words only atomically.
        unsafe { &*(self.map.as_ptr() as *const AtomicU32) }
    }
    fn stamp(&self) -> &AtomicU64 {
        // SAFETY: as in `word`; offset 8 is 8-aligned.
        unsafe { &*(self.map.as_ptr().add(8) as *const AtomicU64) }
    }
}

fn futex(word: &AtomicU32, op: libc::c_int, val: u32, timeout: Option<&libc::timespec>) -> i64 {
    // SAFETY: `word` is a live, aligned u32 in a shared mapping; `timeout`, if any, points to
    // a valid timespec for the call. A shared (not private) futex: the peer is another process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            timeout.map_or(core::ptr::null(), |t| t as *const libc::timespec),
        )
    }
}

fn send(style: &str, segments: usize, name: &str, slow: bool) {
    crate::watch_stdin();
    // 30-70 us apart, so that the receiver is back to waiting (200-300 us in `async_segments`,
    // whose receiver takes longer per wake-up with many segments); the `arm` case publishes
    // nothing.
    let (base, spread) = if slow {
        (200_000, 100_000)
    } else {
        (30_000, 40_000)
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut pace = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let next = Instant::now() + Duration::from_nanos(base + rng % spread);
        while Instant::now() < next && !STOP.load(Ordering::Relaxed) {
            core::hint::spin_loop();
        }
        rng
    };
    if style == "futex" {
        let f = FutexWord {
            map: crate::contenders::Mapping::create(name, 4096),
        };
        tell("ready");
        while !STOP.load(Ordering::Relaxed) {
            pace();
            f.stamp().store(now_ns(), Ordering::Relaxed);
            f.word().fetch_add(1, Ordering::Release);
            futex(f.word(), libc::FUTEX_WAKE, i32::MAX as u32, None);
        }
        let _ = std::fs::remove_file(format!("/dev/shm{name}"));
        return;
    }
    let mut writers: Vec<_> = (0..segments)
        .map(|i| <Value>::create(&segment(name, i), &[0; 8]).expect("create a segment"))
        .collect();
    tell("ready");
    if style == "arm" {
        while !STOP.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        while !STOP.load(Ordering::Relaxed) {
            let r = pace();
            writers[(r >> 32) as usize % segments].write(&[now_ns(); 8]);
        }
    }
    drop(writers);
    for i in 0..segments {
        let _ = shm_core::remove(&segment(name, i));
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// CPU time of this process (every thread: `CLOCK_PROCESS_CPUTIME_ID`) or of the calling
/// thread (`CLOCK_THREAD_CPUTIME_ID`), in ns (exact, not sampled at ticks).
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Threads this process runs now.
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The backend `SHM_WAIT_BACKEND` (or the kernel) gives this process, as a set reports it.
fn backend() -> String {
    match WaitSet::new() {
        Ok(s) => match s.backend() {
            shm_core::WaitBackend::IoUring => "io_uring".into(),
            shm_core::WaitBackend::FutexWaitv => "futex_waitv".into(),
            shm_core::WaitBackend::Thread => "thread".into(),
            other => format!("{other:?}"),
        },
        Err(e) => format!("none ({e})"),
    }
}

/// Publish-to-observe samples, and what the receiver spent on them.
struct Latencies {
    lat: Vec<f64>,
    torn: u64,
    target: usize,
    deadline: Instant,
    cpu_start: u64,
    who: libc::clockid_t,
}

impl Latencies {
    fn new(target: usize, who: libc::clockid_t) -> Latencies {
        Latencies {
            lat: Vec::with_capacity(target),
            torn: 0,
            target,
            deadline: Instant::now() + Duration::from_secs(30),
            cpu_start: cpu_ns(who),
            who,
        }
    }
    /// Whether to go on.
    fn more(&self) -> bool {
        self.lat.len() < self.target && Instant::now() < self.deadline
    }
    /// Records a value just read (`last` is the previous one of its segment).
    fn observe(&mut self, v: &Value, last: &mut u64) {
        let t = now_ns();
        if v.iter().any(|&x| x != v[0]) {
            self.torn += 1;
        } else if v[0] != *last {
            self.lat.push(t.saturating_sub(v[0]) as f64);
            *last = v[0];
        }
    }
    /// Reports the row `label`; `threads` counted while waiting was set up.
    fn report(mut self, label: &str, threads: u64) {
        let cpu = cpu_ns(self.who) - self.cpu_start;
        self.lat.sort_by(f64::total_cmp);
        let n = self.lat.len();
        let q = |q: f64| {
            if n == 0 {
                f64::NAN
            } else {
                self.lat[((n - 1) as f64 * q).round() as usize]
            }
        };
        tell(
            &json!({
                "label": label,
                "median_ns": q(0.5),
                "p99_ns": q(0.99),
                "ops": n,
                "used": n,
                "distinct": n,
                "torn": self.torn,
                "retries": 0,
                "cpu_ns": cpu as f64 / n.max(1) as f64,
                "threads": threads,
                "samples": self.lat,
            })
            .to_string(),
        );
    }
}

fn receive(style: &str, segments: usize, name: &str, samples: usize) {
    let self_ = libc::CLOCK_PROCESS_CPUTIME_ID;
    if style == "futex" {
        let f = FutexWord {
            map: crate::contenders::Mapping::open(name, 4096),
        };
        let mut l = Latencies::new(samples, self_);
        let mut seen = f.word().load(Ordering::Acquire);
        let mut last = 0;
        let second = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        while l.more() {
            let w = f.word().load(Ordering::Acquire);
            if w != seen {
                seen = w;
                let stamp = f.stamp().load(Ordering::Relaxed);
                l.observe(&[stamp; 8], &mut last);
                continue;
            }
            futex(f.word(), libc::FUTEX_WAIT, w, Some(&second));
        }
        l.report("futex-raw", threads());
        return;
    }
    let readers: Vec<Reader<Value>> = (0..segments)
        .map(|i| <Value>::open(&segment(name, i)).expect("open a segment"))
        .collect();
    let backend = backend();
    match style {
        "blocking" => {
            let r = &readers[0];
            let mut l = Latencies::new(samples, self_);
            let (mut v, mut last) = (r.version(), 0);
            while l.more() {
                if let Ok(n) = r.wait_for_update(v, Duration::from_secs(1)) {
                    v = n;
                    l.observe(&r.read(), &mut last);
                }
            }
            l.report("ours-blocking", threads());
        }
        "tokio-ct" | "tokio-mt2" => {
            let rt = if style == "tokio-ct" {
                tokio::runtime::Builder::new_current_thread().build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .build()
            }
            .expect("a tokio runtime");
            let r = readers.into_iter().next().unwrap();
            let task = async move {
                let mut l = Latencies::new(samples, self_);
                let (mut v, mut last) = (r.version(), 0);
                let mut threads_seen = 0;
                while l.more() {
                    // A wait that ends without news (a slice) goes round again.
                    if let Ok(n) = r.changed(v).await {
                        v = n;
                        l.observe(&r.read(), &mut last);
                        threads_seen = threads_seen.max(threads());
                    }
                }
                (l, threads_seen)
            };
            let (l, t) = if style == "tokio-ct" {
                rt.block_on(task)
            } else {
                rt.block_on(rt.spawn(task)).expect("the task")
            };
            l.report(&format!("ours-{style} {backend}"), t);
        }
        "epoll" | "set-wait" => {
            let mut set = WaitSet::new().expect("a wait set");
            let mut of: HashMap<shm_core::Key, usize> = HashMap::new();
            for (i, r) in readers.iter().enumerate() {
                of.insert(set.attach(r).expect("attach"), i);
            }
            let mut last = vec![0u64; segments];
            // SAFETY: plain system call; the result is checked.
            let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            assert!(ep >= 0, "epoll_create1");
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            // SAFETY: `ep` is our epoll descriptor, the set's descriptor lives as long as
            // `set`, which outlives the loop; `ev` is a valid event.
            let rc = unsafe {
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, set.as_fd().as_raw_fd(), &mut ev)
            };
            assert_eq!(rc, 0, "epoll_ctl");
            let mut l = Latencies::new(samples, self_);
            let mut t = 0;
            while l.more() {
                let keys = if style == "epoll" {
                    let keys = set.ready().expect("ready");
                    if keys.is_empty() {
                        let mut out = [libc::epoll_event { events: 0, u64: 0 }];
                        // SAFETY: `out` has room for the one event asked for.
                        unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 1, 1000) };
                        continue;
                    }
                    keys
                } else {
                    match set.wait(Duration::from_secs(1)) {
                        Ok(keys) => keys,
                        Err(_) => continue,
                    }
                };
                for k in keys {
                    let i = of[&k];
                    l.observe(&readers[i].read(), &mut last[i]);
                }
                t = t.max(threads());
            }
            // SAFETY: `ep` is ours, closed once.
            unsafe { libc::close(ep) };
            let label = if style == "epoll" {
                format!("ours-waitset-epoll {backend}")
            } else {
                format!("waitset-{segments} {backend}")
            };
            l.report(&label, t);
        }
        "arm" => arm_costs(&readers, samples, &backend),
        other => panic!("unknown style {other}"),
    }
}

/// Reports per-operation medians of `per_op` (ns per operation of each batch) as `label`.
fn report_costs(label: &str, mut per_op: Vec<f64>, threads: u64) {
    per_op.sort_by(f64::total_cmp);
    let n = per_op.len();
    let q = |q: f64| per_op[((n - 1) as f64 * q).round() as usize];
    tell(
        &json!({
            "label": label, "median_ns": q(0.5), "p99_ns": q(0.99), "ops": n, "used": n,
            "threads": threads,
        })
        .to_string(),
    );
}

fn arm_costs(readers: &[Reader<Value>], samples: usize, backend: &str) {
    let segments = readers.len();
    if segments == 1 || segments == 16 {
        // A fresh `changed()` future polled once (arms) and dropped (cancels), in batches of 10.
        let r = &readers[0];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut per_op = Vec::new();
        let mut t_max = 0;
        for _ in 0..samples / 10 {
            let t = Instant::now();
            for _ in 0..10 {
                let mut f = std::pin::pin!(r.changed(r.version()));
                assert!(f.as_mut().poll(&mut cx).is_pending(), "nothing published");
            }
            per_op.push(t.elapsed().as_nanos() as f64 / 10.0);
            t_max = t_max.max(threads());
        }
        report_costs(&format!("changed-arm-cancel {backend}"), per_op, t_max);
    }
    // A set arming every segment at once, then cancelling them all.
    let rounds = (samples / segments).clamp(5, 200);
    let mut set = WaitSet::new().expect("a wait set");
    let (mut arm, mut scan, mut cancel) = (Vec::new(), Vec::new(), Vec::new());
    let mut t_max = 0;
    for _ in 0..rounds {
        let keys: Vec<_> = readers
            .iter()
            .map(|r| set.attach(r).expect("attach"))
            .collect();
        let t = Instant::now();
        let ready = set.ready().expect("ready");
        arm.push(t.elapsed().as_nanos() as f64 / segments as f64);
        assert!(ready.is_empty(), "nothing published");
        t_max = t_max.max(threads());
        // Once armed, a `ready()` that finds nothing: what every wake-up pays to find its key.
        let t = Instant::now();
        for _ in 0..10 {
            assert!(set.ready().expect("ready").is_empty(), "nothing published");
        }
        scan.push(t.elapsed().as_nanos() as f64 / 10.0);
        let t = Instant::now();
        for k in keys {
            set.detach(k);
        }
        cancel.push(t.elapsed().as_nanos() as f64 / segments as f64);
    }
    report_costs(&format!("waitset-arm x{segments} {backend}"), arm, t_max);
    report_costs(&format!("waitset-scan x{segments} {backend}"), scan, t_max);
    report_costs(
        &format!("waitset-cancel x{segments} {backend}"),
        cancel,
        t_max,
    );
}

/// The floor of an async wake-up: tokio's `watch` inside one process, the sender a thread
/// pinned to CPU 0, the receiver a task on a current-thread runtime on CPU 1 (this thread).
fn watch_floor(samples: usize) {
    let (tx, mut rx) = tokio::sync::watch::channel::<Value>([0; 8]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let sender = std::thread::spawn(move || {
        pin(0);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        while !stop.load(Ordering::Relaxed) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let next = Instant::now() + Duration::from_nanos(30_000 + rng % 40_000);
            while Instant::now() < next {
                core::hint::spin_loop();
            }
            let _ = tx.send([now_ns(); 8]);
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    // The receiving thread's CPU only: the sender spins between its sends.
    let (l, t) = rt.block_on(async {
        let mut l = Latencies::new(samples, libc::CLOCK_THREAD_CPUTIME_ID);
        let mut last = 0;
        while l.more() && rx.changed().await.is_ok() {
            let v = *rx.borrow_and_update();
            l.observe(&v, &mut last);
        }
        (l, threads())
    });
    done.store(true, Ordering::Relaxed);
    let _ = sender.join();
    l.report("tokio-watch in-process", t);
}
