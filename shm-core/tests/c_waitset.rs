//! The C reader's wait set (`shm_waitset_*` in `include/shm_state.h`) and its C++ class, built
//! with the real `cc` and `c++`, driven by live Rust writer processes, with each backend
//! (`io_uring`, `futex_waitv`, `thread`): an epoll loop over several state segments and a
//! stream sees every final value and every message (or its exact loss); a lock-step publisher
//! racing the waiter's registration never strands the loop, in both publish modes, with the
//! safety slice made an hour long (and does strand it once the waiter's barrier is compiled
//! out); an idle set keeps its descriptor quiet; a writer killed with SIGKILL is reported gone;
//! 200 segments cost at most 3 helper threads with `futex_waitv` (none with `io_uring`); the
//! C++ `shm::WaitSet` wraps it.
//!
//! `SHM_WAITSET_ROUNDS` sets the stress test's publications per segment (default 20,000).

mod common;
mod lang;

use common::{env, kill, peek, role, spawn_role, Field, Name, Rng, ENTRY};
use lang::{compile, workspace, TempDir, CXX_FLAGS, C_FLAGS};
use shm_core::SharedState;
use std::io::{BufRead, BufReader, Lines, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A state segment's value.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Tick")]
pub struct Tick {
    pub value: u64,
}

/// A stream message: its number, and three times it.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Msg")]
pub struct Msg {
    pub number: u64,
    pub check: u64,
}

/// The backends of the wait set, as `SHM_WAIT_BACKEND` names them.
const BACKENDS: [&str; 3] = ["io_uring", "futex_waitv", "thread"];

/// How long a test waits for a C program before it kills it and fails: far beyond any healthy
/// run (each program has its own, shorter watchdog that reports what is missing).
const PROGRAM_LIMIT: Duration = Duration::from_secs(300);

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Publishes 1..=FINAL with random pauses of up to 20 us.
        Some("state-writer") => {
            let mut w = Tick::open_writer(&env("SHM_NAME")).unwrap();
            let mut rng = Rng(env("SEED").parse().unwrap());
            let last: u64 = env("FINAL").parse().unwrap();
            for value in 1..=last {
                spin(Duration::from_nanos(rng.below(20_000)));
                w.write(&Tick { value });
            }
        }
        // Sends messages 1..=COUNT, pausing up to 20 us after some of them.
        Some("stream-writer") => {
            let mut tx = Msg::open_stream_writer(&env("SHM_NAME")).unwrap();
            let mut rng = Rng(env("SEED").parse().unwrap());
            let count: u64 = env("COUNT").parse().unwrap();
            for number in 1..=count {
                tx.send(&Msg {
                    number,
                    check: 3 * number,
                });
                if rng.below(4) == 0 {
                    spin(Duration::from_nanos(rng.below(20_000)));
                }
            }
        }
        // Publishes 1..=ROUNDS, each once the reader acknowledged the one before (word IDX of
        // the file ACK_PATH) and after a random pause: every publication races with the
        // helper thread registering as a waiter, and is the last one until it is seen.
        Some("lockstep-publisher") => {
            if env("LOCKED") == "1" {
                common::seccomp::refuse_membarrier();
            }
            let mut w = Tick::open_writer(&env("SHM_NAME")).unwrap();
            let acks = std::fs::File::open(env("ACK_PATH")).unwrap();
            let at = 8 * env("IDX").parse::<u64>().unwrap();
            let mut rng = Rng(env("SEED").parse().unwrap());
            let rounds: u64 = env("ROUNDS").parse().unwrap();
            for value in 1..=rounds {
                let start = Instant::now();
                loop {
                    let mut b = [0u8; 8];
                    acks.read_exact_at(&mut b, at).unwrap();
                    if u64::from_ne_bytes(b) == value - 1 {
                        break;
                    }
                    // The reader's watchdog ends the test long before this.
                    assert!(start.elapsed() < PROGRAM_LIMIT, "no acknowledgement");
                    std::thread::yield_now();
                }
                spin(Duration::from_nanos(rng.below(20_000)));
                w.write(&Tick { value });
            }
        }
        // Publishes 1, then holds the lease until it is killed (or the parent dies).
        Some("held-writer") => {
            let mut w = Tick::open_writer(&env("SHM_NAME")).unwrap();
            w.write(&Tick { value: 1 });
            println!("written");
            std::thread::sleep(PROGRAM_LIMIT);
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        core::hint::spin_loop();
    }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// Writes the generated `tick.h` and `msg.h` into `dir`.
fn headers(dir: &Path) {
    std::fs::write(dir.join("tick.h"), shm_core::export::c_header::<Tick>()).unwrap();
    std::fs::write(dir.join("msg.h"), shm_core::export::c_header::<Msg>()).unwrap();
}

/// Compiles the C program `source` (written into `dir` as `file`) with `-pthread` and `extra`.
fn build_c(dir: &Path, file: &str, source: &str, extra: &[&str]) -> PathBuf {
    headers(dir);
    std::fs::write(dir.join(file), source).unwrap();
    let mut flags = vec!["-pthread"];
    flags.extend_from_slice(extra);
    compile(
        "cc",
        C_FLAGS,
        dir,
        file,
        file.trim_end_matches(".c"),
        &flags,
    )
}

/// A C program running with its stdout piped, read line by line.
struct Program {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Program {
    fn start(exe: &Path, args: &[String], backend: Option<&str>) -> Program {
        let mut cmd = Command::new(exe);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        match backend {
            Some(b) => cmd.env("SHM_WAIT_BACKEND", b),
            None => cmd.env_remove("SHM_WAIT_BACKEND"),
        };
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Program { child, lines }
    }

    /// The next line of output; fails the test with the program's stderr if there is none.
    fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(l)) => l,
            _ => {
                let status = self.exit();
                let mut err = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("the program ended ({status}) without the expected line; stderr: {err}")
            }
        }
    }

    /// Waits for the program to exit, killing it after `PROGRAM_LIMIT`.
    fn exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > PROGRAM_LIMIT {
                kill(&mut self.child);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the program to exit (killing it after `PROGRAM_LIMIT`), with the rest of its
    /// stdout and all of its stderr.
    fn finish(mut self) -> Output {
        self.exit();
        let rest: Vec<String> = self.lines.map_while(Result::ok).collect();
        let mut out = self.child.wait_with_output().unwrap();
        out.stdout = rest.join("\n").into_bytes();
        out
    }
}

