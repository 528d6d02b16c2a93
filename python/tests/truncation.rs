//! The Python module `shm_state` survives a segment shrunk under its mappings, whatever SIGBUS
//! handler the interpreter installed first: under pytest (which enables `faulthandler`) and
//! under `python3 -X faulthandler`, a `Reader` and a `StreamReader` get a clean `ShmError`;
//! and with the C library `libshm_ffi.so` loaded into the same interpreter (a second copy of
//! the runtime, with its own SIGBUS handler), faults in the mappings of either copy are
//! reported by that copy, whichever handler is installed first. `faulthandler` enabled after
//! the first mapping (so the guard goes back in front of it at the next one) still reports a
//! foreign SIGBUS once, and the process dies of it, as without the guard.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;
#[path = "../../shm-core/tests/lang/mod.rs"]
mod lang;

use common::Name;
use lang::TempDir;
use shm_core::SharedState;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the segments hold.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pose {
    tick: u64,
    pos: [f64; 3],
}

const POSE: Pose = Pose {
    tick: 1,
    pos: [1.0, 2.0, 3.0],
};

/// A library this `cargo test` built (`libshm_state.so`, `libshm_ffi.so`): beside the test
/// binary in deps/, or one directory up where `cargo build` copies it.
fn built_library(file: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join(file))
        .find(|l| l.exists())
        .unwrap_or_else(|| panic!("{file} was not built in {}", deps.display()))
}

/// A directory holding the extension module as `shm_state.so` and `script` as `test_shrink.py`.
fn python_dir(tag: &str, script: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::copy(
        built_library("libshm_state.so"),
        dir.path().join("shm_state.so"),
    )
    .unwrap();
    std::fs::write(dir.path().join("test_shrink.py"), script).unwrap();
    dir
}

