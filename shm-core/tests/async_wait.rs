//! Asynchronous waiting across processes: the futures (`changed`, stream `recv_async` and
//! `Stream`) and the `WaitSet`, under each backend (io_uring futex waits, `futex_waitv`
//! threads, a thread per wait): every test runs its body in a child process per backend
//! (`SHM_WAIT_BACKEND`).
//!
//! - Lost wake-ups: a writer process publishes at random 0-50 us gaps to many segments, in
//!   both publish modes (asymmetric barrier; locked, with `membarrier` refused), while async
//!   readers wait with the 100 ms safety slice turned off: a missed wake-up is a hang, which
//!   a watchdog reports. `SHM_STRESS_FULL=1` runs the full size (10^6 publishes, 64 readers,
//!   256 segments).
//! - No thread per segment: 256 segments in one set.
//! - Cancellation storm: 10^5 armed futures dropped, then every waiter count is 0 and a
//!   publish makes no system call (a seccomp filter kills the writer at its first).
//! - Writer death: 64 futures and a set waiting on a writer that is SIGKILLed all end with
//!   `Error::WriterDied`; the figures break the time down (SIGKILL to the writer's pidfd turning
//!   readable, for a minimal process, this binary idle, and a writer; then the pidfd event to
//!   the first and the last future resolved).
//!
//! No test asserts on elapsed time; the bounds only turn a hang into a failure.

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::__private::hooks;
use shm_core::{Error, Reader, SharedState, StreamReader, WaitBackend, WaitSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::pin::Pin;
use std::process::Child;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Every backend, by the name `SHM_WAIT_BACKEND` takes.
const BACKENDS: [&str; 3] = ["io_uring", "futex_waitv", "thread"];
/// How long a child may take before it counts as hung (far more than any run needs).
const BOUND: Duration = Duration::from_secs(600);

/// The backends to test: all, or those `SHM_TEST_BACKENDS` lists (comma-separated).
fn backends() -> Vec<&'static str> {
    match std::env::var("SHM_TEST_BACKENDS") {
        Ok(list) => BACKENDS
            .into_iter()
            .filter(|b| list.split(',').any(|l| l == *b))
            .collect(),
        Err(_) => BACKENDS.to_vec(),
    }
}

fn full() -> bool {
    std::env::var("SHM_STRESS_FULL").is_ok_and(|v| v == "1")
}

/// Reads lines of `child`'s stdout until one starts with `prefix`; the line.
fn line_starting(child: &mut Child, prefix: &str) -> String {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    for _ in 0..10_000 {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the child ended before printing {prefix:?}");
        }
        if line.starts_with(prefix) {
            return line.trim().to_string();
        }
    }
    panic!("no line {prefix:?}");
}

