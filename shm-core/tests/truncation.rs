//! A peer shrinks a segment's file under live readers and a live writer, each in its own
//! process: they get `Error::Truncated` from their bounded calls and keep running, instead of
//! dying of SIGBUS. A fault outside the library's mappings still kills the process (and still
//! reaches a handler installed before the library's), and without the guard the same
//! truncation kills a reader.

mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Error, SharedState};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

/// 16 KiB payload: the slots span several pages, so a shrink to one page or to the header
/// leaves part of the segment mapped and part lost.
const W: usize = 2048;
type Payload = [u64; W];

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("reader") => reader(),
        Some("unguarded-reader") => {
            shm_core::__private::hooks::disable_truncation_guard();
            reader();
        }
        Some("writer") => writer(),
        Some("own-mapping") => fault_in_own_mapping(false),
        Some("own-mapping-with-handler") => fault_in_own_mapping(true),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// How long a child keeps trying before it reports failure (a hang fails the test).
const CHILD_LIMIT: Duration = Duration::from_secs(20);

/// Opens the segment, says "ready", then exercises every read call until the bounded ones
/// report `Truncated`; then shows it still runs (more calls, `read` returns a value) and
/// exits normally.
fn reader() {
    let r = Payload::open(&env("SHM_NAME")).expect("open");
    println!("ready");
    let start = Instant::now();
    let mut seen = [false; 3];
    let mut since = r.version();
    while !seen.iter().all(|&s| s) {
        assert!(start.elapsed() < CHILD_LIMIT, "no Truncated: {seen:?}");
        match r.try_read() {
            Err(Error::Truncated { .. }) => seen[0] = true,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("try_read: {e}"),
        }
        match r.read_timeout(Duration::from_millis(5)) {
            Err(Error::Truncated { .. }) => seen[1] = true,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("read_timeout: {e}"),
        }
        match r.wait_for_update(since, Duration::from_millis(5)) {
            Err(Error::Truncated { .. }) => seen[2] = true,
            Ok(v) => since = v,
            Err(Error::Timeout) => {}
            Err(e) => panic!("wait_for_update: {e}"),
        }
        let _ = r.version();
    }
    assert!(r.is_truncated());
    // Still alive, and the unbounded calls return.
    let v: Box<Payload> = Box::new(r.read());
    let _ = v[0];
    let _ = r.version();
    let _ = r.info().writer().alive();
    let e = r.try_read().unwrap_err();
    assert!(e.to_string().starts_with("segment is truncated"), "{e}");
    println!("outcome truncated");
}