/// How much output a run may print: a handler that reports every one of our faults as a
/// crash and returns repeats forever, and must fail the test rather than hang it.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Runs `python3 args...` in `dir` with `env`; kills it once it has printed more than
/// [`OUTPUT_LIMIT`] bytes or run two minutes. Returns whether it exited successfully, and its
/// output (stdout then stderr, each cut to the limit).
fn run_python(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.args(args)
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run python3");
    let printed = Arc::new(AtomicUsize::new(0));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        let printed = Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                printed.fetch_add(n, Ordering::Relaxed);
                if kept.len() < OUTPUT_LIMIT {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let (ok, why) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (
                status.success(),
                format!("{status:?}, signal {:?}", status.signal()),
            );
        }
        let n = printed.load(Ordering::Relaxed);
        if n > OUTPUT_LIMIT || start.elapsed() > Duration::from_secs(120) {
            common::kill(&mut child);
            break (false, format!("killed after printing {n} bytes"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = format!(
        "{why}\n--- stdout\n{}\n--- stderr\n{}",
        out.join().unwrap(),
        err.join().unwrap()
    );
    (ok, text)
}

/// Tests for pytest, also runnable as a plain script. Each shrinks a segment the Rust side
/// created (`SHM_STATE`, `SHM_STREAM`) under a reader of its own.
const SHRINK_PY: &str = r#"
import os
import shm_state


def shrink(name):
    os.truncate("/dev/shm" + name, 0)


def expect_truncated(call):
    try:
        call()
    except shm_state.ShmError as e:
        assert "truncated" in str(e), e
        return
    raise AssertionError("no ShmError")


def test_reader_reports_the_truncation():
    name = os.environ["SHM_STATE"]
    r = shm_state.Reader(name)
    assert r.read()["tick"] == 1
    shrink(name)
    expect_truncated(r.try_read)
    expect_truncated(lambda: r.read(0.01))


def test_stream_reader_reports_the_truncation():
    name = os.environ["SHM_STREAM"]
    rx = shm_state.StreamReader(name, from_oldest=True)
    shrink(name)
    expect_truncated(rx.try_recv)


if __name__ == "__main__":
    test_reader_reports_the_truncation()
    test_stream_reader_reports_the_truncation()
    print("outcome ok")
"#;

/// A state segment and a stream segment holding one message, for [`SHRINK_PY`].
fn segments() -> (Name, Name) {
    let state = Name::new("py-shrink");
    let stream = Name::new("py-shrink-stream");
    drop(Pose::create(&state, &POSE).unwrap());
    let mut tx = Pose::create_stream(&stream, 64).unwrap();
    tx.send(&POSE);
    drop(tx);
    (state, stream)
}

#[test]
fn under_pytest_a_shrunk_segment_raises_shm_error() {
    let dir = python_dir("py-pytest", SHRINK_PY);
    let (state, stream) = segments();
    let (ok, text) = run_python(
        dir.path(),
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_shrink.py",
        ],
        &[("SHM_STATE", &state), ("SHM_STREAM", &stream)],
    );
    assert!(ok && text.contains("2 passed"), "{text}");
}

#[test]
fn under_python_faulthandler_a_shrunk_segment_raises_shm_error() {
    let dir = python_dir("py-faulthandler", SHRINK_PY);
    let (state, stream) = segments();
    let (ok, text) = run_python(
        dir.path(),
        &["-X", "faulthandler", "test_shrink.py"],
        &[("SHM_STATE", &state), ("SHM_STREAM", &stream)],
    );
    assert!(ok && text.contains("outcome ok"), "{text}");
}

/// Two copies of the runtime in one interpreter: `shm_state` and `libshm_ffi.so` (through
/// ctypes). Each shrinks a segment under a reader of one copy while the other copy's handler
/// is installed first, in both orders.
const TWO_RUNTIMES_PY: &str = r#"
import ctypes
import os
import sys
import shm_state

ffi = ctypes.CDLL(sys.argv[1])
ffi.shm_ffi_reader_open.argtypes = [
    ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64,
    ctypes.POINTER(ctypes.c_void_p),
]
ffi.shm_ffi_reader_try_read.argtypes = [
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
]
ffi.shm_ffi_reader_payload_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
ffi.shm_ffi_reader_close.argtypes = [ctypes.c_void_p]
TRUNCATED = 9
names = sys.argv[2:]


def shrink(name):
    os.truncate("/dev/shm" + name, 0)


def ffi_reader(name):
    r = ctypes.c_void_p()
    assert ffi.shm_ffi_reader_open(name.encode(), None, 0, 0, ctypes.byref(r)) == 0
    return r


def ffi_try_read(r):
    size = ctypes.c_size_t()
    assert ffi.shm_ffi_reader_payload_size(r, ctypes.byref(size)) == 0
    buf = ctypes.create_string_buffer(size.value)
    return ffi.shm_ffi_reader_try_read(r, buf, size.value, None)


def py_expect_truncated(r):
    try:
        r.try_read()
    except shm_state.ShmError as e:
        assert "truncated" in str(e), e
        return
    raise AssertionError("no ShmError")


# shm_state maps first (its handler is installed), then the C library (its handler goes in
# front, chaining to shm_state's).
p1 = shm_state.Reader(names[0])
c1 = ffi_reader(names[1])
shrink(names[0])
py_expect_truncated(p1)  # shm_state's fault, through the C library's handler
shrink(names[1])
assert ffi_try_read(c1) == TRUNCATED  # the C library's own
# shm_state maps again: the C library's handler stays in front (a copy never goes in front of
# another after its first installation), and still chains to shm_state's.
c2 = ffi_reader(names[2])
p2 = shm_state.Reader(names[3])
shrink(names[2])
assert ffi_try_read(c2) == TRUNCATED  # the C library's fault, through shm_state's handler
shrink(names[3])
py_expect_truncated(p2)
for r in (c1, c2):
    assert ffi.shm_ffi_reader_close(r) == 0
print("outcome ok")
"#;

#[test]
fn two_runtimes_in_one_interpreter_each_report_their_own_truncations() {
    let dir = python_dir("py-two-runtimes", TWO_RUNTIMES_PY);
    let ffi = built_library("libshm_ffi.so");
    let names: Vec<Name> = (0..4).map(|_| Name::new("py-two")).collect();
    for n in &names {
        drop(Pose::create(n, &POSE).unwrap());
    }
    let mut args = vec!["test_shrink.py", ffi.to_str().unwrap()];
    args.extend(names.iter().map(|n| &**n));
    for faulthandler in [false, true] {
        let mut args = args.clone();
        if faulthandler {
            args.splice(0..0, ["-X", "faulthandler"]);
        }
        for n in &names {
            let _ = shm_core::remove(n);
            drop(Pose::create(n, &POSE).unwrap());
        }
        let (ok, text) = run_python(dir.path(), &args, &[]);
        assert!(ok && text.contains("outcome ok"), "{text}");
    }
}

/// `faulthandler` enabled between two mappings: the guard's handler goes back in front of it at
/// the second. A fault in a segment stays the module's; a foreign SIGBUS (a shrunk `mmap` of
/// the script's own) reaches `faulthandler`, which removes itself (restoring the guard's older
/// installation), prints its report and raises the signal again: the process must die of
/// SIGBUS after one report, not loop.
const FAULTHANDLER_LATER_PY: &str = r#"
import faulthandler
import mmap
import os
import sys
import tempfile
import shm_state

first = shm_state.Reader(sys.argv[1])
faulthandler.enable()
second = shm_state.Reader(sys.argv[2])
os.truncate("/dev/shm" + sys.argv[2], 0)
try:
    second.try_read()
    raise AssertionError("no ShmError")
except shm_state.ShmError as e:
    assert "truncated" in str(e), e
print("our fault ok", flush=True)
with tempfile.TemporaryFile() as f:
    f.truncate(8192)
    m = mmap.mmap(f.fileno(), 8192)
    f.truncate(0)
    print("foreign fault", flush=True)
    m[4096]
print("survived the foreign fault", flush=True)
"#;

#[test]
fn faulthandler_enabled_after_the_first_mapping_reports_a_foreign_sigbus_once() {
    let dir = python_dir("py-faulthandler-later", FAULTHANDLER_LATER_PY);
    let names: Vec<Name> = (0..2).map(|_| Name::new("py-fh-later")).collect();
    for n in &names {
        drop(Pose::create(n, &POSE).unwrap());
    }
    let (ok, text) = run_python(dir.path(), &["test_shrink.py", &names[0], &names[1]], &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("our fault ok"), "{text}");
    assert!(text.contains("foreign fault"), "{text}");
    assert!(!text.contains("survived"), "{text}");
    assert!(
        text.contains(&format!("signal Some({})", libc::SIGBUS)),
        "{text}"
    );
    assert_eq!(
        text.matches("Fatal Python error: Bus error").count(),
        1,
        "{text}"
    );
}
