//! Rolling upgrades across languages: C (the header-only reader) and C++ readers of each
//! version of the example's appendable `Pose`, compiled with the real `cc` and `c++` against
//! that version's generated header (`upgrade_vN header`), read segments that Rust writers of
//! every version (`upgrade_vN create`) publish back to back. Each reader applies the rule of
//! "Compatibility" itself, reports the case, and checks every snapshot field by field: the
//! fields the segment's version does not have must read as zero, though the reader fills its
//! value with 0xa5 bytes before each read. Streams: the same rule for every message.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A unique name for this test (segment or directory), removed on drop.
struct Name(String, Option<PathBuf>);

impl Name {
    fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("/shmtest-{tag}-{}-{n}", std::process::id()), None)
    }

    /// A fresh temporary directory of this name.
    fn dir(tag: &str) -> Name {
        let mut n = Name::new(tag);
        let dir = std::env::temp_dir().join(&n.0[1..]);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        n.1 = Some(dir);
        n
    }

    fn path(&self) -> &Path {
        self.1.as_deref().unwrap()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        match &self.1 {
            Some(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            None => {
                let _ = shm_core::remove(&self.0);
            }
        }
    }
}

fn example(version: u32) -> &'static str {
    match version {
        1 => env!("CARGO_BIN_EXE_upgrade_v1"),
        2 => env!("CARGO_BIN_EXE_upgrade_v2"),
        _ => env!("CARGO_BIN_EXE_upgrade_v3"),
    }
}

/// A running program, killed on drop.
struct Program {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    what: String,
}

