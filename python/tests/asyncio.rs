//! asyncio support of the Python module, run by the real `python3` with the module this
//! `cargo test` built, against Rust writer processes, under every wait backend
//! (`SHM_WAIT_BACKEND`):
//!
//! - a state segment and a stream awaited at once (`Reader.changed`, `async for`) reach the
//!   final version and every message, or account exactly for those a gap lost;
//! - 256 segments awaited at once: one wait set, one descriptor, and no thread per segment
//!   (counted in `/proc/self/task`), every segment's waiter count at 1 while they wait;
//! - a storm of cancelled waits (`asyncio.wait_for` timeouts, `Task.cancel`) leaves every
//!   waiter count at 0;
//! - a writer SIGKILLed while it is awaited ends the awaits with `WriterDiedError`;
//! - a `WaitSet` drives a `selectors` loop over a state segment and a stream, each change
//!   reported once, the descriptor readable again for every next change;
//! - `python/examples/asyncio_reader.py` runs against live writers.
//!
//! No test asserts on elapsed time: writers wait for the readers' registration in the
//! segment's waiter count (observed progress), and every bound only turns a hang into a
//! failure.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;

use common::{env, peek, role, Field, Name, ENTRY, ENTRY_ONLY};
use lang::TempDir;
use shm_core::{SharedState, WaitBackend, WaitSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the segments and streams hold.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose")]
struct Pose {
    tick: u64,
    pos: [f64; 3],
    status: u32,
    flags: u32,
}

impl Pose {
    fn at(c: u64) -> Pose {
        Pose {
            tick: c,
            pos: [c as f64, 2.0 * c as f64, -(c as f64)],
            status: c as u32,
            flags: !(c as u32),
        }
    }
}

/// How long a child may take before it counts as hung (far more than any run needs).
const BOUND: Duration = Duration::from_secs(300);

/// The backends to test: those this kernel runs (io_uring futex waits need Linux 6.7), or
/// those `SHM_TEST_BACKENDS` lists (comma-separated).
fn backends() -> Vec<&'static str> {
    let listed = std::env::var("SHM_TEST_BACKENDS").ok();
    [
        ("io_uring", WaitBackend::IoUring),
        ("futex_waitv", WaitBackend::FutexWaitv),
        ("thread", WaitBackend::Thread),
    ]
    .into_iter()
    .filter(|(n, _)| {
        listed
            .as_ref()
            .is_none_or(|l| l.split(',').any(|x| x == *n))
    })
    .filter(|(n, b)| {
        let ok = WaitSet::with_backend(*b).is_ok();
        if !ok {
            eprintln!("the {n} wait backend does not start on this kernel: not tested");
        }
        ok
    })
    .map(|(n, _)| n)
    .collect()
}

/// A directory holding the extension module this build made (as `shm_state.so`) for
/// `PYTHONPATH`.
fn python_dir(tag: &str) -> TempDir {
    // The test binary is target/<profile>/deps/<test>; the cdylib is beside it, or one up.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let lib = [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libshm_state.so"))
        .find(|l| l.exists())
        .unwrap_or_else(|| panic!("libshm_state.so was not built in {}", deps.display()));
    let dir = TempDir::new(tag);
    std::fs::copy(&lib, dir.path().join("shm_state.so")).unwrap();
    dir
}

/// `python3 script args...` with the module of `dir`, under `backend`; stdin and stdout piped.
fn python(dir: &Path, script: &str, args: &[&str], backend: &str) -> Proc {
    let path = dir.join("script.py");
    std::fs::write(&path, script).unwrap();
    python_file(dir, &path, args, Some(backend))
}

/// `python3 path args...` with the module of `dir`, under `backend` (`None`: the default);
/// stdin and stdout piped.
fn python_file(dir: &Path, path: &Path, args: &[&str], backend: Option<&str>) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(path)
        .args(args)
        .env("PYTHONPATH", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("SHM_WAIT_BACKEND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if let Some(b) = backend {
        cmd.env("SHM_WAIT_BACKEND", b);
    }
    Proc::new(cmd.spawn().unwrap(), "python3")
}