/// Waits for `child` (bounded: killed and reported as hung past [`BOUND`]); its stdout lines
/// and whether it succeeded.
fn finish(mut child: Child, what: &str) -> (Vec<String>, bool) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            let mut lines: Vec<String> = out
                .lines()
                .filter(|l| l.starts_with("RESULT") || l.starts_with("HANG"))
                .map(String::from)
                .collect();
            if !status.success() {
                lines.push(format!("exit: {status}"));
            }
            return (lines, status.success());
        }
        // Past the child's own watchdog, which reports what hung.
        if start.elapsed() > BOUND + Duration::from_secs(60) {
            kill(&mut child);
            panic!("{what}: hung past {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `role` in a child per backend, with `env`; asserts each succeeded; the result lines.
fn per_backend(role: &str, env: &[(&str, String)]) -> Vec<String> {
    let mut all = Vec::new();
    for b in backends() {
        let mut e: Vec<(&str, String)> = env.to_vec();
        e.push(("SHM_WAIT_BACKEND", b.to_string()));
        let child = spawn_role(ENTRY, role, &e);
        let (lines, ok) = finish(child, role);
        for l in &lines {
            eprintln!("{role} [{b}]: {l}");
        }
        assert!(ok, "{role} under {b} failed: {lines:?}");
        all.extend(lines);
    }
    all
}

/// The backend the environment forces in a child.
fn forced() -> WaitBackend {
    let set = WaitSet::new().unwrap();
    let b = set.backend();
    let want = match env("SHM_WAIT_BACKEND").as_str() {
        "io_uring" => WaitBackend::IoUring,
        "futex_waitv" => WaitBackend::FutexWaitv,
        _ => WaitBackend::Thread,
    };
    assert_eq!(b, want, "SHM_WAIT_BACKEND picks the backend");
    b
}

/// Threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

fn names_of(list: &str) -> Vec<String> {
    list.split(',').map(String::from).collect()
}

/// A two-thread tokio runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "publisher" => publisher(),
        "stress-readers" => stress_readers(),
        "thread-count" => thread_count(),
        "cancel-storm" => cancel_storm(),
        "write-without-syscalls" => write_without_syscalls(),
        "holder" => {
            let names = names_of(&env("NAMES"));
            let _w = u64::open_writer(&names[0]).unwrap();
            let _tx = u64::open_stream_writer(&names[1]).unwrap();
            println!("holding");
            for _ in 0..600 {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "idle" => {
            println!("holding");
            for _ in 0..600 {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "death-waiters" => death_waiters(),
        "death-first-ready" => death_first_ready(),
        other => panic!("unknown role {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Lost wake-ups.

/// Publishes `PER_SEG` versions to each segment of `NAMES`, in random order, at random 0-50 us
/// gaps, once the readers say go; with `MODE=locked`, with `membarrier` refused (locked
/// publishes).
fn publisher() {
    if env("MODE") == "locked" {
        common::seccomp::refuse_membarrier();
    }
    let names = names_of(&env("NAMES"));
    let per_seg: u64 = env("PER_SEG").parse().unwrap();
    let mut rng = Rng(env("SEED").parse().unwrap());
    let mut writers: Vec<_> = names.iter().map(|n| u64::open_writer(n).unwrap()).collect();
    let go = u64::open(&env("GO_NAME")).unwrap();
    println!("ready");
    let start = Instant::now();
    while go.read() == 0 {
        assert!(start.elapsed() < BOUND, "no go");
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut left: Vec<(usize, u64)> = (0..writers.len()).map(|i| (i, per_seg)).collect();
    while !left.is_empty() {
        let k = rng.below(left.len() as u64) as usize;
        let (i, n) = &mut left[k];
        writers[*i].update(|v| *v += 1);
        *n -= 1;
        if *n == 0 {
            left.swap_remove(k);
        }
        let gap = Duration::from_nanos(rng.below(50_000));
        let t = Instant::now();
        while t.elapsed() < gap {
            core::hint::spin_loop();
        }
    }
    // Stay the writer until the readers are done (the test kills or reaps this process).
    let done = u64::open(&env("GO_NAME")).unwrap();
    let start = Instant::now();
    while done.read() != 2 && start.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits with async readers for every segment of `NAMES` to reach `PER_SEG`: `READERS` tokio
/// tasks awaiting `changed`, and one task awaiting a `WaitSet` of all of them; a watchdog
/// thread reports a hang.
fn stress_readers() {
    hooks::disable_async_wait_slice();
    if std::env::var("SKIP_BARRIER").is_ok() {
        hooks::skip_waiter_barrier();
    }
    let backend = forced();
    let names = names_of(&env("NAMES"));
    let per_seg: u64 = env("PER_SEG").parse().unwrap();
    let readers: usize = env("READERS").parse().unwrap();
    let segs: Arc<Vec<Reader<u64>>> =
        Arc::new(names.iter().map(|n| u64::open(n).unwrap()).collect());
    let mut go = u64::open_writer(&env("GO_NAME")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let rt_segs = Arc::clone(&segs);
    let start = Instant::now();
    std::thread::spawn(move || {
        let rt = runtime();
        let segs = rt_segs;
        let result = rt.block_on(async move {
            let mut tasks = Vec::new();
            for k in 0..readers {
                let segs = Arc::clone(&segs);
                tasks.push(tokio::spawn(async move {
                    // This task's segments: every `readers`-th, or one if there are fewer.
                    let mine: Vec<usize> = if readers <= segs.len() {
                        (0..segs.len()).filter(|j| j % readers == k).collect()
                    } else {
                        vec![k % segs.len()]
                    };
                    let mut seen = vec![0u64; mine.len()];
                    let mut awaits = 0u64;
                    while seen.iter().any(|&v| v < per_seg) {
                        for (j, &i) in mine.iter().enumerate() {
                            if seen[j] < per_seg {
                                seen[j] = segs[i].changed(seen[j]).await.unwrap();
                                awaits += 1;
                            }
                        }
                    }
                    awaits
                }));
            }
            let set_segs = Arc::clone(&segs);
            let set_task = tokio::spawn(async move {
                let mut set = WaitSet::new().unwrap();
                let keys: Vec<_> = set_segs.iter().map(|r| set.attach(r).unwrap()).collect();
                let mut rounds = 0u64;
                while set_segs.iter().any(|r| r.version() < per_seg) {
                    let ready = set.next().await.unwrap();
                    assert!(ready.iter().all(|k| keys.contains(k)));
                    rounds += 1;
                }
                rounds
            });
            let mut awaits = 0;
            for t in tasks {
                awaits += t.await.unwrap();
            }
            (awaits, set_task.await.unwrap())
        });
        tx.send(result).unwrap();
    });
    go.write(&1);
    match rx.recv_timeout(BOUND) {
        Ok((awaits, rounds)) => {
            go.write(&2);
            println!(
                "RESULT backend={backend:?} segments={} per_segment={per_seg} readers={readers} \
                 changed_awaits={awaits} set_rounds={rounds} seconds={:.2}",
                segs.len(),
                start.elapsed().as_secs_f64()
            );
        }
        Err(_) => {
            let stuck: Vec<String> = segs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.version() < per_seg)
                .map(|(i, r)| format!("{i}@{}", r.version()))
                .collect();
            println!(
                "HANG backend={backend:?}: segments not seen at their final version {stuck:?}"
            );
            go.write(&2);
            std::process::exit(3);
        }
    }
}

/// Runs the lost-wake stress for every backend and both publish modes.
fn lost_wakes(skip_barrier: bool, modes: &[&str]) -> Vec<String> {
    let (segments, readers, publishes) = if full() {
        (256, 64, 1_000_000u64)
    } else {
        (16, 8, 16_000u64)
    };
    let per_seg = publishes.div_ceil(segments as u64);
    let mut results = Vec::new();
    for mode in modes {
        for b in backends() {
            let names: Vec<Name> = (0..segments).map(|_| Name::new("async-wake")).collect();
            for n in &names {
                drop(u64::create(n, &0).unwrap());
            }
            let go = Name::new("async-go");
            drop(u64::create(&go, &0).unwrap());
            let list = names
                .iter()
                .map(|n| n.0.clone())
                .collect::<Vec<_>>()
                .join(",");
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1;
            let mut publisher = spawn_role(
                ENTRY,
                "publisher",
                &[
                    ("NAMES", list.clone()),
                    ("PER_SEG", per_seg.to_string()),
                    ("SEED", seed.to_string()),
                    ("MODE", mode.to_string()),
                    ("GO_NAME", go.0.clone()),
                ],
            );
            line_starting(&mut publisher, "ready");
            let mut env = vec![
                ("NAMES", list),
                ("PER_SEG", per_seg.to_string()),
                ("READERS", readers.to_string()),
                ("GO_NAME", go.0.clone()),
                ("SHM_WAIT_BACKEND", b.to_string()),
            ];
            if skip_barrier {
                env.push(("SKIP_BARRIER", "1".to_string()));
            }
            let (lines, ok) = finish(spawn_role(ENTRY, "stress-readers", &env), "stress");
            kill(&mut publisher);
            for l in &lines {
                eprintln!("lost wakes [{mode}, seed {seed}]: {l}");
            }
            results.push(format!("{mode} {b} ok={ok} {lines:?}"));
            if !skip_barrier {
                assert!(
                    ok,
                    "async readers hung ({mode}, {b}, seed {seed}): {lines:?}"
                );
            }
        }
    }
    results
}

#[test]
fn async_waiters_never_miss_a_wake_up() {
    if role().is_some() {
        return;
    }
    lost_wakes(false, &["asymmetric", "locked"]);
}

/// Shows what the waiter's barrier prevents: without it, a writer that publishes without a
/// locked instruction misses async waiters. Run explicitly (it expects hangs, which the
/// watchdog reports): `cargo test --release -p shm-core --test async_wait -- --ignored
/// without_the_barrier`.
#[test]
#[ignore = "demonstration: expects hangs; run by hand"]
fn without_the_barrier_async_waiters_miss_wake_ups() {
    if role().is_some() {
        return;
    }
    for r in lost_wakes(true, &["asymmetric"]) {
        eprintln!("without the barrier: {r}");
    }
}

// ---------------------------------------------------------------------------------------
// No thread per segment.

fn thread_count() {
    let backend = forced();
    let names: Vec<Name> = (0..256).map(|_| Name::new("async-threads")).collect();
    let mut writers: Vec<_> = names.iter().map(|n| u64::create(n, &0).unwrap()).collect();
    let readers: Vec<_> = names.iter().map(|n| u64::open(n).unwrap()).collect();
    let before = threads();
    let mut set = WaitSet::new().unwrap();
    let keys: Vec<_> = readers.iter().map(|r| set.attach(r).unwrap()).collect();
    assert!(set.ready().unwrap().is_empty(), "nothing published yet");
    let waiting = threads();
    writers[100].write(&1);
    let ready = set.wait(BOUND).unwrap();
    assert_eq!(ready, vec![keys[100]]);
    // 256 `changed` futures in one task, on the process's shared engine.
    let shared_before = threads();
    let mut futs: Vec<_> = readers
        .iter()
        .skip(1)
        .map(|r| Box::pin(r.changed(r.version())))
        .collect();
    for f in &mut futs {
        assert!(poll_once(f).is_pending());
    }
    let shared_waiting = threads();
    drop(futs);
    let extra = waiting - before;
    let shared_extra = shared_waiting - shared_before;
    println!(
        "RESULT backend={backend:?} wait_set_extra_threads={extra} \
         shared_engine_extra_threads={shared_extra} (256 segments)"
    );
    match backend {
        WaitBackend::IoUring => {
            assert_eq!(extra, 0);
            assert!(shared_extra <= 1, "one driver thread at most");
        }
        WaitBackend::FutexWaitv => {
            assert!(extra <= 3);
            assert!(shared_extra <= 4);
        }
        _ => {}
    }
    drop(writers);
}

#[test]
fn a_wait_set_needs_no_thread_per_segment() {
    if role().is_some() {
        return;
    }
    per_backend("thread-count", &[]);
}

// ---------------------------------------------------------------------------------------
// Cancellation storm.

const STORM: usize = 100_000;
/// How long the last cancellations may take to complete (they take milliseconds).
const DRAIN_BOUND: Duration = Duration::from_secs(60);

fn cancel_storm() {
    let backend = forced();
    let names = names_of(&env("NAMES"));
    let (states, streams) = names.split_at(names.len() / 2);
    let mut writers: Vec<_> = states
        .iter()
        .map(|n| u64::open_writer(n).unwrap())
        .collect();
    let txs: Vec<_> = streams
        .iter()
        .map(|n| u64::open_stream_writer(n).unwrap())
        .collect();
    let readers: Vec<_> = states.iter().map(|n| u64::open(n).unwrap()).collect();
    let mut rxs: Vec<StreamReader<u64>> =
        streams.iter().map(|n| u64::subscribe(n).unwrap()).collect();
    let mut set = WaitSet::new().unwrap();
    for r in &readers {
        set.attach(r).unwrap();
    }
    let mut pending = 0;
    for i in 0..STORM {
        match i % 4 {
            0 | 1 => {
                let r = &readers[i % readers.len()];
                let mut f = Box::pin(r.changed(r.version()));
                pending += usize::from(poll_once(&mut f).is_pending());
            }
            2 => {
                let n = rxs.len();
                let rx = &mut rxs[i % n];
                let mut f = Box::pin(rx.recv_async());
                pending += usize::from(poll_once(&mut f).is_pending());
            }
            _ => {
                // The `Stream` keeps its wait in the reader: drop the reader.
                let n = rxs.len();
                let mut rx = u64::subscribe(&streams[i % n]).unwrap();
                let polled = futures_core::Stream::poll_next(
                    Pin::new(&mut rx),
                    &mut Context::from_waker(Waker::noop()),
                );
                pending += usize::from(polled.is_pending());
                drop(rx);
            }
        }
        if i % 1000 == 0 {
            // A wait set's waits, re-armed and dropped with it now and then.
            set.ready().unwrap();
        }
    }
    assert_eq!(pending, STORM, "every future was armed when dropped");
    drop(set);
    // The last cancellations complete asynchronously: wait (bounded) for every count to drop.
    let raws: Vec<_> = readers.iter().map(hooks::raw).collect();
    let start = Instant::now();
    let counts = || {
        raws.iter()
            .map(|r| hooks::waiters(r))
            .chain(rxs.iter().map(|rx| hooks::waiters(hooks::stream_raw(rx))))
            .collect::<Vec<u32>>()
    };
    while counts().iter().any(|&n| n != 0) {
        assert!(
            start.elapsed() < DRAIN_BOUND,
            "waiter counts stay {:?}",
            counts()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "RESULT backend={backend:?} {STORM} armed futures dropped; waiter counts back to 0 \
         after {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    writers.iter_mut().for_each(|w| w.write(&7));
    drop((writers, txs));
}

/// Publishes to every state segment and sends to every stream of `NAMES` under a seccomp
/// filter that kills the process at its first system call other than exit_group: it survives
/// only if nobody is counted as a waiter.
fn write_without_syscalls() {
    let names = names_of(&env("NAMES"));
    let (states, streams) = names.split_at(names.len() / 2);
    let mut writers: Vec<_> = states
        .iter()
        .map(|n| u64::open_writer(n).unwrap())
        .collect();
    let mut txs: Vec<_> = streams
        .iter()
        .map(|n| u64::open_stream_writer(n).unwrap())
        .collect();
    common::seccomp::forbid_syscalls_except_exit();
    for w in &mut writers {
        w.write(&42);
    }
    for tx in &mut txs {
        tx.send(&42);
    }
    // SAFETY: exit_group ends the process at once; nothing after it runs.
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!();
}

#[test]
fn dropped_futures_leave_no_waiter_behind() {
    if role().is_some() {
        return;
    }
    for b in backends() {
        let states: Vec<Name> = (0..32).map(|_| Name::new("async-storm")).collect();
        let streams: Vec<Name> = (0..32).map(|_| Name::new("async-storm-s")).collect();
        for n in &states {
            drop(u64::create(n, &0).unwrap());
        }
        for n in &streams {
            drop(u64::create_stream(n, 16).unwrap());
        }
        let list = states
            .iter()
            .chain(&streams)
            .map(|n| n.0.clone())
            .collect::<Vec<_>>()
            .join(",");
        let env = [("NAMES", list.clone()), ("SHM_WAIT_BACKEND", b.to_string())];
        let (lines, ok) = finish(spawn_role(ENTRY, "cancel-storm", &env), "storm");
        for l in &lines {
            eprintln!("cancel storm [{b}]: {l}");
        }
        assert!(ok, "cancel storm under {b}: {lines:?}");
        for n in states.iter().chain(&streams) {
            assert_eq!(common::peek(n, common::Field::Waiters), 0, "{}", n.0);
        }
        let (_, ok) = finish(
            spawn_role(ENTRY, "write-without-syscalls", &[("NAMES", list)]),
            "seccomp writer",
        );
        assert!(ok, "a publish made a system call after the storm ({b})");
    }
}

// ---------------------------------------------------------------------------------------
// Writer death.

/// 32 `changed` futures and 32 stream `recv_async` futures (64 in all), and a wait set, wait
/// on the segments a `holder` process (`HOLDER`) writes; once all are armed this process
/// SIGKILLs it, and every one must end with `Error::WriterDied`.
fn death_waiters() {
    hooks::disable_async_wait_slice();
    let backend = forced();
    let names = names_of(&env("NAMES"));
    let holder: libc::pid_t = env("HOLDER").parse().unwrap();
    let state = Arc::new(u64::open(&names[0]).unwrap());
    let rt = runtime();
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for k in 0..64 {
            let state = Arc::clone(&state);
            let stream = names[1].clone();
            tasks.push(tokio::spawn(async move {
                let got = if k % 2 == 0 {
                    state.changed(state.version()).await.map(drop)
                } else {
                    let mut rx = u64::subscribe(&stream).unwrap();
                    rx.recv_async().await.map(drop)
                };
                (got, Instant::now())
            }));
        }
        let set_state = Arc::clone(&state);
        let set_task = std::thread::spawn(move || {
            let mut set = WaitSet::new().unwrap();
            let key = set.attach(&*set_state).unwrap();
            assert!(set.ready().unwrap().is_empty());
            (set.wait(BOUND).unwrap(), key)
        });
        // Wait (bounded) until every future and the set are armed: 33 waiters on the state
        // segment, 32 on the stream.
        let raw = hooks::raw(&state);
        let probe = u64::subscribe(&names[1]).unwrap();
        let start = Instant::now();
        while hooks::waiters(raw) < 33 || hooks::waiters(hooks::stream_raw(&probe)) < 32 {
            assert!(start.elapsed() < BOUND, "the futures never armed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A thread of its own blocked in `poll` on the holder's pidfd: when the kernel
        // signals the exit, to split the time below into the kernel's part and ours.
        let pidfd = pidfd_open(holder);
        let (armed_tx, armed_rx) = std::sync::mpsc::channel();
        let watcher = std::thread::spawn(move || {
            armed_tx.send(()).unwrap();
            assert!(
                poll_in(&pidfd, BOUND),
                "the holder's pidfd never turned readable"
            );
            Instant::now()
        });
        armed_rx.recv().unwrap();
        let killed = Instant::now();
        // SAFETY: `kill` of the holder process our parent spawned and has not reaped.
        unsafe { libc::kill(holder, libc::SIGKILL) };
        let mut latencies = Vec::new();
        for t in tasks {
            let (got, at) = t.await.unwrap();
            assert!(matches!(got, Err(Error::WriterDied)), "{got:?}");
            latencies.push(at.saturating_duration_since(killed));
        }
        let (ready, key) = set_task.join().unwrap();
        let set_at = killed.elapsed();
        assert_eq!(
            ready,
            vec![key],
            "the set reports the segment whose writer died"
        );
        let pidfd_at = watcher.join().unwrap().saturating_duration_since(killed);
        (latencies, set_at, pidfd_at)
    });
    let (latencies, set_died, pidfd_at) = (latencies.0, latencies.1, latencies.2);
    let max = latencies.iter().max().unwrap();
    let min = latencies.iter().min().unwrap();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    // A sanity bound only (the slice is off: without the pidfd nothing would end the waits).
    assert!(*max < Duration::from_secs(60));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "RESULT backend={backend:?} 64 futures ended with WriterDied: mean {:.3} ms, max {:.3} \
         ms after SIGKILL; wait set by {:.3} ms",
        ms(mean),
        ms(*max),
        ms(set_died)
    );
    println!(
        "RESULT backend={backend:?} breakdown: SIGKILL to pidfd readable {:.3} ms; pidfd to \
         first future {:+.3} ms, to last {:+.3} ms, to the set {:+.3} ms",
        ms(pidfd_at),
        ms(*min) - ms(pidfd_at),
        ms(*max) - ms(pidfd_at),
        ms(set_died) - ms(pidfd_at)
    );
}

/// A wait set on the segment a `holder` process (`HOLDER`) writes, its waits armed; once this
/// process SIGKILLs the holder and the set's descriptor turns readable, the very next `ready()`
/// reports the segment (the safety slice is off: nothing else ends the wait). Readable means
/// "call `ready()`": the death is reported as soon as it is known, not after the cancellation
/// of the futex wait it ended has come back from the kernel too.
fn death_first_ready() {
    hooks::disable_async_wait_slice();
    let backend = forced();
    let names = names_of(&env("NAMES"));
    let holder: libc::pid_t = env("HOLDER").parse().unwrap();
    let state = u64::open(&names[0]).unwrap();
    let mut set = WaitSet::with_backend(backend).unwrap();
    let key = set.attach(&state).unwrap();
    assert!(set.ready().unwrap().is_empty(), "nothing was published");
    // Drain what arming signalled: from here on, readable means an armed wait ended.
    let fd = std::os::fd::AsFd::as_fd(&set).try_clone_to_owned().unwrap();
    let mut drained = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live buffer from a descriptor we own.
    let _ = unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            drained.as_mut_ptr().cast(),
            8,
        )
    };
    // SAFETY: `kill` of the holder process our parent spawned and has not reaped.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    assert!(
        poll_in(&fd, BOUND),
        "the set's descriptor never turned readable"
    );
    let first = set.ready().unwrap();
    println!("RESULT backend={backend:?} first ready() after readable: {first:?}");
    assert_eq!(
        first,
        vec![key],
        "{backend:?}: the first ready() after the descriptor turned readable reports the \
         writer's death"
    );
}

#[test]
fn a_set_reports_its_writers_death_at_the_first_ready() {
    if role().is_some() {
        return;
    }
    for b in backends() {
        let state = Name::new("async-first");
        let stream = Name::new("async-first-s");
        drop(u64::create(&state, &0).unwrap());
        drop(u64::create_stream(&stream, 16).unwrap());
        let list = format!("{},{}", state.0, stream.0);
        let mut holder = spawn_role(ENTRY, "holder", &[("NAMES", list.clone())]);
        line_starting(&mut holder, "holding");
        let env = [
            ("NAMES", list),
            ("HOLDER", holder.id().to_string()),
            ("SHM_WAIT_BACKEND", b.to_string()),
        ];
        let (lines, ok) = finish(spawn_role(ENTRY, "death-first-ready", &env), "first ready");
        kill(&mut holder);
        assert!(ok, "first ready under {b}: {lines:?}");
    }
}

/// A pidfd for `pid`.
fn pidfd_open(pid: libc::pid_t) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `pidfd_open` takes a pid and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor nobody else owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// Whether `fd` turned readable within `bound` (`poll`, retried on `EINTR`).
fn poll_in(fd: &std::os::fd::OwnedFd, bound: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let start = Instant::now();
    while start.elapsed() < bound {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut p, 1, 1000) } > 0 {
            return true;
        }
    }
    false
}

/// The kernel's part of writer death, per kind of victim: SIGKILL to the pidfd turning
/// readable (this thread blocked in `poll` on it right after `kill`), for a minimal process
/// (`sleep`), this test binary idle (no segment), and this binary holding the writer leases
/// of two segments (the `holder` of the test above). Figures only (`--nocapture`); each
/// victim must end, and its pidfd turn readable.
#[test]
fn writer_death_breakdown_kernel_exit() {
    if role().is_some() {
        return;
    }
    const ROUNDS: usize = 15;
    let state = Name::new("async-exit");
    let stream = Name::new("async-exit-s");
    drop(u64::create(&state, &0).unwrap());
    drop(u64::create_stream(&stream, 16).unwrap());
    let list = format!("{},{}", state.0, stream.0);
    for victim in ["sleep", "idle", "holder"] {
        let mut took = Vec::new();
        for _ in 0..ROUNDS {
            let mut child = if victim == "sleep" {
                std::process::Command::new("sleep")
                    .arg("600")
                    .spawn()
                    .expect("spawn sleep")
            } else {
                let mut c = spawn_role(ENTRY, victim, &[("NAMES", list.clone())]);
                line_starting(&mut c, "holding");
                c
            };
            let pid = child.id() as libc::pid_t;
            if victim == "sleep" {
                // Until it runs `sleep` (exec done) and sleeps in it.
                let start = Instant::now();
                loop {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                    if stat.contains("(sleep) S") {
                        break;
                    }
                    assert!(start.elapsed() < BOUND, "sleep never started");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let fd = pidfd_open(pid);
            let t0 = Instant::now();
            // SAFETY: `kill` of a child we spawned and have not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            assert!(
                poll_in(&fd, BOUND),
                "{victim}: the pidfd never turned readable"
            );
            took.push(t0.elapsed());
            let _ = child.wait();
        }
        took.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "RESULT SIGKILL to pidfd readable, {victim}: median {:.3} ms, min {:.3}, max {:.3} \
             ({ROUNDS} rounds)",
            ms(took[ROUNDS / 2]),
            ms(took[0]),
            ms(took[ROUNDS - 1])
        );
    }
}

#[test]
fn waiters_learn_of_a_killed_writer_at_once() {
    if role().is_some() {
        return;
    }
    for b in backends() {
        let state = Name::new("async-death");
        let stream = Name::new("async-death-s");
        drop(u64::create(&state, &0).unwrap());
        drop(u64::create_stream(&stream, 16).unwrap());
        let list = format!("{},{}", state.0, stream.0);
        let mut holder = spawn_role(ENTRY, "holder", &[("NAMES", list.clone())]);
        line_starting(&mut holder, "holding");
        let env = [
            ("NAMES", list),
            ("HOLDER", holder.id().to_string()),
            ("SHM_WAIT_BACKEND", b.to_string()),
        ];
        let (lines, ok) = finish(spawn_role(ENTRY, "death-waiters", &env), "death");
        kill(&mut holder);
        for l in &lines {
            eprintln!("writer death [{b}]: {l}");
        }
        assert!(ok, "writer death under {b}: {lines:?}");
    }
}