/// Waits for a writer child (at most `PROGRAM_LIMIT`) and checks that it succeeded.
fn reap(mut child: Child) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < PROGRAM_LIMIT, "a writer did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(child.wait().unwrap().success(), "a writer failed");
}

/// The epoll example (`examples/c/waitset_epoll.c`) against three state writers and a stream
/// writer, all live processes, with the backend `backend`.
fn epoll_example(backend: &str) {
    const FINAL: u64 = 20_000;
    const COUNT: u64 = 50_000;
    let dir = TempDir::new("wsepoll");
    let source = std::fs::read_to_string(workspace().join("examples/c/waitset_epoll.c")).unwrap();
    let exe = build_c(dir.path(), "waitset_epoll.c", &source, &[]);
    let states: Vec<Name> = (0..3).map(|_| Name::new("wsepoll")).collect();
    for s in &states {
        drop(Tick::create(s, &Tick { value: 0 }).unwrap());
    }
    let stream = Name::new("wsepoll-stream");
    // A small ring, so that the loop may fall behind and lose some (counted exactly).
    drop(Msg::create_stream(&stream, 64).unwrap());
    let mut args = vec![FINAL.to_string(), COUNT.to_string(), stream.to_string()];
    args.extend(states.iter().map(|s| s.to_string()));
    let mut program = Program::start(&exe, &args, Some(backend));
    assert_eq!(program.line(), format!("attached backend={backend}"));
    let seed = seed();
    let mut writers: Vec<Child> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            spawn_role(
                ENTRY,
                "state-writer",
                &[
                    ("SHM_NAME", s.to_string()),
                    ("FINAL", FINAL.to_string()),
                    ("SEED", (seed + 2 * i as u64).to_string()),
                ],
            )
        })
        .collect();
    writers.push(spawn_role(
        ENTRY,
        "stream-writer",
        &[
            ("SHM_NAME", stream.to_string()),
            ("COUNT", COUNT.to_string()),
            ("SEED", (seed + 100).to_string()),
        ],
    ));
    for w in writers {
        reap(w);
    }
    let out = program.finish();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{backend}: {} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{backend}: {stdout}");
    let field = |k: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {k} in {stdout:?}"))
            .parse()
            .unwrap()
    };
    assert_eq!(field("states"), 3);
    assert_eq!(field("final"), FINAL);
    assert_eq!(field("received") + field("missed"), COUNT);
    // Detaching and freeing left every waiter count the helpers were in.
    for s in states.iter().chain([&stream]) {
        assert_eq!(
            peek(s, Field::Waiters),
            0,
            "{backend}: {} still counted",
            &**s
        );
    }
}

