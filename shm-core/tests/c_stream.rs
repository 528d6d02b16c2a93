//! C and C++ programs, built from a generated header and `include/shm_state.h(pp)` with the real
//! `cc` and `c++`, receive the messages of streams that live Rust writer processes send: every
//! message consistent with its number and in order, every loss counted exactly (received plus
//! lost is sent), a slow reader losing some; the same receive without the sequence checks
//! delivers inconsistent messages (so the check can fail); a queue observed without taking
//! anything from its consumer; a reader asleep on the futex woken by a send; and each kind
//! refused by the other kinds' openers, with the Rust runtime's codes and messages.
//!
//! `SHM_C_STREAM_MESSAGES` sets the broadcast test's message count (default 3,000,000).

mod common;
mod lang;

use common::{env, poke_bytes, role, spawn_role, Name, ENTRY};
use lang::{compile, TempDir, CXX_FLAGS, C_FLAGS};
use shm_core::SharedState;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A 64-byte message whose every word derives from its number (as `tests/stream.rs`'s).
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Msg {
    words: [u64; 8],
}

fn word(n: u64, i: usize) -> u64 {
    if i == 0 {
        n
    } else {
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(7 * i as u32)
            ^ i as u64
    }
}

fn msg(n: u64) -> Msg {
    Msg {
        words: core::array::from_fn(|i| word(n, i)),
    }
}

mod retyped {
    use shm_core::SharedState;

    /// `Msg` with its words retyped: what a stale or edited header says.
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    pub struct Msg {
        pub words: [u32; 16],
    }
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("stream-writer") => {
            let mut tx = Msg::open_stream_writer(&env("SHM_NAME")).expect("take over the stream");
            // A pause every `pace` messages (0: none) lets readers that keep up receive most
            // messages on a machine with fewer cores than processes.
            let pace: u64 = env("SHM_PACE").parse().unwrap();
            for n in tx.sent() + 1..=total() {
                tx.send(&msg(n));
                if pace > 0 && n % pace == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
        Some("queue-producer") => {
            let mut tx = Msg::open_queue_producer(&env("SHM_NAME")).expect("take over the queue");
            for n in tx.sent() + 1..=total() {
                tx.send(&msg(n));
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn total() -> u64 {
    env("SHM_TOTAL").parse().unwrap()
}

/// The C reader: opens a stream (or observes a queue) from the oldest message, says `ready`,
/// then receives until nothing is left after the writer was seen gone, checking every message against
/// its number and the order against the losses reported, and prints what it counted.
///
/// Arguments: name, `stream` or `queue`, `wait` (recv_timeout on the futex) or `poll`
/// (try_recv), and how many messages to receive between 2 ms sleeps (0: never sleep).
const READER_C: &str = r#"#include "shm_state.h"
#include "msg.h"

static uint64_t word(uint64_t n, unsigned i) {
    uint64_t x = n * UINT64_C(0x9e3779b97f4a7c15);
    unsigned r = 7 * i;
    if (i == 0) return n;
    return (x << r | x >> (64 - r)) ^ i;
}

#ifdef SHM_STATE_UNVALIDATED_FOR_TESTS
/* shm_stream_try_recv without the sequence checks: the same cursor, the same slot, the same
 * word copy, but nothing tells a lapped or half-written slot from the message wanted. What the
 * validation prevents. */
static shm_status try_recv(shm_stream *s, void *out, uint64_t *number) {
    shm_reader *r = &s->reader;
    uint64_t published = shm_version(r), m = s->next, capacity = r->slot_count, k;
    const unsigned char *words;
    if (s->pending) {
        memcpy(out, r->buffer, r->payload_size);
        *number = s->pending;
        s->pending = 0;
        return SHM_OK;
    }
    if (m > published) return SHM_EMPTY;
    if (published >= capacity && m < published - capacity + 1) m = published - capacity + 1;
    words = r->base + r->slots_offset + (m % capacity) * r->slot_stride + 64;
    for (k = 0; k < r->payload_words; k++)
        r->buffer[k] = __atomic_load_n((const uint64_t *)(const void *)(words + 8 * k), __ATOMIC_RELAXED);
    if (m > s->next) {
        s->missed = m - s->next;
        s->pending = m;
        s->next = m + 1;
        return SHM_LAGGED;
    }
    s->next = m + 1;
    memcpy(out, r->buffer, r->payload_size);
    *number = m;
    return SHM_OK;
}
static shm_status recv_timeout(shm_stream *s, void *out, uint64_t *number, int64_t ns) {
    int64_t deadline = shm__now_ns() + ns;
    for (;;) {
        shm_status st = try_recv(s, out, number);
        if (st != SHM_EMPTY) return st;
        if (shm__now_ns() >= deadline) return SHM_ERR_TIMEOUT;
    }
}
#else
#define try_recv shm_stream_try_recv
#define recv_timeout shm_stream_recv_timeout
#endif

int main(int argc, char **argv) {
    shm_stream s;
    Msg m;
    uint64_t n = 0, expect, start, received = 0, missed = 0, gaps = 0, bad = 0, disorder = 0;
    int queue, wait, gone = 0;
    long sleep_every;
    int64_t idle_since = 0;
    unsigned i;
    shm_status st;
    if (argc != 5) return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    queue = strcmp(argv[2], "queue") == 0;
    wait = strcmp(argv[3], "wait") == 0;
    sleep_every = atol(argv[4]);
    st = queue ? shm_queue_observe(&s, argv[1], SHM_LAYOUT(MSG), 1) : shm_stream_open(&s, argv[1], SHM_LAYOUT(MSG), 1);
    if (st != SHM_OK) {
        printf("error status=%d %s\n", (int)st, s.reader.message);
        return 1;
    }
    start = expect = shm_stream_position(&s);
    printf("ready\n");
    for (;;) {
        st = wait ? recv_timeout(&s, &m, &n, 20000000) : try_recv(&s, &m, &n);
        if (st == SHM_OK) {
            if (n != expect) disorder++;
            for (i = 0; i < 8; i++) {
                if (m.words[i] != word(n, i)) {
                    bad++;
                    break;
                }
            }
            expect = n + 1;
            received++;
            idle_since = 0;
            if (sleep_every && received % (uint64_t)sleep_every == 0) shm__sleep_ns(2000000);
        } else if (st == SHM_LAGGED) {
            if (shm_stream_missed(&s) == 0) disorder++;
            missed += shm_stream_missed(&s);
            expect += shm_stream_missed(&s);
            gaps++;
        } else if (st == SHM_EMPTY || st == SHM_ERR_TIMEOUT) {
            /* Nothing left after the writer was seen gone: it had sent everything. */
            if (gone) break;
            if (!shm_stream_writer_alive(&s) && shm_stream_sent(&s) > 0) {
                gone = 1;
                continue;
            }
            if (!idle_since) idle_since = shm__now_ns();
            if (shm__now_ns() - idle_since > INT64_C(60000000000)) {
                printf("error nothing received for 60 s\n");
                return 1;
            }
            if (!wait) shm__sleep_ns(20000);
        } else {
            printf("error status=%d %s\n", (int)st, s.reader.message);
            return 1;
        }
    }
    printf("received=%llu missed=%llu gaps=%llu bad=%llu disorder=%llu sent=%llu start=%llu end=%llu consumed=%llu\n",
           (unsigned long long)received, (unsigned long long)missed, (unsigned long long)gaps,
           (unsigned long long)bad, (unsigned long long)disorder, (unsigned long long)shm_stream_sent(&s),
           (unsigned long long)start, (unsigned long long)shm_stream_position(&s),
           (unsigned long long)shm_stream_consumed(&s));
    shm_stream_close(&s);
    return 0;
}
"#;

/// The C++ reader, through `shm::StreamReader<Msg>`: the C reader's checks and report, with
/// lag as the `shm::Lagged` exception. Arguments: name, and how many messages to receive
/// between 2 ms sleeps (0: never sleep).
const READER_CPP: &str = r#"#include "shm_state.hpp"
#include "msg.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>

static std::uint64_t word(std::uint64_t n, unsigned i) {
    std::uint64_t x = n * UINT64_C(0x9e3779b97f4a7c15);
    unsigned r = 7 * i;
    return i == 0 ? n : ((x << r | x >> (64 - r)) ^ i);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    long sleep_every = std::atol(argv[2]);
    std::uint64_t received = 0, missed = 0, gaps = 0, bad = 0, disorder = 0;
    try {
        shm::StreamReader<Msg> rx{argv[1], shm::Start::Oldest};
        std::uint64_t start = rx.position(), expect = start;
        std::printf("ready\n");
        auto idle_since = std::chrono::steady_clock::now();
        bool gone = false;
        for (;;) {
            try {
                Msg m = rx.recv_timeout(std::chrono::milliseconds(20));
                std::uint64_t n = rx.last_number();
                if (n != expect) disorder++;
                for (unsigned i = 0; i < 8; i++) {
                    if (m.words[i] != word(n, i)) {
                        bad++;
                        break;
                    }
                }
                expect = n + 1;
                received++;
                idle_since = std::chrono::steady_clock::now();
                if (sleep_every && received % (std::uint64_t)sleep_every == 0)
                    std::this_thread::sleep_for(std::chrono::milliseconds(2));
            } catch (const shm::Lagged &e) {
                if (e.missed() == 0 || e.code() != SHM_LAGGED) disorder++;
                missed += e.missed();
                expect += e.missed();
                gaps++;
            } catch (const shm::Error &e) {
                if (e.code() != SHM_ERR_TIMEOUT) throw;
                // Nothing left after the writer was seen gone: it had sent everything.
                if (gone) break;
                gone = !rx.writer_alive() && rx.sent() > 0;
                if (std::chrono::steady_clock::now() - idle_since > std::chrono::seconds(60)) {
                    std::printf("error nothing received for 60 s\n");
                    return 1;
                }
            }
        }
        std::optional<Msg> none = rx.try_recv();
        if (none) disorder++;
        std::printf("received=%llu missed=%llu gaps=%llu bad=%llu disorder=%llu sent=%llu start=%llu end=%llu\n",
                    (unsigned long long)received, (unsigned long long)missed, (unsigned long long)gaps,
                    (unsigned long long)bad, (unsigned long long)disorder, (unsigned long long)rx.sent(),
                    (unsigned long long)start, (unsigned long long)rx.position());
    } catch (const shm::Error &e) {
        std::printf("error status=%d %s\n", (int)e.code(), e.what());
        return 1;
    }
    return 0;
}
"#;

/// The reader programs, built once per test into their own directory.
struct Programs {
    dir: TempDir,
}

impl Programs {
    /// Writes the generated header of `Msg` and the two readers; `unvalidated` builds the C
    /// reader without the sequence checks.
    fn build(tag: &str, unvalidated: bool) -> Programs {
        let dir = TempDir::new(tag);
        std::fs::write(
            dir.path().join("msg.h"),
            shm_core::export::c_header::<Msg>(),
        )
        .unwrap();
        std::fs::write(dir.path().join("reader.c"), READER_C).unwrap();
        let extra: &[&str] = if unvalidated {
            &["-DSHM_STATE_UNVALIDATED_FOR_TESTS"]
        } else {
            &[]
        };
        compile("cc", C_FLAGS, dir.path(), "reader.c", "reader_c", extra);
        Programs { dir }
    }

    fn with_cpp(self) -> Programs {
        std::fs::write(self.dir.path().join("reader.cpp"), READER_CPP).unwrap();
        compile(
            "c++",
            CXX_FLAGS,
            self.dir.path(),
            "reader.cpp",
            "reader_cpp",
            &[],
        );
        self
    }

    fn exe(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A reader program running, its stdout read up to its `ready` line.
struct Running {
    what: String,
    child: Child,
    out: BufReader<ChildStdout>,
}

fn start(what: &str, exe: &Path, args: &[&str]) -> Running {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{what}");
    Running {
        what: what.to_string(),
        child,
        out,
    }
}

/// What a reader counted, from its last line.
#[derive(Debug)]
struct Report {
    received: u64,
    missed: u64,
    gaps: u64,
    bad: u64,
    disorder: u64,
    sent: u64,
    start: u64,
    end: u64,
    consumed: Option<u64>,
}

impl Running {
    fn finish(mut self) -> Report {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        assert!(
            self.child.wait().unwrap().success(),
            "{} failed: {rest}",
            self.what
        );
        let line = rest.lines().last().unwrap_or("");
        let field = |k: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(|v| v.parse().unwrap())
        };
        let get = |k: &str| field(k).unwrap_or_else(|| panic!("{}: no {k} in {line:?}", self.what));
        let report = Report {
            received: get("received"),
            missed: get("missed"),
            gaps: get("gaps"),
            bad: get("bad"),
            disorder: get("disorder"),
            sent: get("sent"),
            start: get("start"),
            end: get("end"),
            consumed: field("consumed"),
        };
        eprintln!("{}: {report:?}", self.what);
        report
    }
}

/// Every message from the reader's start either received, consistent and in order, or counted
/// lost: nothing torn, duplicated, reordered or unaccounted for.
fn assert_exact(what: &str, r: &Report, total: u64) {
    assert_eq!(r.bad, 0, "{what}: inconsistent messages received");
    assert_eq!(
        r.disorder, 0,
        "{what}: out of order, duplicated or unreported gap"
    );
    assert_eq!(r.start, 1, "{what}");
    assert_eq!(r.sent, total, "{what}");
    assert_eq!(
        r.received + r.missed,
        r.sent,
        "{what}: received + lost != sent"
    );
    assert_eq!(r.end, r.sent + 1, "{what}");
    assert!(r.received > 0, "{what}");
}

fn messages() -> u64 {
    std::env::var("SHM_C_STREAM_MESSAGES")
        .map(|v| v.parse().unwrap())
        .unwrap_or(3_000_000)
}

#[test]
fn c_and_cpp_readers_receive_every_message_or_count_it_lost() {
    if role().is_some() {
        return;
    }
    let total = messages();
    let programs = Programs::build("cstream", false).with_cpp();
    let name = Name::new("cstream");
    drop(Msg::create_stream(&name, 1024).unwrap());
    let (c, cpp) = (programs.exe("reader_c"), programs.exe("reader_cpp"));
    let readers = [
        start("C reader (futex)", &c, &[&name, "stream", "wait", "0"]),
        start("C reader (polling)", &c, &[&name, "stream", "poll", "0"]),
        start("slow C reader", &c, &[&name, "stream", "poll", "4096"]),
        start("slow C++ reader", &cpp, &[&name, "2048"]),
    ];
    let mut writer = spawn_role(
        ENTRY,
        "stream-writer",
        &[
            ("SHM_NAME", name.to_string()),
            ("SHM_TOTAL", total.to_string()),
            ("SHM_PACE", "512".to_string()),
        ],
    );
    for reader in readers {
        let what = reader.what.clone();
        let r = reader.finish();
        assert_exact(&what, &r, total);
        // A broadcast stream has no consumer (the C++ reader does not report it).
        assert!(matches!(r.consumed, None | Some(0)), "{what}");
        if what.starts_with("slow") {
            assert!(r.missed > 0 && r.gaps > 0, "{what} never fell behind");
        }
    }
    assert!(writer.wait().unwrap().success());
}

#[test]
fn c_reader_without_validation_receives_inconsistent_messages() {
    if role().is_some() {
        return;
    }
    // In a stream of 4 messages, a reader's copies race with the writer's overwrites of the
    // slots it reads: the validated reader counts those messages lost; without the checks
    // they are delivered, holding a later message or parts of two.
    let programs = Programs::build("cstreamraw", true);
    let name = Name::new("cstreamraw");
    drop(Msg::create_stream(&name, 4).unwrap());
    let reader = start(
        "unvalidated C reader",
        &programs.exe("reader_c"),
        &[&name, "stream", "poll", "0"],
    );
    let mut writer = spawn_role(
        ENTRY,
        "stream-writer",
        &[
            ("SHM_NAME", name.to_string()),
            ("SHM_TOTAL", "10000000".to_string()),
            ("SHM_PACE", "0".to_string()),
        ],
    );
    let r = reader.finish();
    assert!(writer.wait().unwrap().success());
    assert!(
        r.bad + r.disorder > 0,
        "the unvalidated receive never delivered a wrong message: the test cannot fail"
    );
}

#[test]
fn c_observer_sees_a_queue_without_taking_from_its_consumer() {
    if role().is_some() {
        return;
    }
    let total = 300_000u64;
    let programs = Programs::build("cqueue", false);
    let name = Name::new("cqueue");
    drop(Msg::create_queue(&name, 256).unwrap());
    let observer = start(
        "C queue observer",
        &programs.exe("reader_c"),
        &[&name, "queue", "wait", "0"],
    );
    let mut consumer = Msg::open_consumer(&name).unwrap();
    let mut producer = spawn_role(
        ENTRY,
        "queue-producer",
        &[
            ("SHM_NAME", name.to_string()),
            ("SHM_TOTAL", total.to_string()),
        ],
    );
    // The consumer takes every message, exactly once, in order: the observer took none.
    for n in 1..=total {
        let m = consumer.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(m, msg(n), "the consumer lost or repeated a message");
    }
    assert!(producer.wait().unwrap().success());
    let r = observer.finish();
    assert_exact("C queue observer", &r, total);
    assert_eq!(
        r.consumed,
        Some(total),
        "the observer sees the consumer's position"
    );
    assert_eq!(consumer.taken(), total);
}

/// The waiter count of the segment `name` (header offset 196), read from its file.
fn waiters(name: &str) -> u32 {
    let f = std::fs::File::open(format!("/dev/shm{name}")).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, 196).unwrap();
    u32::from_ne_bytes(b)
}

const WAITER_C: &str = r#"#include "shm_state.h"
#include "msg.h"

int main(int argc, char **argv) {
    shm_stream s;
    Msg m;
    uint64_t n = 0;
    shm_status st;
    (void)argc;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (shm_stream_open(&s, argv[1], SHM_LAYOUT(MSG), 0) != SHM_OK) {
        printf("error %s\n", s.reader.message);
        return 1;
    }
    printf("waiting position=%llu writable=%d\n", (unsigned long long)shm_stream_position(&s), s.reader.writable);
    st = shm_stream_recv_timeout(&s, &m, &n, INT64_C(30000000000));
    printf("status=%d number=%llu word0=%llu\n", (int)st, (unsigned long long)n, (unsigned long long)m.words[0]);
    st = shm_stream_recv_timeout(&s, &m, &n, 1000000);
    printf("status=%d %s\n", (int)st, s.reader.message);
    shm_stream_close(&s);
    return 0;
}
"#;

#[test]
fn c_reader_sleeping_on_the_futex_is_woken_by_a_send() {
    let dir = TempDir::new("cstreamwait");
    std::fs::write(
        dir.path().join("msg.h"),
        shm_core::export::c_header::<Msg>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("wait.c"), WAITER_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "wait.c", "wait", &[]);
    let name = Name::new("cstreamwait");
    let mut tx = Msg::create_stream(&name, 8).unwrap();
    for n in 1..=3 {
        tx.send(&msg(n));
    }
    let mut child = Command::new(exe)
        .arg(&*name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    // From the newest: the next message sent, number 4.
    assert_eq!(next(), "waiting position=4 writable=1");
    // Registered as a waiter before sleeping: the send must wake it.
    let start = Instant::now();
    while waiters(&name) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never registered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    tx.send(&msg(4));
    assert_eq!(next(), "status=0 number=4 word0=4");
    assert_eq!(next(), "status=10 timed out");
    assert!(child.wait().unwrap().success());
    assert_eq!(waiters(&name), 0, "the reader left itself registered");
}

/// A C stream reader that finds the waiter count at its maximum (a hostile peer) polls instead
/// of registering, as the Rust reader does: the count is never wrapped to 0 (which would make
/// the writer skip every wake-up), and the message still arrives.
#[test]
fn c_reader_at_the_maximal_waiter_count_polls_without_wrapping_it() {
    let dir = TempDir::new("cstreamwaitmax");
    std::fs::write(
        dir.path().join("msg.h"),
        shm_core::export::c_header::<Msg>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("wait.c"), WAITER_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "wait.c", "wait", &[]);
    let name = Name::new("cstreamwaitmax");
    let mut tx = Msg::create_stream(&name, 8).unwrap();
    tx.send(&msg(1));
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{}", &*name))
        .unwrap()
        .write_all_at(&u32::MAX.to_ne_bytes(), 196)
        .unwrap();
    let mut child = Command::new(exe)
        .arg(&*name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    assert_eq!(next(), "waiting position=2 writable=1");
    // Observed progress: the reader went to sleep (polling, or registered) in its wait.
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        if stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('S')
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never slept");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        waiters(&name),
        u32::MAX,
        "the wait wrapped the waiter count"
    );
    tx.send(&msg(2));
    assert_eq!(next(), "status=0 number=2 word0=2");
    assert_eq!(next(), "status=10 timed out");
    assert!(child.wait().unwrap().success());
    assert_eq!(waiters(&name), u32::MAX);
}

const OPEN_C: &str = r#"#include "shm_state.h"
#include "msg.h"

int main(int argc, char **argv) {
    shm_reader r;
    shm_stream s;
    shm_status st;
    (void)argc;
    if (!strcmp(argv[2], "state")) {
        st = shm_reader_open(&r, argv[1], SHM_LAYOUT(MSG));
        printf("status=%d message=%s\n", (int)st, st == SHM_OK ? "" : r.message);
        shm_reader_close(&r);
    } else {
        st = !strcmp(argv[2], "stream") ? shm_stream_open(&s, argv[1], SHM_LAYOUT(MSG), 0)
                                         : shm_queue_observe(&s, argv[1], SHM_LAYOUT(MSG), 0);
        printf("status=%d message=%s\n", (int)st, st == SHM_OK ? "" : s.reader.message);
        shm_stream_close(&s);
    }
    return 0;
}
"#;

/// Opens `name` from C as `how` (`state`, `stream` or `queue`); returns its status line.
fn open_c(exe: &Path, name: &str, how: &str) -> String {
    let out = Command::new(exe).args([name, how]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn each_kind_refuses_the_others_in_c_as_in_rust() {
    let dir = TempDir::new("ckinds");
    std::fs::write(
        dir.path().join("msg.h"),
        shm_core::export::c_header::<Msg>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("open.c"), OPEN_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "open.c", "open", &[]);
    let state = Name::new("ckind-state");
    let stream = Name::new("ckind-stream");
    let queue = Name::new("ckind-queue");
    let _w = Msg::create(&state, &msg(0)).unwrap();
    let _s = Msg::create_stream(&stream, 4).unwrap();
    let _q = Msg::create_queue(&queue, 4).unwrap();

    let holds =
        |what: &str, not: &str| format!("status=13 message=this segment holds {what}, not {not}");
    let state_is = "shared state (read it with `shm_reader_open`)";
    let stream_is = "a broadcast stream (read it with `shm_stream_open`)";
    let queue_is = "a queue (observe it with `shm_queue_observe`)";
    let cases = [
        (&state, "state", "status=0 message=".to_string()),
        (&stream, "stream", "status=0 message=".to_string()),
        (&queue, "queue", "status=0 message=".to_string()),
        (&stream, "state", holds(stream_is, state_is)),
        (&queue, "state", holds(queue_is, state_is)),
        (&state, "stream", holds(state_is, stream_is)),
        (&queue, "stream", holds(queue_is, stream_is)),
        (&state, "queue", holds(state_is, queue_is)),
        (&stream, "queue", holds(stream_is, queue_is)),
    ];
    for (name, how, expected) in cases {
        assert_eq!(
            open_c(&exe, name, how),
            expected,
            "{how} open of {}",
            &**name
        );
    }
    // The Rust wording, with the C calls named.
    let rust = Msg::open(&stream).unwrap_err().to_string();
    assert_eq!(
        rust,
        "this segment holds a broadcast stream (read it with `subscribe`), not shared state (read it with `open`)"
    );
}

#[test]
fn c_stream_opener_refuses_other_types_and_damaged_headers_as_rust_does() {
    let dir = TempDir::new("cstreamdamage");
    std::fs::write(
        dir.path().join("msg.h"),
        shm_core::export::c_header::<retyped::Msg>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("open.c"), OPEN_C).unwrap();
    // A header for another type of the same size: refused, naming the field, as in Rust.
    let exe = compile("cc", C_FLAGS, dir.path(), "open.c", "open_retyped", &[]);
    let name = Name::new("cstreamtype");
    let _s = Msg::create_stream(&name, 4).unwrap();
    let rust = retyped::Msg::subscribe(&name).unwrap_err().to_string();
    assert!(rust.contains("field `words`"), "{rust}");
    assert_eq!(
        open_c(&exe, &name, "stream"),
        format!("status=8 message={rust}")
    );

    std::fs::write(
        dir.path().join("msg.h"),
        shm_core::export::c_header::<Msg>(),
    )
    .unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "open.c", "open", &[]);
    // (tag, offset, bytes, the C status code, a word the message must contain); the message
    // must be the Rust subscriber's, word for word.
    let cases: [(&str, u64, Vec<u8>, u32, &str); 4] = [
        (
            "ckind7",
            96,
            7u32.to_ne_bytes().to_vec(),
            7,
            "unknown segment kind",
        ),
        // A state segment's geometry: no control line.
        ("cnoctl", 40, 256u64.to_ne_bytes().to_vec(), 7, "geometry"),
        (
            "ccap",
            36,
            ((1u32 << 24) + 1).to_ne_bytes().to_vec(),
            7,
            "slot count",
        ),
        (
            "cctlsz",
            72,
            (1u64 << 40).to_ne_bytes().to_vec(),
            6,
            "truncated",
        ),
    ];
    for (tag, offset, bytes, status, word) in cases {
        let name = Name::new(tag);
        drop(Msg::create_stream(&name, 4).unwrap());
        poke_bytes(&name, offset, &bytes);
        let rust = match Msg::subscribe(&name) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{tag}: the Rust subscriber accepted a damaged stream"),
        };
        let c = open_c(&exe, &name, "stream");
        assert_eq!(c, format!("status={status} message={rust}"), "{tag}");
        assert!(c.contains(word), "{tag}: {c}");
    }
}