/// A child process, killed if it is still running [`BOUND`] after it started (so that a hang
/// fails the test instead of stalling it) or when the test ends early (a failed assertion).
struct Proc {
    child: Arc<Mutex<Child>>,
    done: Arc<AtomicBool>,
    what: &'static str,
}

impl Proc {
    fn new(child: Child, what: &'static str) -> Proc {
        let child = Arc::new(Mutex::new(child));
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (child.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Relaxed) {
                if start.elapsed() > BOUND {
                    let mut c = c.lock().unwrap();
                    // A reaped child is left alone (its pid may name another process now).
                    if let Ok(None) = c.try_wait() {
                        eprintln!("{what}: hung past {BOUND:?}, killed");
                        let _ = c.kill();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Proc { child, done, what }
    }

    fn lines(&self) -> Lines {
        let out = self.child.lock().unwrap().stdout.take().unwrap();
        Lines(BufReader::new(out).lines())
    }

    fn read_all(&self) -> String {
        let mut out = self.child.lock().unwrap().stdout.take().unwrap();
        let mut all = String::new();
        std::io::Read::read_to_string(&mut out, &mut all).unwrap();
        all
    }

    fn send(&self, line: &str) {
        let mut c = self.child.lock().unwrap();
        writeln!(c.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    fn close_stdin(&self) {
        self.child.lock().unwrap().stdin = None;
    }

    /// SIGKILL, then reaped.
    fn kill(&self) {
        let mut c = self.child.lock().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Waits for the child's end (bounded by the watchdog) and asserts it succeeded.
    fn succeeded(&self) {
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                assert!(status.success(), "{}: {status}", self.what);
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads lines from a child's stdout.
struct Lines(std::io::Lines<BufReader<std::process::ChildStdout>>);

impl Lines {
    fn next(&mut self) -> String {
        match self.0.next() {
            Some(line) => line.unwrap(),
            None => panic!("the child ended early (see its stderr above)"),
        }
    }
    /// The next line that is `want`, skipping the test harness's own lines before it.
    fn expect(&mut self, want: &str) {
        for _ in 0..100 {
            if self.next() == want {
                return;
            }
        }
        panic!("no line {want:?}");
    }
}

/// The waiter count of the named segment (of any kind), read through its file.
fn waiters(name: &str) -> u64 {
    peek(name, Field::Waiters)
}

/// Waits (bounded) until `f` holds; panics with `what` if it never does.
fn until(what: &str, f: impl FnMut() -> bool) {
    until_within(BOUND, what, f);
}

/// Waits until `f` holds, at most `bound`; panics with `what` if it never does.
fn until_within(bound: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < bound, "never: {what}");
        std::thread::yield_now();
    }
}

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    let _ = ENTRY_ONLY;
    match role().as_deref() {
        Some("paced-writer") => paced_writer(),
        Some("idle-writer") => idle_writer(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Runs this test binary again as a writer in `role` with `env`; stdin and stdout piped.
fn spawn_writer(role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        ENTRY,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(common::ROLE, role)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits for a line on stdin (or its end).
fn stdin_line() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Creates the state segment `STATE` and the stream `STREAM`, says `ready`, waits for a line,
/// then publishes `TOTAL` values and sends `TOTAL` messages (`Pose::at(1..)`). Before every
/// eighth value, and every eighth message but the last `BURST`, it waits until the reader
/// acknowledged all before (in the segment `ACK` the reader writes: `tick` the last version
/// seen, `status` the last message received) and waits again (counted in the segment's
/// waiter count): so the asyncio reader is caught up and parked many times. The last `BURST`
/// messages go in one burst (a reader may fall behind). Says `done`, lives until stdin ends.
fn paced_writer() {
    let (state, stream) = (env("STATE"), env("STREAM"));
    let total: u64 = env("TOTAL").parse().unwrap();
    let burst: u64 = env("BURST").parse().unwrap();
    let mut w = Pose::create(&state, &Pose::at(0)).unwrap();
    let mut tx = Pose::create_stream(&stream, 64).unwrap();
    println!("ready");
    stdin_line();
    let ack = Pose::open(&env("ACK")).unwrap();
    for i in 1..=total {
        if i % 8 == 0 {
            until("the reader waits for the next value", || {
                ack.read().tick == i - 1 && waiters(&state) > 0
            });
        }
        w.write(&Pose::at(i));
        if i % 8 == 4 && i <= total - burst {
            until("the reader waits for the next message", || {
                u64::from(ack.read().status) == i - 1 && waiters(&stream) > 0
            });
        }
        tx.send(&Pose::at(i));
    }
    println!("done");
    stdin_line();
}

/// Creates `STATE` and `STREAM`, says `ready`, and lives until stdin ends (or it is killed).
fn idle_writer() {
    let _w = Pose::create(&env("STATE"), &Pose::at(0)).unwrap();
    let _tx = Pose::create_stream(&env("STREAM"), 64).unwrap();
    println!("ready");
    stdin_line();
}

const STATE_AND_STREAM_PY: &str = r#"
import asyncio
import os
import sys
import shm_state
import pose  # generated by shm_core::export::python

state, stream, ack_name, total, burst = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
M = 0xFFFFFFFF
ack = shm_state.Writer.create(ack_name, pose, {})  # tick: last version seen; status: last message
parked = {"state": 0, "stream": 0}


async def follow_state(r):
    v, changes = r.version(), 0
    while v < total:
        parked["state"] += r.version() == v  # nothing newer yet: this await parks
        nv = await r.changed(v)
        assert nv > v, (nv, v)
        v, changes = nv, changes + 1
        ack.write({"tick": v})
    assert r.read()["tick"] == total
    return changes


def check(m, number):
    c = m["tick"]
    assert c == number and m["pos"] == [c, 2.0 * c, -c] and m["status"] == c & M and m["flags"] == ~c & M, (m, number)
    ack.write({"status": number})


async def follow_stream(rx):
    expected, received, missed, gaps, paced = 1, 0, 0, 0, 0
    while expected <= total:
        try:
            parked["stream"] += rx.sent < rx.position  # before every receive: it parks
            if expected % 2:
                check(await rx.recv_async(), expected)
                expected, received = expected + 1, received + 1
                continue
            async for m in rx:
                check(m, expected)
                expected, received = expected + 1, received + 1
                if expected > total or expected % 5 == 0:
                    break
                parked["stream"] += rx.sent < rx.position
        except shm_state.LaggedError as e:
            assert e.missed > 0
            paced += expected <= total - burst
            expected, missed, gaps = expected + e.missed, missed + e.missed, gaps + 1
    assert rx.position == total + 1 and rx.try_recv() is None
    return received, missed, gaps, paced


async def main():
    with shm_state.WaitSet() as ws:
        assert ws.backend == os.environ["SHM_WAIT_BACKEND"], ws.backend
    r = shm_state.Reader(state)
    rx = shm_state.StreamReader(stream)
    print("ready")
    tasks = [asyncio.create_task(follow_state(r)), asyncio.create_task(follow_stream(rx))]
    done, pending = await asyncio.wait(tasks)
    assert not pending
    changes = tasks[0].result()
    received, missed, gaps, paced_gaps = tasks[1].result()
    print(f"RESULT changes={changes} received={received} missed={missed} gaps={gaps} paced_gaps={paced_gaps} parked_state={parked['state']} parked_stream={parked['stream']}")


asyncio.run(main())
"#;

#[test]
fn asyncio_awaits_a_state_and_a_stream_at_once_to_the_last_version_and_message() {
    let dir = python_dir("pyaio");
    std::fs::write(
        dir.path().join("pose.py"),
        shm_core::export::python::<Pose>(),
    )
    .unwrap();
    let total = 4000u64;
    let burst = 1500u64;
    for b in backends() {
        let state = Name::new("pyaio-state");
        let stream = Name::new("pyaio-stream");
        let ack = Name::new("pyaio-ack");
        let writer = spawn_writer(
            "paced-writer",
            &[
                ("STATE", state.to_string()),
                ("STREAM", stream.to_string()),
                ("ACK", ack.to_string()),
                ("TOTAL", total.to_string()),
                ("BURST", burst.to_string()),
            ],
        );
        let writer = Proc::new(writer, "the writer");
        let mut writer_lines = writer.lines();
        writer_lines.expect("ready");
        let py = python(
            dir.path(),
            STATE_AND_STREAM_PY,
            &[
                &state,
                &stream,
                &ack,
                &total.to_string(),
                &burst.to_string(),
            ],
            b,
        );
        let mut lines = py.lines();
        assert_eq!(lines.next(), "ready");
        writer.send("go");
        let result = lines.next();
        eprintln!("[{b}] {result}");
        let numbers: Vec<u64> = result
            .split_whitespace()
            .skip(1)
            .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
            .collect();
        let [changes, received, missed, gaps, paced_gaps, parked_state, parked_stream] =
            numbers[..]
        else {
            panic!("{result}")
        };
        assert!(changes >= total / 8 && changes <= total, "[{b}] {result}");
        // Every message is received or counted lost, and none is lost while paced.
        assert_eq!(received + missed, total, "[{b}] {result}");
        assert_eq!(missed == 0, gaps == 0, "[{b}] {result}");
        assert_eq!(paced_gaps, 0, "[{b}] {result}");
        assert!(received >= total - burst, "[{b}] {result}");
        // The writer waited for a parked reader before every eighth value and message.
        assert!(parked_state >= total / 8, "[{b}] {result}");
        assert!(parked_stream >= (total - burst) / 8, "[{b}] {result}");
        writer_lines.expect("done");
        writer.close_stdin();
        py.succeeded();
        writer.succeeded();
    }
}

const MANY_PY: &str = r#"
import asyncio
import os
import sys
import shm_state

names = sys.argv[1:]


def threads():
    return len(os.listdir("/proc/self/task"))


def descriptors(kind):
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == f"anon_inode:[{kind}]"
        except OSError:
            pass
    return n


async def main():
    readers = [shm_state.Reader(name) for name in names]
    before = threads(), descriptors("eventfd"), descriptors("io_uring")
    tasks = [asyncio.create_task(r.changed(r.version())) for r in readers]
    await asyncio.sleep(0)  # every task ran to its first await: attached and armed
    during = threads(), descriptors("eventfd"), descriptors("io_uring")
    print("armed", *before, *during, descriptors("pidfd"))
    results = await asyncio.gather(*tasks)
    assert results == [1] * len(names), results
    print("RESULT", len(results), threads())


asyncio.run(main())
"#;

#[test]
fn asyncio_awaits_256_segments_through_one_descriptor_without_a_thread_per_segment() {
    let dir = python_dir("pymany");
    const N: usize = 256;
    for b in backends() {
        if b == "thread" {
            // A thread per waiting segment is what that backend is.
            continue;
        }
        let names: Vec<Name> = (0..N).map(|_| Name::new("pymany")).collect();
        let mut writers: Vec<_> = names
            .iter()
            .map(|n| Pose::create(n, &Pose::at(0)).unwrap())
            .collect();
        let args: Vec<&str> = names.iter().map(|n| &**n).collect();
        let py = python(dir.path(), MANY_PY, &args, b);
        let mut lines = py.lines();
        let armed = lines.next();
        eprintln!(
            "[{b}] {armed} (threads, eventfds, io_urings before; the same while waiting; pidfds)"
        );
        let f: Vec<usize> = armed
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        let [threads_before, eventfds_before, rings_before, threads, eventfds, rings, _pidfds] =
            f[..]
        else {
            panic!("{armed}")
        };
        // Every segment is awaited: its wait is armed, counted in its waiter count.
        for n in &names {
            assert_eq!(waiters(n), 1, "[{b}] {} is not waited on", n.0);
        }
        // One wait set: one eventfd (futex_waitv: and its pidfd thread's) and at most one
        // ring more, whatever the number of segments.
        assert!(eventfds <= eventfds_before + 2, "[{b}] {armed}");
        assert!(rings <= rings_before + 1, "[{b}] {armed}");
        let extra_threads = threads - threads_before;
        match b {
            "io_uring" => assert_eq!(extra_threads, 0, "[{b}] {armed}"),
            // One thread per 127 futex words, and one that polls the writers' pidfds.
            _ => assert!(extra_threads <= N.div_ceil(127) + 1, "[{b}] {armed}"),
        }
        for w in &mut writers {
            w.write(&Pose::at(1));
        }
        assert!(lines.next().starts_with(&format!("RESULT {N} ")));
        py.succeeded();
        for n in &names {
            assert_eq!(waiters(n), 0, "[{b}] {} is still waited on", n.0);
        }
    }
}

const STORM_PY: &str = r#"
import asyncio
import random
import sys
import shm_state

state, stream, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])


async def main():
    r = shm_state.Reader(state)
    rx = shm_state.StreamReader(stream)
    rng = random.Random(7)
    completed = cancelled = 0
    for i in range(rounds):
        wait = r.changed(r.version()) if i % 2 else rx.recv_async()
        try:
            await asyncio.wait_for(wait, rng.choice([0, 1e-6, 1e-5, 1e-4, 1e-3]))
            completed += 1
        except TimeoutError:
            cancelled += 1
        except shm_state.LaggedError:
            completed += 1
        if i % 100 == 0:
            # Many at once, cancelled after a varying number of loop turns.
            tasks = [asyncio.create_task(r.changed(r.version())) for _ in range(50)]
            tasks += [asyncio.create_task(rx.recv_async()) for _ in range(50)]
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
            for t in tasks:
                t.cancel()
            for x in await asyncio.gather(*tasks, return_exceptions=True):
                completed += not isinstance(x, BaseException) or isinstance(x, shm_state.LaggedError)
                cancelled += isinstance(x, asyncio.CancelledError)
    print(f"stormed completed={completed} cancelled={cancelled}")
    # The loop runs on (it collects the cancelled waits as the kernel lets go of them) until
    # the test has checked the waiter counts.
    loop = asyncio.get_running_loop()
    line = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: line.done() or line.set_result(sys.stdin.readline()))
    await line
    print("RESULT ok")


asyncio.run(main())
"#;

#[test]
fn asyncio_cancellation_storm_leaves_no_waiter_counted() {
    let dir = python_dir("pystorm");
    for b in backends() {
        let (state, stream) = (Name::new("pystorm-state"), Name::new("pystorm-stream"));
        let mut w = Pose::create(&state, &Pose::at(0)).unwrap();
        let mut tx = Pose::create_stream(&stream, 64).unwrap();
        let py = python(dir.path(), STORM_PY, &[&state, &stream, "3000"], b);
        let mut lines = py.lines();
        let stop = AtomicBool::new(false);
        let stormed = std::thread::scope(|s| {
            // Publishing meanwhile: some waits complete, some are cancelled as they complete.
            s.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    w.write(&Pose::at(i));
                    tx.send(&Pose::at(i));
                    std::thread::sleep(Duration::from_micros(300));
                }
            });
            // The publisher stops whatever happens (a Python failure ends the scope too).
            let line = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lines.next()));
            stop.store(true, Ordering::Relaxed);
            line.unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        eprintln!("[{b}] {stormed}");
        assert!(stormed.starts_with("stormed "), "{stormed}");
        let cancelled: u64 = stormed.rsplit_once('=').unwrap().1.parse().unwrap();
        assert!(cancelled > 0, "[{b}] {stormed}");
        // The Python loop still runs: every cancelled wait is let go of and collected (in
        // far less than the bound: the kernel ends a cancelled wait at once, a fallback
        // thread at its next turn).
        let bound = Duration::from_secs(60);
        until_within(bound, &format!("[{b}] no waiter left on the state"), || {
            waiters(&state) == 0
        });
        until_within(
            bound,
            &format!("[{b}] no waiter left on the stream"),
            || waiters(&stream) == 0,
        );
        py.send("done");
        assert_eq!(lines.next(), "RESULT ok");
        py.succeeded();
    }
}

const KILLED_PY: &str = r#"
import asyncio
import sys
import shm_state

state, stream = sys.argv[1], sys.argv[2]


async def main():
    r = shm_state.Reader(state)
    streams = [shm_state.StreamReader(stream) for _ in range(4)]
    try:  # the writer publishes nothing
        await r.changed(r.version(), timeout=0.01)
        raise SystemExit("no timeout")
    except shm_state.ShmTimeoutError as e:
        assert str(e) == "timed out", e
    tasks = [asyncio.create_task(r.changed(r.version())) for _ in range(4)]
    tasks += [asyncio.create_task(rx.recv_async()) for rx in streams]
    await asyncio.sleep(0)  # every task ran to its first await: attached and armed
    print("waiting")
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(x, shm_state.WriterDiedError) for x in results), results
    # No writer now: `changed` fails at once; a stream waits on, for a writer taking over.
    try:
        await r.changed(r.version())
        raise SystemExit("changed waited without a writer")
    except shm_state.WriterDiedError as e:
        assert isinstance(e, shm_state.ShmError)
    try:
        await streams[0].recv_async(timeout=0.05)
        raise SystemExit("a message came")
    except shm_state.ShmTimeoutError:
        pass
    print("RESULT", len(results), type(results[0]).__name__)


asyncio.run(main())
"#;

#[test]
fn asyncio_awaits_end_with_writer_died_when_the_writer_is_sigkilled() {
    let dir = python_dir("pykilled");
    for b in backends() {
        let (state, stream) = (Name::new("pykilled-state"), Name::new("pykilled-stream"));
        let writer = spawn_writer(
            "idle-writer",
            &[("STATE", state.to_string()), ("STREAM", stream.to_string())],
        );
        let writer = Proc::new(writer, "the writer");
        writer.lines().expect("ready");
        let py = python(dir.path(), KILLED_PY, &[&state, &stream], b);
        let mut lines = py.lines();
        assert_eq!(lines.next(), "waiting");
        until("every await is armed", || {
            waiters(&state) >= 4 && waiters(&stream) >= 4
        });
        writer.kill();
        let result = lines.next();
        eprintln!("[{b}] {result}");
        assert_eq!(result, "RESULT 8 WriterDiedError", "[{b}]");
        py.succeeded();
    }
}

#[test]
fn the_asyncio_example_follows_a_live_state_and_stream() {
    let dir = python_dir("pyaioexample");
    let example = lang::workspace().join("python/examples/asyncio_reader.py");
    let (state, stream) = (Name::new("pyaioex-state"), Name::new("pyaioex-stream"));
    let mut w = Pose::create(&state, &Pose::at(0)).unwrap();
    let mut tx = Pose::create_stream(&stream, 64).unwrap();
    let py = python_file(dir.path(), &example, &[&state, &stream, "5"], None);
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                w.write(&Pose::at(i));
                tx.send(&Pose::at(i));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let out = py.read_all();
        stop.store(true, Ordering::Relaxed);
        out
    });
    py.succeeded();
    let states: Vec<&str> = out.lines().filter(|l| l.starts_with("state ")).collect();
    let messages = out.lines().filter(|l| l.starts_with("message ")).count();
    assert_eq!(states.len(), 5, "{out}");
    assert_eq!(messages, 5, "{out}");
    assert!(states[0].contains("'tick': "), "{out}");
}