#[test]
fn an_epoll_loop_sees_every_final_value_and_every_message_with_io_uring() {
    if role().is_none() {
        epoll_example(BACKENDS[0]);
    }
}

#[test]
fn an_epoll_loop_sees_every_final_value_and_every_message_with_futex_waitv() {
    if role().is_none() {
        epoll_example(BACKENDS[1]);
    }
}

#[test]
fn an_epoll_loop_sees_every_final_value_and_every_message_with_a_thread_per_segment() {
    if role().is_none() {
        epoll_example(BACKENDS[2]);
    }
}

const STRESS_C: &str = r#"#include "shm_state.h"
#include "tick.h"

#include <sys/epoll.h>
#include <time.h>

/* stress ROUNDS ACK_FILE STATE...: follows the states through a wait set in an epoll loop,
 * storing each value it reads into the state's word of ACK_FILE, until every state shows
 * ROUNDS. Exits 3 when 20 seconds pass with nothing ready while a state is behind. */
int main(int argc, char **argv) {
    static shm_reader r[8];
    static int key[8];
    uint64_t rounds, wakeups = 0, *acks;
    int n = argc - 3, i, ep, fd, done = 0;
    time_t progress;
    shm_waitset *ws;
    struct epoll_event ev;
    if (argc < 4 || n > 8) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    rounds = strtoull(argv[1], NULL, 10);
    fd = open(argv[2], O_RDWR);
    acks = fd < 0 ? NULL : (uint64_t *)mmap(NULL, 8 * (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!acks || acks == MAP_FAILED) return 2;
    if (!(ws = shm_waitset_new())) return 2;
    for (i = 0; i < n; i++) {
        if (shm_reader_open(&r[i], argv[3 + i], SHM_LAYOUT(TICK)) != SHM_OK) {
            fprintf(stderr, "%s\n", r[i].message);
            return 1;
        }
        if ((key[i] = shm_waitset_attach(ws, &r[i])) != i) return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.fd = shm_waitset_fd(ws);
    if (epoll_ctl(ep, EPOLL_CTL_ADD, shm_waitset_fd(ws), &ev) != 0) return 2;
    printf("attached backend=%s\n", shm_waitset_backend(ws));
    progress = time(NULL);
    while (done < n) {
        shm_waitset_event got[8];
        int k, m = epoll_wait(ep, &ev, 1, 1000) == 1 ? shm_waitset_ready(ws, got, 8) : 0;
        if (m == 0) {
            if (time(NULL) - progress < 20) continue;
            for (i = 0; i < n; i++)
                fprintf(stderr, "stuck: state %d published %llu, acknowledged %llu, futex %u, waiters %u\n", i,
                        (unsigned long long)shm_version(&r[i]), (unsigned long long)acks[i],
                        shm__load32(r[i].base + SHM_OFF_FUTEX), shm__load32(r[i].base + SHM_OFF_WAITERS));
            return 3;
        }
        progress = time(NULL);
        wakeups++;
        for (k = 0; k < m; k++) {
            Tick t;
            i = got[k].key;
            if (!(got[k].flags & SHM_WAITSET_CHANGED)) continue;
            if (shm_read(&r[i], &t) != SHM_OK) return 1;
            if (t.value == rounds) done++;
            __atomic_store_n(&acks[i], t.value, __ATOMIC_RELEASE);
        }
    }
    printf("ok wakeups=%llu\n", (unsigned long long)wakeups);
    shm_waitset_free(ws);
    for (i = 0; i < n; i++) shm_reader_close(&r[i]);
    return 0;
}
"#;

/// Lock-step publishers (asymmetric barrier, or the locked swap when `locked`) against the
/// stress program built with `extra` and run with `backend`; returns the program's output.
fn lockstep(tag: &str, locked: bool, backend: &str, extra: &[&str]) -> Output {
    const SEGMENTS: usize = 2;
    let rounds: u64 = std::env::var("SHM_WAITSET_ROUNDS")
        .map(|s| s.parse().unwrap())
        .unwrap_or(20_000);
    let dir = TempDir::new(tag);
    let mut flags = vec!["-DSHM_WAIT_SLICE_MS=3600000"];
    flags.extend_from_slice(extra);
    let exe = build_c(dir.path(), "stress.c", STRESS_C, &flags);
    let acks = dir.path().join("acks");
    std::fs::write(&acks, [0u8; 8 * SEGMENTS]).unwrap();
    let states: Vec<Name> = (0..SEGMENTS).map(|_| Name::new(tag)).collect();
    for s in &states {
        drop(Tick::create(s, &Tick { value: 0 }).unwrap());
    }
    let mut args = vec![rounds.to_string(), acks.display().to_string()];
    args.extend(states.iter().map(|s| s.to_string()));
    let mut program = Program::start(&exe, &args, Some(backend));
    assert_eq!(program.line(), format!("attached backend={backend}"));
    let seed = seed();
    let mut publishers: Vec<Child> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            spawn_role(
                ENTRY,
                "lockstep-publisher",
                &[
                    ("SHM_NAME", s.to_string()),
                    ("ACK_PATH", acks.display().to_string()),
                    ("IDX", i.to_string()),
                    ("ROUNDS", rounds.to_string()),
                    ("LOCKED", (locked as u8).to_string()),
                    ("SEED", (seed + 2 * i as u64).to_string()),
                ],
            )
        })
        .collect();
    let out = program.finish();
    for p in &mut publishers {
        kill(p);
    }
    eprintln!(
        "{tag} ({backend}, {} publish, seed {seed}, {rounds} rounds x {SEGMENTS}): {} {}{}",
        if locked { "locked" } else { "asymmetric" },
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every publication of a writer that publishes without a locked instruction is seen: the
/// helper's `membarrier` after registering closes the store-buffering window. With the safety
/// slice an hour long a missed wake-up would stall the loop until its watchdog fires.
#[test]
fn a_lockstep_asymmetric_publisher_never_strands_the_loop() {
    if role().is_none() {
        for backend in BACKENDS {
            let out = lockstep("wsasym", false, backend, &[]);
            assert!(out.status.success(), "{backend}: {}", out.status);
        }
    }
}

/// The same with writers that publish with the locked swap (their process cannot register
/// as a `membarrier` target).
#[test]
fn a_lockstep_locked_publisher_never_strands_the_loop() {
    if role().is_none() {
        for backend in BACKENDS {
            let out = lockstep("wslocked", true, backend, &[]);
            assert!(out.status.success(), "{backend}: {}", out.status);
        }
    }
}

/// Without the waiter's barrier (compiled out), an asymmetric publisher's wake-up is missed
/// and the loop stalls: the stress test can fail. Not run by default, as a race it reproduces
/// most of the time rather than always.
#[test]
#[ignore = "shows a failure: run with --ignored"]
fn without_the_barrier_an_asymmetric_publisher_strands_the_loop() {
    if role().is_none() {
        let out = lockstep(
            "wsnobar",
            false,
            BACKENDS[0],
            &["-DSHM_WAITSET_NO_BARRIER_FOR_TESTS"],
        );
        assert_eq!(out.status.code(), Some(3), "the loop was never stranded");
    }
}

const QUIET_C: &str = r#"#include "shm_state.h"
#include "tick.h"

/* quiet STATE: attaches STATE and watches the descriptor for a second while nothing is
 * published (built with an hour-long slice: it must stay unreadable), then waits (at most
 * 60 s) for a publication and prints the value. */
int main(int argc, char **argv) {
    shm_reader r;
    shm_waitset *ws;
    shm_waitset_event ev[4];
    int i, key, spurious = 0, early = 0;
    Tick t;
    if (argc != 2) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(TICK)) != SHM_OK) return 1;
    if (!(ws = shm_waitset_new()) || (key = shm_waitset_attach(ws, &r)) < 0) return 1;
    for (i = 0; i < 5; i++) {
        struct pollfd p;
        p.fd = shm_waitset_fd(ws);
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 200) == 1) {
            if (shm_waitset_ready(ws, ev, 4) == 0) spurious++;
            else early++;
        }
    }
    printf("quiet spurious=%d early=%d\n", spurious, early);
    for (i = 0; i < 60; i++) {
        if (shm_waitset_wait(ws, ev, 4, INT64_C(1000000000)) > 0) break;
    }
    if (i == 60 || ev[0].key != key || shm_read(&r, &t) != SHM_OK) return 3;
    printf("changed value=%llu\n", (unsigned long long)t.value);
    shm_waitset_free(ws);
    shm_reader_close(&r);
    return 0;
}
"#;

