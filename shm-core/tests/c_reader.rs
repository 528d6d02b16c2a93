//! C and C++ programs, built from the generated headers and `include/shm_state.h(pp)` with the
//! real `cc` and `c++`, read segments of live Rust writer processes: never torn, never
//! backwards; torn without validation (so the check can fail); refused, naming the field, when
//! their header describes another type; and every kind of field read back exactly.

mod common;
mod lang;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use lang::{compile, Robot, TempDir, CXX_FLAGS, C_FLAGS};
use shm_core::{Options, SharedState};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WORDS: usize = 512;

/// 4 KiB whose every word holds the same counter.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
pub struct Stress {
    pub counter: u64,
    pub words: [u64; WORDS - 1],
}

mod segment_side {
    use shm_core::SharedState;

    /// The type the writer publishes.
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Pose")]
    pub struct Pose {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

mod retyped {
    use shm_core::SharedState;

    /// The same type with `pos` retyped to `[f32; 3]`: what a stale or edited header says.
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Pose")]
    pub struct Pose {
        pub tick: u64,
        pub pos: [f32; 3],
        pub status: u32,
        pub flags: u32,
        pub _pad: [u8; 4],
    }
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("writer") => {
            let mut w = Stress::open_writer(&env("SHM_NAME")).expect("writer takes over");
            let mut value = Box::new(Stress {
                counter: 0,
                words: [0; WORDS - 1],
            });
            let mut c = 0u64;
            loop {
                c += 1;
                value.counter = c;
                value.words.fill(c);
                w.write(&value);
            }
        }
        Some("turn_writer") => {
            // One of several writers that take turns: each turn adds 1 to the latest value.
            let mut w = Options::new()
                .shared_writers(true)
                .open_writer::<Stress>(&env("SHM_NAME"))
                .expect("writer attaches");
            loop {
                let mut t = w.turn(Duration::from_secs(30)).expect("a turn");
                let c = t.counter + 1;
                t.counter = c;
                t.words.fill(c);
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

const STRESS_C: &str = r#"#include "shm_state.h"
#include "stress.h"

#include <time.h>

int main(int argc, char **argv) {
    shm_reader r;
    Stress *v = (Stress *)malloc(sizeof(Stress));
    long reads, min_distinct, i, torn = 0, backwards = 0, distinct = 0;
    uint64_t last = 0;
    size_t k;
    time_t start = time(NULL);
    if (argc != 4 || !v) return 2;
    reads = atol(argv[2]);
    min_distinct = atol(argv[3]);
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(STRESS)) != SHM_OK) {
        fprintf(stderr, "%s\n", r.message);
        return 1;
    }
    /* At least `reads` reads, and more until `min_distinct` values were seen (at most 20 s). */
    for (i = 0; i < reads || (distinct < min_distinct && time(NULL) - start < 20); i++) {
#ifdef SHM_STATE_UNVALIDATED_FOR_TESTS
        /* The same word copy without the sequence checks: what validation prevents. */
        uint64_t ver = shm_version(&r);
        const unsigned char *words = r.base + r.slots_offset + (ver % r.slot_count) * r.slot_stride + 64;
        for (k = 0; k < r.payload_words; k++)
            r.buffer[k] = __atomic_load_n((const uint64_t *)(const void *)(words + 8 * k), __ATOMIC_RELAXED);
        memcpy(v, r.buffer, sizeof(Stress));
#else
        if (shm_read(&r, v) != SHM_OK) {
            fprintf(stderr, "%s\n", r.message);
            return 1;
        }
#endif
        for (k = 0; k < sizeof(v->words) / 8; k++) {
            if (v->words[k] != v->counter) {
                torn++;
                break;
            }
        }
        if (v->counter < last) backwards++;
        if (v->counter != last) distinct++;
        last = v->counter;
    }
    printf("reads=%ld torn=%ld backwards=%ld distinct=%ld\n", i, torn, backwards, distinct);
    shm_reader_close(&r);
    free(v);
    return 0;
}
"#;

const STRESS_CPP: &str = r#"#include "shm_state.hpp"
#include "stress.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    long reads = std::atol(argv[2]), min_distinct = std::atol(argv[3]), i = 0, torn = 0, backwards = 0,
         distinct = 0;
    std::uint64_t last = 0;
    auto start = std::chrono::steady_clock::now();
    try {
        shm::Reader<Stress> r{argv[1]};
        auto v = std::make_unique<Stress>();
        // At least `reads` reads, and more until `min_distinct` values were seen (at most 20 s).
        for (; i < reads || (distinct < min_distinct && std::chrono::steady_clock::now() - start < std::chrono::seconds(20)); i++) {
#ifdef SHM_STATE_UNVALIDATED_FOR_TESTS
            const shm_reader &h = r.handle();
            std::uint64_t ver = r.version();
            const unsigned char *words = h.base + h.slots_offset + (ver % h.slot_count) * h.slot_stride + 64;
            for (std::size_t k = 0; k < h.payload_words; k++)
                h.buffer[k] = __atomic_load_n((const std::uint64_t *)(const void *)(words + 8 * k), __ATOMIC_RELAXED);
            std::memcpy(v.get(), h.buffer, sizeof(Stress));
#else
            r.read_into(*v);
#endif
            for (std::uint64_t w : v->words) {
                if (w != v->counter) {
                    torn++;
                    break;
                }
            }
            if (v->counter < last) backwards++;
            if (v->counter != last) distinct++;
            last = v->counter;
        }
    } catch (const shm::Error &e) {
        std::fprintf(stderr, "%s (code %d)\n", e.what(), (int)e.code());
        return 1;
    }
    std::printf("reads=%ld torn=%ld backwards=%ld distinct=%ld\n", i, torn, backwards, distinct);
    return 0;
}
"#;

/// Builds the stress program in C (`cpp == false`) or C++, validated or not, and runs it against
/// a live writer process; returns (reads, torn, backwards, distinct).
fn stress(cpp: bool, unvalidated: bool) -> (u64, u64, u64, u64) {
    stress_writers(cpp, unvalidated, false)
}

/// [`stress`], against two writer processes that take turns if `turns`.
fn stress_writers(cpp: bool, unvalidated: bool, turns: bool) -> (u64, u64, u64, u64) {
    let dir = TempDir::new("cstress");
    std::fs::write(
        dir.path().join("stress.h"),
        shm_core::export::c_header::<Stress>(),
    )
    .unwrap();
    let (compiler, flags, source) = if cpp {
        std::fs::write(dir.path().join("stress.cpp"), STRESS_CPP).unwrap();
        ("c++", CXX_FLAGS, "stress.cpp")
    } else {
        std::fs::write(dir.path().join("stress.c"), STRESS_C).unwrap();
        ("cc", C_FLAGS, "stress.c")
    };
    let extra: &[&str] = if unvalidated {
        &["-DSHM_STATE_UNVALIDATED_FOR_TESTS"]
    } else {
        &[]
    };
    let exe = compile(compiler, flags, dir.path(), source, "stress", extra);

    let name = Name::new(if cpp { "cxxstress" } else { "cstress" });
    let initial = Stress {
        counter: 0,
        words: [0; WORDS - 1],
    };
    drop(
        Options::new()
            .shared_writers(turns)
            .create(&name, &initial)
            .expect("create segment"),
    );
    let (role, count) = if turns {
        ("turn_writer", 2)
    } else {
        ("writer", 1)
    };
    let mut writers: Vec<_> = (0..count)
        .map(|_| spawn_role(ENTRY, role, &[("SHM_NAME", name.to_string())]))
        .collect();
    let probe = Stress::open(&name).unwrap();
    let start = Instant::now();
    while probe.version() < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writer never wrote"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = Command::new(&exe)
        .arg(&*name)
        .args(["200000", "1000"])
        .output()
        .unwrap();
    for w in &mut writers {
        kill(w);
    }
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{source} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{source} (unvalidated: {unvalidated}): {stdout}");
    let field = |k: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {k} in {stdout:?}"))
            .parse()
            .unwrap()
    };
    (
        field("reads"),
        field("torn"),
        field("backwards"),
        field("distinct"),
    )
}

fn assert_consistent((reads, torn, backwards, distinct): (u64, u64, u64, u64)) {
    assert!(reads >= 200_000, "only {reads} reads");
    assert_eq!(torn, 0, "torn reads seen");
    assert_eq!(backwards, 0, "the counter went backwards");
    assert!(
        distinct >= 1000,
        "only {distinct} distinct values seen in 20 s"
    );
}

#[test]
fn c_reader_never_tears_against_a_live_rust_writer() {
    if role().is_none() {
        assert_consistent(stress(false, false));
    }
}

/// Readers in C read a segment of turn-taking writers as any other: they never see its lock.
#[test]
fn c_reader_never_tears_against_turn_taking_writers() {
    assert_consistent(stress_writers(false, false, true));
}

#[test]
fn c_reader_without_validation_tears() {
    if role().is_none() {
        let (_, torn, _, _) = stress(false, true);
        assert!(
            torn > 0,
            "the unvalidated copy never tore: the stress test cannot fail"
        );
    }
}

#[test]
fn cpp_reader_never_tears_against_a_live_rust_writer() {
    if role().is_none() {
        assert_consistent(stress(true, false));
    }
}

#[test]
fn cpp_reader_without_validation_tears() {
    if role().is_none() {
        let (_, torn, _, _) = stress(true, true);
        assert!(
            torn > 0,
            "the unvalidated copy never tore: the stress test cannot fail"
        );
    }
}

const OPEN_C: &str = r#"#include "shm_state.h"
#include "pose.h"

int main(int argc, char **argv) {
    shm_reader r;
    Pose p;
    (void)argc;
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(POSE)) != SHM_OK) {
        printf("status=%d message=%s\n", (int)r.status, r.message);
        return 1;
    }
    shm_read(&r, &p);
    printf("tick=%llu\n", (unsigned long long)p.tick);
    shm_reader_close(&r);
    return 0;
}
"#;

