//! Rolling upgrades in Python: the real `python3`, given the generated module of one version
//! of an appendable `Pose` (32, 40 and 56 bytes, as in the example `upgrade_v1` to `v3`),
//! opens a Rust writer's segment of every version, reports the compatibility case, and checks
//! every field: `read` decodes the longer of the two layouts (the fields the segment lacks as
//! zero), and the generated ctypes structure, filled with 0xa5 before `read_into`, holds the
//! common prefix and zero after it. A stream of each version is read the same way, message by
//! message.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;

use common::Name;
use lang::TempDir;
use shm_core::SharedState;
use std::process::Command;

mod v1 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        pub seq: u64,
        pub x: f64,
        pub y: f64,
        pub check: u64,
    }
}

mod v2 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "PoseExt", appendable)]
    pub struct Ext {
        pub z: f64,
    }
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        pub seq: u64,
        pub x: f64,
        pub y: f64,
        pub check: u64,
        pub ext: Ext,
    }
}

mod v3 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "PoseExt", appendable)]
    pub struct Ext {
        pub z: f64,
        pub w: u64,
    }
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        pub seq: u64,
        pub x: f64,
        pub y: f64,
        pub check: u64,
        pub ext: Ext,
        pub tail: u64,
    }
}

const SEQ: u64 = 123_456_789;

fn x(s: u64) -> f64 {
    s as f64 * 0.5
}
fn y(s: u64) -> f64 {
    -(s as f64) - 0.25
}
fn check(s: u64) -> u64 {
    s.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x0123_4567
}

const SCRIPT: &str = r#"
import ctypes
import importlib
import sys
import shm_state

name, stored, program, compat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
seq, stream = int(sys.argv[5]), sys.argv[6]
M = (1 << 64) - 1
x, y = seq * 0.5, -float(seq) - 0.25
check = ((seq * 0x9e3779b97f4a7c15) & M) ^ 0x01234567
z, w, tail = seq * 3.0, ~seq & M, ((seq << 17) | (seq >> 47)) & M
def want(value, since):
    return value if stored >= since else 0

mod = importlib.import_module(f"pose_v{program}")
r = shm_state.Reader(name, mod)
assert r.compat == compat, (r.compat, compat)
assert shm_state.Reader(name).compat is None

# Decoded by the longer layout: fields the segment lacks read as zero.
def check_dict(v):
    longer = max(stored, program)
    keys = ["seq", "x", "y", "check"] + (["ext"] if longer >= 2 else []) + (["tail"] if longer >= 3 else [])
    assert list(v) == keys, v
    assert (v["seq"], v["x"], v["y"], v["check"]) == (seq, x, y, check), v
    if longer >= 2:
        assert v["ext"]["z"] == want(z, 2), v
    if longer >= 3:
        assert (v["ext"]["w"], v["tail"]) == (want(w, 3), want(tail, 3)), v

# The program's own type: the common prefix, zero after it.
def check_struct(s):
    assert (s.seq, s.x, s.y, s.check) == (seq, x, y, check)
    if program >= 2:
        assert s.ext.z == want(z, 2), s.ext.z
    if program >= 3:
        assert (s.ext.w, s.tail) == (want(w, 3), want(tail, 3)), (s.ext.w, s.tail)

def poisoned():
    s = mod.Pose()
    ctypes.memset(ctypes.addressof(s), 0xA5, ctypes.sizeof(s))
    return s

v = r.read()
check_dict(v)
assert r.try_read() == v
s = poisoned()
r.read_into(s)
check_struct(s)
b = r.read_bytes()
assert len(b) == mod.SIZE == ctypes.sizeof(s) and b == bytes(s)

# Streams: the same for every message (three were sent).
rx = shm_state.StreamReader(stream, mod, from_oldest=True)
assert rx.compat == compat, (rx.compat, compat)
assert shm_state.StreamReader(stream).compat is None
check_dict(rx.recv(timeout=10))
s = poisoned()
rx.recv_into(s, timeout=10)
check_struct(s)
n, b = rx.recv_bytes(timeout=10)
assert n == 3 and b == bytes(s), (n, b)
print("ok", r.compat)
"#;

#[test]
fn python_reads_every_version_of_an_appendable_type_from_rust_writers_of_every_version() {
    let dir = lang_dir();
    let path = dir.path();
    std::fs::write(
        path.join("pose_v1.py"),
        shm_core::export::python::<v1::Pose>(),
    )
    .unwrap();
    std::fs::write(
        path.join("pose_v2.py"),
        shm_core::export::python::<v2::Pose>(),
    )
    .unwrap();
    std::fs::write(
        path.join("pose_v3.py"),
        shm_core::export::python::<v3::Pose>(),
    )
    .unwrap();
    std::fs::write(path.join("script.py"), SCRIPT).unwrap();
    let s = SEQ;
    let names = [Name::new("pyup"), Name::new("pyup"), Name::new("pyup")];
    let streams = [
        Name::new("pyup-stream"),
        Name::new("pyup-stream"),
        Name::new("pyup-stream"),
    ];
    let base = v1::Pose {
        seq: s,
        x: x(s),
        y: y(s),
        check: check(s),
    };
    let _w1 = v1::Pose::create(&names[0], &base).unwrap();
    let mut tx1 = v1::Pose::create_stream(&streams[0], 8).unwrap();
    let ext2 = v2::Ext { z: s as f64 * 3.0 };
    let v2 = v2::Pose {
        seq: s,
        x: x(s),
        y: y(s),
        check: check(s),
        ext: ext2,
    };
    let _w2 = v2::Pose::create(&names[1], &v2).unwrap();
    let mut tx2 = v2::Pose::create_stream(&streams[1], 8).unwrap();
    let v3 = v3::Pose {
        seq: s,
        x: x(s),
        y: y(s),
        check: check(s),
        ext: v3::Ext {
            z: s as f64 * 3.0,
            w: !s,
        },
        tail: s.rotate_left(17),
    };
    let _w3 = v3::Pose::create(&names[2], &v3).unwrap();
    let mut tx3 = v3::Pose::create_stream(&streams[2], 8).unwrap();
    for _ in 0..3 {
        tx1.send(&base);
        tx2.send(&v2);
        tx3.send(&v3);
    }
    let case = |stored: usize, program: usize| match stored.cmp(&program) {
        std::cmp::Ordering::Equal => "Exact",
        std::cmp::Ordering::Less => "SegmentOlder",
        std::cmp::Ordering::Greater => "SegmentNewer",
    };
    for stored in 1..=3 {
        for program in 1..=3 {
            let out = Command::new("python3")
                .arg(path.join("script.py"))
                .args([
                    &names[stored - 1].0,
                    &stored.to_string(),
                    &program.to_string(),
                    case(stored, program),
                    &SEQ.to_string(),
                    &streams[stored - 1].0,
                ])
                .env("PYTHONPATH", path)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "a v{program} reader of a v{stored} segment:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout.trim(), format!("ok {}", case(stored, program)));
        }
    }
}

/// A directory holding the extension module this build made (as `shm_state.so`).
fn lang_dir() -> TempDir {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let lib = [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libshm_state.so"))
        .find(|l| l.exists())
        .unwrap_or_else(|| panic!("libshm_state.so was not built in {}", deps.display()));
    let dir = TempDir::new("pyup");
    std::fs::copy(&lib, dir.path().join("shm_state.so")).unwrap();
    dir
}