/// An idle set leaves its descriptor unreadable (a wait that fails at once, rather than
/// sleeping, would make it readable over and over), then reports a publication.
#[test]
fn an_idle_wait_set_stays_quiet_then_reports_a_publication() {
    if role().is_some() {
        return;
    }
    let dir = TempDir::new("wsquiet");
    let exe = build_c(
        dir.path(),
        "quiet.c",
        QUIET_C,
        &["-DSHM_WAIT_SLICE_MS=3600000"],
    );
    for backend in BACKENDS {
        let name = Name::new("wsquiet");
        let mut w = Tick::create(&name, &Tick { value: 0 }).unwrap();
        let mut program = Program::start(&exe, &[name.to_string()], Some(backend));
        assert_eq!(program.line(), "quiet spurious=0 early=0", "{backend}");
        w.write(&Tick { value: 5 });
        assert_eq!(program.line(), "changed value=5", "{backend}");
        assert!(program.finish().status.success(), "{backend}");
    }
}

const GONE_C: &str = r#"#include "shm_state.h"
#include "tick.h"

/* gone STATE: attaches STATE, says so, and waits (at most 60 s) until the wait set reports its
 * writer gone. */
int main(int argc, char **argv) {
    shm_reader r;
    shm_waitset *ws;
    int i, key;
    if (argc != 2) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(TICK)) != SHM_OK) return 1;
    if (!(ws = shm_waitset_new()) || (key = shm_waitset_attach(ws, &r)) < 0) return 1;
    printf("attached alive=%d\n", shm_writer_alive(&r));
    for (i = 0; i < 60; i++) {
        shm_waitset_event ev[4];
        int n = shm_waitset_wait(ws, ev, 4, INT64_C(1000000000)), k;
        for (k = 0; k < n; k++) {
            if (ev[k].key == key && (ev[k].flags & SHM_WAITSET_WRITER_GONE)) {
                printf("gone alive=%d\n", shm_writer_alive(&r));
                shm_waitset_free(ws);
                shm_reader_close(&r);
                return 0;
            }
        }
    }
    return 3;
}
"#;