/// Takes over the segment, says "ready", and writes until the segment is found truncated;
/// then shows that writing still does not kill it and that `try_update` reports it.
fn writer() {
    let mut w = Payload::open_writer(&env("SHM_NAME")).expect("take over");
    let mut value: Box<Payload> = Box::new([0; W]);
    println!("ready");
    let start = Instant::now();
    while !w.is_truncated() {
        assert!(start.elapsed() < CHILD_LIMIT, "never saw the truncation");
        value.fill(w.version() + 1);
        w.write(&value);
        std::thread::sleep(Duration::from_micros(200));
    }
    for _ in 0..100 {
        w.write(&value);
    }
    assert!(matches!(
        w.try_update(|v| v[0] += 1),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(w.get(), Err(Error::Truncated { .. })));
    println!("outcome truncated");
}

/// Maps a file of its own, shrinks it and touches the lost page: a real bug of the program's,
/// which must kill it with SIGBUS although the guard is installed (a segment is open). With
/// `with_handler`, a SIGBUS handler installed before the library's exits with code 42 instead,
/// showing that the library chains it.
fn fault_in_own_mapping(with_handler: bool) {
    if with_handler {
        extern "C" fn previous(_: libc::c_int) {
            // SAFETY: `_exit` is async-signal-safe and has no preconditions.
            unsafe { libc::_exit(42) };
        }
        // SAFETY: all-zero bytes are a valid `sigaction` (empty mask, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = previous as extern "C" fn(libc::c_int) as usize;
        // SAFETY: `sa` is a valid action whose handler only calls `_exit`.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
        assert_eq!(rc, 0);
    }
    // Installs the guard.
    let _r = Payload::open(&env("SHM_NAME")).expect("open");
    let path = std::env::temp_dir().join(format!("shmtest-own-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.set_len(8192).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of 8192 bytes of an open file; no Rust object lives there.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    f.set_len(0).unwrap();
    println!("touching");
    // SAFETY: `p` is a live mapping of 8192 bytes; the file behind it is now empty, so this
    // load faults with SIGBUS, which is the point.
    let x = unsafe { std::ptr::read_volatile((p as *const u8).add(4096)) };
    println!("outcome survived {x}");
}

/// Waits for `child` to print `ready`.
fn wait_ready(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        if line.trim() == "ready" {
            return out;
        }
    }
}

/// Waits for `child` to exit, at most `limit` (then kills it and fails).
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            kill(child);
            panic!("child hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rest(mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut out, &mut s).unwrap();
    s
}

/// Shrinks the segment to `size` under two reader processes and one writer process.
fn shrink_under_live_processes(tag: &str, size: u64) {
    let name = Name::new(tag);
    let initial: Box<Payload> = Box::new([7; W]);
    drop(Payload::create(&name, &initial).unwrap());
    let env = [("SHM_NAME", name.to_string())];
    let mut children: Vec<Child> = ["reader", "reader", "writer"]
        .iter()
        .map(|r| spawn_role(ENTRY, r, &env))
        .collect();
    let outs: Vec<_> = children.iter_mut().map(wait_ready).collect();
    std::thread::sleep(Duration::from_millis(50));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{}", &*name))
        .unwrap();
    assert!(
        f.metadata().unwrap().len() > 4 * 4096,
        "the segment spans several pages"
    );
    f.set_len(size).unwrap();
    for (child, out) in children.iter_mut().zip(outs) {
        let status = wait_exit(child, Duration::from_secs(30));
        let text = rest(out);
        assert!(
            status.success(),
            "a child died after the shrink to {size}: {status:?}: {text}"
        );
        assert!(text.contains("outcome truncated"), "{text}");
    }
}

#[test]
fn shrink_to_zero_under_live_readers_and_writer() {
    if role().is_some() {
        return;
    }
    shrink_under_live_processes("trunc0", 0);
}

#[test]
fn shrink_to_one_page_under_live_readers_and_writer() {
    if role().is_some() {
        return;
    }
    shrink_under_live_processes("trunc-page", 4096);
}

#[test]
fn shrink_to_the_header_under_live_readers_and_writer() {
    if role().is_some() {
        return;
    }
    shrink_under_live_processes("trunc-header", 256);
}

#[test]
fn without_the_guard_a_shrink_kills_the_reader() {
    if role().is_some() {
        return;
    }
    let name = Name::new("unguarded");
    let initial: Box<Payload> = Box::new([7; W]);
    let _w = Payload::create(&name, &initial).unwrap();
    let mut child = spawn_role(ENTRY, "unguarded-reader", &[("SHM_NAME", name.to_string())]);
    let out = wait_ready(&mut child);
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{}", &*name))
        .unwrap()
        .set_len(0)
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let text = rest(out);
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}: {text}");
}

#[test]
fn a_fault_outside_our_mappings_still_kills_with_sigbus() {
    if role().is_some() {
        return;
    }
    let name = Name::new("own-fault");
    let _w = Payload::create(&name, &Box::new([1; W])).unwrap();
    let mut child = spawn_role(ENTRY, "own-mapping", &[("SHM_NAME", name.to_string())]);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let text = rest(BufReader::new(child.stdout.take().unwrap()));
    assert!(text.contains("touching"), "{text}");
    assert!(!text.contains("survived"), "{text}");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
}

#[test]
fn a_fault_outside_our_mappings_reaches_the_previous_handler() {
    if role().is_some() {
        return;
    }
    let name = Name::new("own-fault-h");
    let _w = Payload::create(&name, &Box::new([1; W])).unwrap();
    let mut child = spawn_role(
        ENTRY,
        "own-mapping-with-handler",
        &[("SHM_NAME", name.to_string())],
    );
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(42), "{status:?}");
}