impl Program {
    fn start(exe: &Path, args: &[&str]) -> Program {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the program");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Program {
            child,
            lines,
            what: format!("{} {}", exe.display(), args.join(" ")),
        }
    }

    /// The next line the program prints; panics if it ends first or reports a failure.
    fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) if !line.starts_with("BAD") => line,
            Some(Ok(line)) => panic!("{}: {line}", self.what),
            _ => panic!("{} ended: {:?}", self.what, self.child.wait()),
        }
    }

    fn exit_code(mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checks both readers share: every field of `Pose` as `examples::upgrade::field` computes
/// it, zero when the segment's version `STORED` is older than the field's.
const CHECKS: &str = r#"
#define EXPECT(name, got, want, since)                                                       \
    do {                                                                                     \
        if ((got) != (stored >= (since) ? (want) : 0)) {                                     \
            printf("BAD field %s is wrong at seq %llu (stored version %d)\n", name,          \
                   (unsigned long long)p->seq, stored);                                      \
            return 0;                                                                        \
        }                                                                                    \
    } while (0)
static int check_pose(const Pose *p, int stored) {
    uint64_t s = p->seq;
    EXPECT("x", p->x, (double)s * 0.5, 1);
    EXPECT("y", p->y, -(double)s - 0.25, 1);
    EXPECT("check", p->check, (s * UINT64_C(0x9e3779b97f4a7c15)) ^ UINT64_C(0x01234567), 1);
#if VERSION >= 2
    EXPECT("ext.z", p->ext.z, (double)s * 3.0, 2);
#endif
#if VERSION >= 3
    EXPECT("ext.w", p->ext.w, ~s, 3);
    EXPECT("tail", p->tail, (s << 17) | (s >> 47), 3);
#endif
    return 1;
}
"#;

/// The C reader: `reader NAME STORED COMPAT COUNT`, as `upgrade_vN read`.
const C_READER: &str = r#"
#include "shm_state.h"
#include "pose.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
CHECKS
int main(int argc, char **argv) {
    shm_reader r;
    Pose p;
    int stored;
    uint64_t count, distinct = 0, last = 0, spins = 0;
    if (argc != 5) return 64;
    stored = atoi(argv[2]);
    count = strtoull(argv[4], NULL, 10);
    if (shm_reader_open(&r, argv[1], SHM_LAYOUT(POSE)) != SHM_OK) {
        printf("BAD %s\n", r.message);
        return 2;
    }
    if (strcmp(shm_compat_name(shm_reader_compat(&r)), argv[3]) != 0) {
        printf("BAD compat is %s, expected %s\n", shm_compat_name(shm_reader_compat(&r)), argv[3]);
        return 2;
    }
    printf("compat %s\n", shm_compat_name(shm_reader_compat(&r)));
    fflush(stdout);
    while (distinct < count) {
        memset(&p, 0xa5, sizeof p);
        if (shm_read_timeout(&r, &p, INT64_C(10000000000)) != SHM_OK) {
            printf("BAD %s\n", r.message);
            return 2;
        }
        if (!check_pose(&p, stored)) return 2;
        if (p.seq < last) {
            printf("BAD went back from %llu to %llu\n", (unsigned long long)last, (unsigned long long)p.seq);
            return 2;
        }
        if (p.seq == last) {
            if (++spins > UINT64_C(100000000)) { printf("BAD no new value\n"); return 2; }
            continue;
        }
        last = p.seq;
        distinct++;
    }
    printf("done %llu\n", (unsigned long long)distinct);
    shm_reader_close(&r);
    return 0;
}
"#;

/// The C stream reader: `stream NAME STORED COMPAT COUNT`, checking every message it receives
/// (from the oldest held), in order.
const C_STREAM: &str = r#"
#include "shm_state.h"
#include "pose.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
CHECKS
int main(int argc, char **argv) {
    shm_stream s;
    Pose p;
    int stored;
    uint64_t count, got = 0, last = 0, number;
    if (argc != 5) return 64;
    stored = atoi(argv[2]);
    count = strtoull(argv[4], NULL, 10);
    if (shm_stream_open(&s, argv[1], SHM_LAYOUT(POSE), 1) != SHM_OK) {
        printf("BAD %s\n", s.reader.message);
        return 2;
    }
    if (strcmp(shm_compat_name(shm_stream_compat(&s)), argv[3]) != 0) {
        printf("BAD compat is %s, expected %s\n", shm_compat_name(shm_stream_compat(&s)), argv[3]);
        return 2;
    }
    printf("compat %s\n", shm_compat_name(shm_stream_compat(&s)));
    fflush(stdout);
    while (got < count) {
        shm_status st;
        memset(&p, 0xa5, sizeof p);
        st = shm_stream_recv_timeout(&s, &p, &number, INT64_C(10000000000));
        if (st == SHM_LAGGED) continue;
        if (st != SHM_OK) {
            printf("BAD %s\n", s.reader.message);
            return 2;
        }
        if (!check_pose(&p, stored)) return 2;
        if (p.seq <= last) {
            printf("BAD message %llu after %llu\n", (unsigned long long)p.seq, (unsigned long long)last);
            return 2;
        }
        last = p.seq;
        got++;
    }
    printf("done %llu\n", (unsigned long long)got);
    shm_stream_close(&s);
    return 0;
}
"#;

/// The C++ reader: the same, through `shm::Reader<Pose>`.
const CXX_READER: &str = r#"
#include "shm_state.hpp"
#include "pose.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
CHECKS
int main(int argc, char **argv) {
    if (argc != 5) return 64;
    int stored = std::atoi(argv[2]);
    std::uint64_t count = std::strtoull(argv[4], nullptr, 10), distinct = 0, last = 0, spins = 0;
    try {
        shm::Reader<Pose> r(argv[1]);
        const char *compat = shm_compat_name(r.compat());
        if (std::strcmp(compat, argv[3]) != 0) {
            std::printf("BAD compat is %s, expected %s\n", compat, argv[3]);
            return 2;
        }
        std::printf("compat %s\n", compat);
        std::fflush(stdout);
        while (distinct < count) {
            Pose p;
            std::memset(static_cast<void *>(&p), 0xa5, sizeof p);
            r.read_into(p);
            if (!check_pose(&p, stored)) return 2;
            if (p.seq == last) {
                if (++spins > UINT64_C(100000000)) { std::printf("BAD no new value\n"); return 2; }
                continue;
            }
            if (p.seq < last) { std::printf("BAD went back\n"); return 2; }
            last = p.seq;
            distinct++;
        }
    } catch (const std::exception &e) {
        std::printf("BAD %s\n", e.what());
        return 2;
    }
    std::printf("done %llu\n", static_cast<unsigned long long>(distinct));
    return 0;
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The readers of `version` in `dir`: (C, C++, C stream), compiled against that version's
/// header.
fn build(dir: &Path, version: u32) -> (PathBuf, PathBuf, PathBuf) {
    let vdir = dir.join(format!("v{version}"));
    std::fs::create_dir_all(&vdir).unwrap();
    let header = Command::new(example(version))
        .arg("header")
        .output()
        .unwrap();
    assert!(header.status.success());
    std::fs::write(vdir.join("pose.h"), &header.stdout).unwrap();
    let mut exes = Vec::new();
    for (compiler, std, source, file) in [
        ("cc", "-std=c11", C_READER, "reader.c"),
        ("c++", "-std=c++17", CXX_READER, "reader.cpp"),
        ("cc", "-std=c11", C_STREAM, "stream.c"),
    ] {
        std::fs::write(vdir.join(file), source.replace("CHECKS", CHECKS)).unwrap();
        let exe = vdir.join(format!("{file}.exe"));
        let out = Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-Werror", "-O2"])
            .arg(format!("-DVERSION={version}"))
            .arg("-I")
            .arg(workspace().join("include"))
            .arg("-I")
            .arg(&vdir)
            .arg(vdir.join(file))
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{compiler} v{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        exes.push(exe);
    }
    (exes[0].clone(), exes[1].clone(), exes[2].clone())
}

const VALUES: u64 = 5_000;

/// A Rust writer of version `writer`; the C and C++ `readers` of every version, each reporting
/// the case `compat[reader - 1]` and checking VALUES distinct values.
fn pairing(readers: &[(PathBuf, PathBuf, PathBuf)], writer: u32, compat: [&str; 3]) {
    let name = Name::new("upgrade-langs");
    let stream = Name::new("upgrade-langs-stream");
    let mut w = Program::start(Path::new(example(writer)), &["create", &name.0]);
    assert_eq!(w.line(), "ready");
    let mut tx = Program::start(Path::new(example(writer)), &["stream", &stream.0]);
    assert_eq!(tx.line(), "ready");
    let stored = writer.to_string();
    let count = VALUES.to_string();
    let mut running = Vec::new();
    for (i, (c, cxx, rx)) in readers.iter().enumerate() {
        for exe in [c, cxx] {
            running.push(Program::start(exe, &[&name.0, &stored, compat[i], &count]));
        }
        running.push(Program::start(rx, &[&stream.0, &stored, compat[i], &count]));
    }
    for (i, p) in running.iter_mut().enumerate() {
        assert_eq!(p.line(), format!("compat {}", compat[i / 3]), "{}", p.what);
        assert_eq!(p.line(), format!("done {VALUES}"), "{}", p.what);
    }
    for p in running {
        assert_eq!(p.exit_code(), Some(0));
    }
}

/// The same pairings as the Rust processes of `tests/upgrade.rs`: writers of v1, v2 and v3,
/// each with a C and a C++ reader of every version, and a stream of each version with a C
/// stream reader of every version.
#[test]
fn c_and_cxx_readers_of_every_version_with_writers_of_every_version() {
    let dir = Name::dir("upgrade-langs");
    let readers: Vec<_> = (1..=3).map(|v| build(dir.path(), v)).collect();
    pairing(&readers, 1, ["Exact", "SegmentOlder", "SegmentOlder"]);
    pairing(&readers, 2, ["SegmentNewer", "Exact", "SegmentOlder"]);
    pairing(&readers, 3, ["SegmentNewer", "SegmentNewer", "Exact"]);
}