fn run_open(dir: &Path, header: String, name: &str) -> (bool, String) {
    std::fs::write(dir.join("pose.h"), header).unwrap();
    std::fs::write(dir.join("open.c"), OPEN_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir, "open.c", "open", &[]);
    let out = Command::new(exe).arg(name).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn c_reader_refuses_a_retyped_field_and_names_it() {
    let dir = TempDir::new("cretyped");
    let name = Name::new("cretyped");
    let value = segment_side::Pose {
        tick: 42,
        pos: [1.0, 2.0, 3.0],
        status: 0,
        flags: 0,
    };
    let _w = segment_side::Pose::create(&name, &value).unwrap();

    // The matching header reads the value: the check passes when it should.
    let header = shm_core::export::c_header::<segment_side::Pose>();
    let (ok, out) = run_open(dir.path(), header, &name);
    assert!(ok, "{out}");
    assert_eq!(out, "tick=42");

    let header = shm_core::export::c_header::<retyped::Pose>();
    assert!(header.contains("float pos[3];"));
    let (ok, out) = run_open(dir.path(), header, &name);
    assert!(!ok, "a retyped header was accepted: {out}");
    let rust = match retyped::Pose::open(&name) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the Rust reader accepted the retyped type"),
    };
    assert_eq!(
        out,
        format!("status=8 message={rust}"),
        "the C message differs from the Rust one"
    );
    assert!(
        out.contains("field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]` at offset 8 in this program"),
        "{out}"
    );
}