fn writer_killed(backend: &str) {
    let dir = TempDir::new("wsgone");
    let exe = build_c(dir.path(), "gone.c", GONE_C, &[]);
    let name = Name::new("wsgone");
    drop(Tick::create(&name, &Tick { value: 0 }).unwrap());
    let mut writer = spawn_role(ENTRY, "held-writer", &[("SHM_NAME", name.to_string())]);
    // The test harness may print lines of its own first.
    let written = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(
        written.map_while(Result::ok).any(|l| l == "written"),
        "the writer never wrote"
    );
    let mut program = Program::start(&exe, &[name.to_string()], Some(backend));
    assert_eq!(program.line(), "attached alive=1");
    kill(&mut writer);
    assert_eq!(program.line(), "gone alive=0");
    let out = program.finish();
    assert!(out.status.success(), "{backend}: {}", out.status);
}

#[test]
fn a_writer_killed_with_sigkill_is_reported_gone() {
    if role().is_none() {
        for backend in BACKENDS {
            writer_killed(backend);
        }
    }
}

const THREADS_C: &str = r#"#include "shm_state.h"
#include "tick.h"

#include <dirent.h>

/* threads STATE...: attaches every STATE, prints the number of threads of this process, then
 * waits (at most 60 s) for one of them to change and prints its key. */
int main(int argc, char **argv) {
    static shm_reader r[256];
    int n = argc - 1, i, threads = 0;
    shm_waitset *ws = shm_waitset_new();
    DIR *d;
    struct dirent *e;
    if (n > 256 || !ws) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (i = 0; i < n; i++) {
        if (shm_reader_open(&r[i], argv[1 + i], SHM_LAYOUT(TICK)) != SHM_OK) return 1;
        if (shm_waitset_attach(ws, &r[i]) != i) return 1;
    }
    if (!(d = opendir("/proc/self/task"))) return 2;
    while ((e = readdir(d)) != NULL) threads += e->d_name[0] != '.';
    closedir(d);
    printf("threads=%d backend=%s\n", threads, shm_waitset_backend(ws));
    for (i = 0; i < 60; i++) {
        shm_waitset_event ev[4];
        if (shm_waitset_wait(ws, ev, 4, INT64_C(1000000000)) > 0) {
            printf("changed key=%d\n", ev[0].key);
            break;
        }
    }
    shm_waitset_free(ws);
    for (i = 0; i < n; i++) shm_reader_close(&r[i]);
    return i == 60 ? 3 : 0;
}
"#;