const SELECTORS_PY: &str = r#"
import os
import selectors
import sys
import shm_state

import pose  # generated by shm_core::export::python

state, stream, ack_name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
r = shm_state.Reader(state)
rx = shm_state.StreamReader(stream)
ack = shm_state.Writer.create(ack_name, pose, {})  # tick: last version seen; status: messages
ws = shm_state.WaitSet()
assert ws.backend == os.environ["SHM_WAIT_BACKEND"] and repr(ws).startswith("<shm_state.WaitSet "), ws
ks, kx = ws.attach(r), ws.attach(rx)
assert ks != kx and len(ws) == 2
try:
    ws.attach(b"a name")
    raise SystemExit("attached bytes")
except TypeError as e:
    assert "Reader or a StreamReader" in str(e), e
try:
    ws.wait(timeout=0.01)  # nothing is published before the test sees both waits armed
    raise SystemExit("no timeout")
except shm_state.ShmTimeoutError:
    pass
sel = selectors.DefaultSelector()
sel.register(ws.fileno(), selectors.EVENT_READ)
assert ws.ready() == []
print("armed")
version, ticks, turns = 0, [], 0
states = sum(1 for i in range(1, n + 1) if i % 3 != 2)  # the values the test publishes
messages = sum(1 for i in range(1, n + 1) if i % 3 != 1)  # and the messages it sends
while version < states or len(ticks) < messages:
    turns += 1
    assert turns < 1_000_000
    sel.select()  # no timeout: readable means "call ready()"
    for key in ws.ready():
        if key == ks:
            version = r.version()
            ack.write({"tick": version})
        elif key == kx:
            while (m := rx.try_recv()) is not None:
                ticks.append(m["tick"])
            ack.write({"status": len(ticks)})
        else:
            raise SystemExit(f"unknown key {key}")