#[test]
fn c_reader_reports_missing_and_invalid_names() {
    let dir = TempDir::new("cnames");
    let header = shm_core::export::c_header::<segment_side::Pose>();
    let missing = Name::new("cmissing");
    let (ok, out) = run_open(dir.path(), header.clone(), &missing);
    assert!(!ok);
    assert!(out.starts_with("status=1 "), "{out}");
    let (ok, out) = run_open(dir.path(), header, "no-slash");
    assert!(!ok);
    assert!(out.starts_with("status=3 "), "{out}");
}

const ROBOT_C: &str = r#"#include "shm_state.h"
#include "robot.h"

static void hex128(const char *name, const void *p) {
    uint64_t w[2];
    memcpy(w, p, 16);
    printf("%s=%016llx%016llx\n", name, (unsigned long long)w[1], (unsigned long long)w[0]);
}

int main(int argc, char **argv) {
    shm_reader r;
    RobotState v;
    uint32_t n32;
    uint64_t n64;
    int i;
    (void)argc;
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(ROBOT_STATE)) != SHM_OK) {
        printf("%s\n", r.message);
        return 1;
    }
    if (shm_read(&r, &v) != SHM_OK) return 1;
    hex128("big", &v.big);
    hex128("signed_big", &v.signed_big);
    printf("pose=%g,%g,%g\n", v.pose.x, v.pose.y, v.pose.z);
    for (i = 0; i < 3; i++)
        printf("joint%d=%g,%u,%u\n", i, (double)v.joints[i].angle, (unsigned)v.joints[i].id, (unsigned)v.joints[i].ok);
    printf("grid=%u,%u,%u,%u,%u,%u\n", (unsigned)v.grid[0][0], (unsigned)v.grid[0][1], (unsigned)v.grid[0][2],
           (unsigned)v.grid[1][0], (unsigned)v.grid[1][1], (unsigned)v.grid[1][2]);
    printf("armed=%u\n", (unsigned)v.armed);
    memcpy(&n32, v.label.len, 4);
    printf("label=%.*s\n", (int)n32, v.label.bytes);
    memcpy(&n64, v.samples.len, 8);
    printf("samples=%llu:%u,%u,%u\n", (unsigned long long)n64, (unsigned)v.samples.items[0],
           (unsigned)v.samples.items[1], (unsigned)v.samples.items[2]);
    memcpy(&n64, v.path.len, 8);
    printf("path=%llu:%g,%g,%g\n", (unsigned long long)n64, v.path.items[0].x, v.path.items[0].y, v.path.items[0].z);
    shm_reader_close(&r);
    return 0;
}
"#;