/// Attaches 200 segments; returns the program's thread count (all threads, the main one too).
fn threads_for_200(backend: &str) -> u64 {
    let dir = TempDir::new("wsthreads");
    let exe = build_c(dir.path(), "threads.c", THREADS_C, &[]);
    let names: Vec<Name> = (0..200).map(|_| Name::new("wsthreads")).collect();
    let mut writers: Vec<_> = names
        .iter()
        .map(|n| Tick::create(n, &Tick { value: 0 }).unwrap())
        .collect();
    let args: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut program = Program::start(&exe, &args, Some(backend));
    let line = program.line();
    let threads: u64 = line
        .strip_prefix("threads=")
        .and_then(|s| s.strip_suffix(&format!(" backend={backend}")))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    // The set works: a publication on one of the 200 is reported with its key.
    writers[150].write(&Tick { value: 1 });
    assert_eq!(program.line(), "changed key=150");
    assert!(program.finish().status.success());
    threads
}

#[test]
fn two_hundred_segments_cost_at_most_three_helper_threads_with_futex_waitv() {
    if role().is_none() {
        let threads = threads_for_200("futex_waitv");
        assert!(
            threads - 1 <= 3,
            "{} helper threads for 200 segments",
            threads - 1
        );
        // The count is real: the thread backend has one per segment.
        assert_eq!(threads_for_200("thread") - 1, 200);
        // And io_uring needs none.
        assert_eq!(threads_for_200("io_uring") - 1, 0);
    }
}

const WAITSET_CPP: &str = r#"#include "shm_state.hpp"
#include "msg.h"
#include "tick.h"

#include <chrono>
#include <cstdio>

// waitset STATE STREAM: waits for the state to show 7 and for message 1 through shm::WaitSet.
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    try {
        shm::Reader<Tick> state{argv[1]};
        shm::StreamReader<Msg> stream{argv[2]};
        shm::WaitSet set;
        int a = set.attach(state), b = set.attach(stream);
        std::printf("attached backend=%s fd=%d\n", set.backend(), set.fd() >= 0);
        bool seen_state = false, seen_msg = false;
        for (int i = 0; i < 60 && !(seen_state && seen_msg); i++) {
            for (const shm_waitset_event &e : set.wait(std::chrono::seconds(1))) {
                if (e.key == a && (e.flags & SHM_WAITSET_CHANGED) && state.read().value == 7) seen_state = true;
                if (e.key == b) {
                    while (auto m = stream.try_recv()) {
                        if (m->number == 1 && m->check == 3) seen_msg = true;
                    }
                }
            }
        }
        set.detach(a);
        std::printf("state=%d msg=%d ready=%zu\n", seen_state, seen_msg, set.ready().size());
        return seen_state && seen_msg ? 0 : 3;
    } catch (const shm::Error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
"#;

#[test]
fn the_cpp_wait_set_reports_a_state_and_a_stream() {
    if role().is_some() {
        return;
    }
    let dir = TempDir::new("wscpp");
    headers(dir.path());
    std::fs::write(dir.path().join("waitset.cpp"), WAITSET_CPP).unwrap();
    let exe = compile(
        "c++",
        CXX_FLAGS,
        dir.path(),
        "waitset.cpp",
        "waitset",
        &["-pthread"],
    );
    let state = Name::new("wscpp");
    let stream = Name::new("wscpp-stream");
    let mut w = Tick::create(&state, &Tick { value: 0 }).unwrap();
    let mut tx = Msg::create_stream(&stream, 16).unwrap();
    let mut program = Program::start(&exe, &[state.to_string(), stream.to_string()], None);
    let line = program.line();
    assert!(
        line.starts_with("attached backend=") && line.ends_with(" fd=1"),
        "{line}"
    );
    w.write(&Tick { value: 7 });
    tx.send(&Msg {
        number: 1,
        check: 3,
    });
    assert_eq!(program.line(), "state=1 msg=1 ready=0");
    assert!(program.finish().status.success());
}