assert ticks == [i for i in range(1, n + 1) if i % 3 != 1], ticks
assert r.read()["tick"] == max(i for i in range(1, n + 1) if i % 3 != 2)
assert ws.detach(ks) and not ws.detach(ks) and len(ws) == 1
ws.close()
ws.close()
try:
    ws.fileno()
    raise SystemExit("a closed set has a descriptor")
except shm_state.ShmError:
    pass
print("RESULT", version, len(ticks))
"#;

#[test]
fn a_wait_set_drives_a_selectors_loop_over_a_state_and_a_stream() {
    let dir = python_dir("pyselect");
    std::fs::write(
        dir.path().join("pose.py"),
        shm_core::export::python::<Pose>(),
    )
    .unwrap();
    let n = 200u64;
    for b in backends() {
        let (state, stream) = (Name::new("pyselect-state"), Name::new("pyselect-stream"));
        let ack_name = Name::new("pyselect-ack");
        let mut w = Pose::create(&state, &Pose::at(0)).unwrap();
        let mut tx = Pose::create_stream(&stream, 64).unwrap();
        let py = python(
            dir.path(),
            SELECTORS_PY,
            &[&state, &stream, &ack_name, &n.to_string()],
            b,
        );
        let mut lines = py.lines();
        assert_eq!(lines.next(), "armed");
        let ack = Pose::open(&ack_name).unwrap();
        let mut sent = 0;
        for i in 1..=n {
            // The state, the stream, or both, each time once the Python loop has handled
            // everything before: it is back in `select` (or about to be) for the next change,
            // which only a re-armed wait makes readable.
            let (state_too, stream_too) = (i % 3 != 2, i % 3 != 1);
            if state_too {
                w.write(&Pose::at(i));
            }
            if stream_too {
                tx.send(&Pose::at(i));
                sent += 1;
            }
            let version = w.version();
            until("the Python loop handled every change", || {
                let a = ack.read();
                a.tick == version && u64::from(a.status) == sent
            });
        }
        let result = lines.next();
        eprintln!("[{b}] {result}");
        assert_eq!(result, format!("RESULT {} {sent}", w.version()), "[{b}]");
        py.succeeded();
    }
}