#[test]
fn every_kind_of_field_compiles_and_reads_back_in_c_and_cpp() {
    let dir = TempDir::new("crobot");
    std::fs::write(
        dir.path().join("robot.h"),
        shm_core::export::c_header::<Robot>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("robot.c"), ROBOT_C).unwrap();
    std::fs::write(dir.path().join("robot.cpp"), ROBOT_C).unwrap();
    let c = compile("cc", C_FLAGS, dir.path(), "robot.c", "robot_c", &[]);
    let cpp = compile("c++", CXX_FLAGS, dir.path(), "robot.cpp", "robot_cpp", &[]);

    let name = Name::new("crobot");
    let v = Robot::sample();
    let _w = Robot::create(&name, &v).unwrap();
    let expected = format!(
        "big={:032x}\nsigned_big={:032x}\npose=1.5,-2.25,3\njoint0=0,100,1\njoint1=0.5,101,0\njoint2=1,102,1\ngrid=1,2,3,4,5,6\narmed=1\nlabel=hello, c\nsamples=3:10,20,30\npath=1:7,8,9\n",
        v.big, v.signed_big as u128
    );
    for exe in [c, cpp] {
        let out = Command::new(&exe).arg(&*name).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{}",
            exe.display()
        );
    }
}

#[test]
fn a_header_that_disagrees_with_the_compiler_fails_to_compile() {
    // The static assertions are what make the header trustworthy: a declaration edited by hand
    // (here, a field's type) must not compile.
    let dir = TempDir::new("cedited");
    let header = shm_core::export::c_header::<segment_side::Pose>()
        .replace("double pos[3];", "float pos[3];");
    std::fs::write(dir.path().join("pose.h"), header).unwrap();
    std::fs::write(
        dir.path().join("t.c"),
        "#include \"pose.h\"\nint main(void) { return 0; }\n",
    )
    .unwrap();
    let out = Command::new("cc")
        .args(C_FLAGS)
        .arg(dir.path().join("t.c"))
        .arg("-o")
        .arg(dir.path().join("t"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "an edited header compiled");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Pose.status: offset differs from the Rust type"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a `Pose` segment, lets `patch` change bytes of its object (as a hostile or buggy
/// peer could), then opens it from C and from Rust; returns both outcomes.
fn open_patched(tag: &str, patch: impl FnOnce(&mut Vec<u8>)) -> (String, String) {
    let dir = TempDir::new(tag);
    let name = Name::new(tag);
    let value = segment_side::Pose {
        tick: 1,
        pos: [0.0; 3],
        status: 0,
        flags: 0,
    };
    drop(segment_side::Pose::create(&name, &value).unwrap());
    let path = format!("/dev/shm{}", &*name);
    let mut bytes = std::fs::read(&path).unwrap();
    patch(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out) = run_open(
        dir.path(),
        shm_core::export::c_header::<segment_side::Pose>(),
        &name,
    );
    assert!(!ok, "the C reader accepted a damaged segment: {out}");
    let rust = match segment_side::Pose::open(&name) {
        Err(e) => e.to_string(),
        Ok(_) => "accepted".to_string(),
    };
    (out, rust)
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

#[test]
fn c_reader_refuses_damaged_headers_as_the_rust_reader_does() {
    // (tag, patch, the C status code, a word the message must contain); the C message must
    // also be the Rust reader's, word for word.
    type Patch = fn(&mut Vec<u8>);
    let cases: [(&str, Patch, u32, &str); 11] = [
        ("cmagic", |b| put_u64(b, 0, 0x1234), 4, "magic"),
        ("cversion", |b| b[8] = 3, 5, "version 3"),
        // Format version 1: no `inline` word, no waiters' barrier.
        ("cversion1", |b| b[8] = 1, 5, "version 1"),
        // A payload size near 2^64 must not wrap the slot stride into something small.
        (
            "cpsize",
            |b| put_u64(b, 24, u64::MAX - 7),
            7,
            "payload size",
        ),
        (
            "cslots",
            |b| b[36..40].copy_from_slice(&0u32.to_ne_bytes()),
            7,
            "slot count",
        ),
        ("cstride", |b| put_u64(b, 48, 192), 7, "geometry"),
        ("ctotal", |b| put_u64(b, 72, 1 << 40), 6, "truncated"),
        // Another hash, and a stored descriptor that does not decode.
        (
            "cdesc",
            |b| {
                put_u64(b, 16, 0xdead_beef);
                let at = u64::from_ne_bytes(b[56..64].try_into().unwrap()) as usize;
                b[at] = 99;
            },
            8,
            "malformed layout descriptor: unknown kind tag",
        ),
        (
            "calign",
            |b| b[32..36].copy_from_slice(&3u32.to_ne_bytes()),
            7,
            "alignment",
        ),
        // The right hash, but a stored description that is not what the hash promises: a
        // renamed field, or bytes that do not decode.
        (
            "crename",
            |b| {
                let at = u64::from_ne_bytes(b[56..64].try_into().unwrap()) as usize;
                let name = b[at..].windows(4).position(|w| w == b"tick").unwrap();
                b[at + name] = b'T';
            },
            7,
            "stored layout does not have the stored layout hash",
        ),
        (
            "cstored",
            |b| {
                let at = u64::from_ne_bytes(b[56..64].try_into().unwrap()) as usize;
                b[at] = 99;
            },
            7,
            "stored layout descriptor is malformed",
        ),
    ];
    for (tag, patch, status, word) in cases {
        let (c, rust) = open_patched(tag, patch);
        assert_eq!(c, format!("status={status} message={rust}"), "{tag}");
        assert!(c.contains(word), "{tag}: {c}");
    }
}

const WAIT_C: &str = r#"#include "shm_state.h"
#include "pose.h"

int main(int argc, char **argv) {
    shm_reader r;
    uint64_t v0, v = 0;
    shm_status st;
    int i;
    (void)argc;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(POSE)) != SHM_OK) {
        printf("error %s\n", r.message);
        return 1;
    }
    v0 = shm_version(&r);
    printf("alive=%d writable=%d\n", shm_writer_alive(&r), r.writable);
    st = shm_wait_for_update(&r, v0, INT64_C(10000000000), &v);
    printf("updated=%d %d\n", (int)st, v > v0);
    for (i = 0; i < 1000 && shm_writer_alive(&r); i++) shm__sleep_ns(10000000);
    printf("alive=%d\n", shm_writer_alive(&r));
    st = shm_wait_for_update(&r, v, 50000000, NULL);
    printf("timeout=%d\n", (int)(st == SHM_ERR_TIMEOUT));
    shm_reader_close(&r);
    return 0;
}
"#;

#[test]
fn c_reader_waits_on_the_futex_and_sees_the_writer_go() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("cwait");
    let name = Name::new("cwait");
    std::fs::write(
        dir.path().join("pose.h"),
        shm_core::export::c_header::<segment_side::Pose>(),
    )
    .unwrap();
    std::fs::write(dir.path().join("wait.c"), WAIT_C).unwrap();
    let exe = compile("cc", C_FLAGS, dir.path(), "wait.c", "wait", &[]);
    let mut value = segment_side::Pose {
        tick: 1,
        pos: [0.0; 3],
        status: 0,
        flags: 0,
    };
    let mut w = segment_side::Pose::create(&name, &value).unwrap();
    let mut child = Command::new(exe)
        .arg(&*name)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    assert_eq!(next(), "alive=1 writable=1");
    // The reader is (about to be) blocked on the futex: publishing must wake it.
    std::thread::sleep(Duration::from_millis(50));
    value.tick = 2;
    w.write(&value);
    assert_eq!(next(), "updated=0 1");
    drop(w);
    assert_eq!(next(), "alive=0");
    assert_eq!(next(), "timeout=1");
    assert!(child.wait().unwrap().success());
}
