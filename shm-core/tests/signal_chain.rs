//! The SIGBUS guard owns its signal: its own faults never reach another handler (installed
//! before or after it), every other SIGBUS does, exactly as without the guard; threads that
//! fault at once all survive; a SIGBUS sent with `kill` keeps its usual effect and leaves the
//! guard working; std still reports a stack overflow; and more mappings than the table's
//! first chunk holds are all guarded. Each claim is checked in its own child process, since a
//! signal disposition belongs to the whole process.

mod common;

use common::{env, kill, role, Name, ENTRY, ROLE};
use shm_core::{Error, SharedState};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// 16 KiB payload: the segment spans several pages.
const W: usize = 2048;
type Payload = [u64; W];

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("counter-before") => counter_before(),
        Some("counter-after") => counter_after(),
        Some("threads") => threads(
            env("THREADS").parse().unwrap(),
            env("ROUNDS").parse().unwrap(),
        ),
        Some("kill-default") => kill_with_default_disposition(),
        Some("kill-then-truncate") => kill_then_truncate(),
        Some("overflow") => overflow(),
        Some("many") => many_mappings(env("MAPPINGS").parse().unwrap()),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// How many SIGBUS signals the counting handler saw.
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// A crash-reporter-style handler: counts every SIGBUS; for a fault, maps a zero page over the
/// faulting page so that the access succeeds when it repeats.
extern "C" fn counting_handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    COUNT.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid `siginfo_t` to a SA_SIGINFO handler.
    let info = unsafe { &*info };
    if info.si_code > 0 {
        // SAFETY: for a SIGBUS fault the kernel fills in `si_addr`.
        let addr = unsafe { info.si_addr() } as usize & !4095;
        // SAFETY: the page lies in the test's own mapping of a truncated file (the only
        // foreign faults these tests cause); replacing it changes what it reads, nothing else.
        unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
    }
}

fn install_counting_handler() {
    // SAFETY: all-zero bytes are a valid `sigaction` (empty mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = counting_handler as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa` is a valid action whose handler only touches an atomic and calls `mmap`.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// Truncates a fresh segment under a fresh reader `rounds` times; every read must report
/// `Truncated`.
fn fault_in_our_mappings(rounds: usize) {
    for _ in 0..rounds {
        let name = Name::new("chain");
        drop(Payload::create(&name, &Box::new([3; W])).unwrap());
        let r = Payload::open(&name).unwrap();
        shrink(&name, 0);
        assert!(matches!(r.try_read(), Err(Error::Truncated { .. })));
    }
}

fn shrink(name: &str, size: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
        .set_len(size)
        .unwrap();
}

/// A fault that is not ours: a mapping of the program's own file, shrunk, then read.
fn foreign_fault() -> u8 {
    let path = std::env::temp_dir().join(format!("shmtest-foreign-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.set_len(8192).unwrap();
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
    // SAFETY: `p` is a live mapping of 8192 bytes; the file behind it is now empty, so this
    // load faults with SIGBUS, which is the point.
    unsafe { std::ptr::read_volatile((p as *const u8).add(4096)) }
}

/// Sends SIGBUS to this process with `kill` and waits (bounded) until `seen` says it arrived.
fn kill_self_and_wait(seen: impl Fn() -> bool) {
    // SAFETY: `kill` with our own pid has no preconditions.
    unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
    for _ in 0..10_000 {
        if seen() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the sent SIGBUS never reached the handler");
}

/// A counting handler installed before the first mapping sees none of our faults, and sees a
/// foreign fault and a sent signal.
fn counter_before() {
    install_counting_handler();
    fault_in_our_mappings(300);
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        0,
        "the handler saw our faults"
    );
    assert_eq!(foreign_fault(), 0);
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        1,
        "the foreign fault did not reach it"
    );
    kill_self_and_wait(|| COUNT.load(Ordering::SeqCst) == 2);
    fault_in_our_mappings(10);
    assert_eq!(COUNT.load(Ordering::SeqCst), 2);
    println!("outcome ok");
}

/// A counting handler installed after the first mapping is chained once the next mapping is
/// made: it sees none of the faults in mappings made since, and every foreign one.
fn counter_after() {
    let name = Name::new("first");
    drop(Payload::create(&name, &Box::new([3; W])).unwrap());
    let _first = Payload::open(&name).unwrap();
    install_counting_handler();
    fault_in_our_mappings(300);
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        0,
        "the handler saw our faults"
    );
    assert_eq!(foreign_fault(), 0);
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        1,
        "the foreign fault did not reach it"
    );
    kill_self_and_wait(|| COUNT.load(Ordering::SeqCst) == 2);
    println!("outcome ok");
}

/// `threads` threads, each with its own reader of a segment shrunk to nothing, call
/// `try_read` at the same moment, `rounds` times with fresh segments and readers.
fn threads(threads: usize, rounds: usize) {
    let barrier = std::sync::Barrier::new(threads);
    for _ in 0..rounds {
        let name = Name::new("threads");
        drop(Payload::create(&name, &Box::new([3; W])).unwrap());
        let readers: Vec<_> = (0..threads)
            .map(|_| Payload::open(&name).unwrap())
            .collect();
        shrink(&name, 0);
        std::thread::scope(|s| {
            for r in &readers {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..4 {
                        assert!(matches!(r.try_read(), Err(Error::Truncated { .. })));
                    }
                });
            }
        });
    }
    println!("outcome ok");
}

/// With SIGBUS's default disposition before the first mapping, a SIGBUS sent with `kill`
/// kills the process, as without the guard.
fn kill_with_default_disposition() {
    // SAFETY: all-zero bytes are a valid `sigaction`; SIG_DFL is 0.
    let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `dfl` is the default disposition.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    fault_in_our_mappings(3);
    println!("killing");
    kill_self_and_wait(|| false);
}

/// std's SIGBUS handler (a function) was installed first: a SIGBUS sent with `kill` goes to it
/// (it resets SIGBUS to the default and returns, so the process lives on, as without the
/// guard), and the guard keeps working: later truncations are still caught.
fn kill_then_truncate() {
    fault_in_our_mappings(3);
    // SAFETY: `kill` with our own pid has no preconditions. With the calling thread not
    // blocking SIGBUS, the kernel delivers it to this thread before `kill` returns.
    unsafe { libc::kill(libc::getpid(), libc::SIGBUS) };
    fault_in_our_mappings(50);
    println!("outcome ok");
}

/// A real stack overflow after the guard is installed: std must still report it.
fn overflow() {
    fault_in_our_mappings(3);
    fn recurse(n: u64) -> u64 {
        if n == u64::MAX {
            return 0;
        }
        let buf = [n; 512];
        std::hint::black_box(&buf);
        recurse(n + 1).wrapping_add(buf[(n % 512) as usize])
    }
    println!("{}", recurse(0));
}

/// More mappings than the table's first chunk (1024) holds: all guarded.
fn many_mappings(n: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let want = (n as libc::rlim_t + 64).min(lim.rlim_max);
    if lim.rlim_cur < want {
        lim.rlim_cur = want;
        // SAFETY: `lim` is a valid `rlimit` within the hard limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    }
    assert!(
        lim.rlim_cur >= n as libc::rlim_t + 64,
        "too few file descriptors: {lim:?}"
    );
    let name = Name::new("many");
    drop(Payload::create(&name, &Box::new([3; W])).unwrap());
    let readers: Vec<_> = (0..n).map(|_| Payload::open(&name).unwrap()).collect();
    shrink(&name, 0);
    for r in &readers {
        assert!(matches!(r.try_read(), Err(Error::Truncated { .. })));
        assert!(r.is_truncated());
    }
    println!("outcome ok {}", readers.len());
}

/// Runs this binary in `role` with `env`; returns its status, stdout and stderr. Kills it and
/// fails if it runs longer than two minutes.
fn run(role: &str, env: &[(&str, String)]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        ENTRY,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE, role)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            kill(&mut child);
            panic!("child role {role} hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    remove_segments_of(child.id());
    (
        status,
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

/// Removes the segments a child (which may have died) named after its pid (see `Name`).
fn remove_segments_of(pid: u32) {
    let infix = format!("-{pid}-");
    for entry in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with("shmtest-") && file.contains(&infix) {
            let _ = shm_core::remove(&format!("/{file}"));
        }
    }
}

fn assert_ok(role: &str, env: &[(&str, String)]) -> String {
    let (status, out, err) = run(role, env);
    assert!(
        status.success() && out.contains("outcome ok"),
        "{role}: {status:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

#[test]
fn a_handler_installed_before_ours_sees_none_of_our_faults_and_all_others() {
    if role().is_some() {
        return;
    }
    assert_ok("counter-before", &[]);
}

#[test]
fn a_handler_installed_after_ours_is_chained_from_the_next_mapping_on() {
    if role().is_some() {
        return;
    }
    assert_ok("counter-after", &[]);
}

#[test]
fn two_threads_faulting_at_once_survive() {
    if role().is_some() {
        return;
    }
    assert_ok(
        "threads",
        &[("THREADS", "2".into()), ("ROUNDS", "3000".into())],
    );
}

#[test]
fn eight_threads_faulting_at_once_survive() {
    if role().is_some() {
        return;
    }
    assert_ok(
        "threads",
        &[("THREADS", "8".into()), ("ROUNDS", "1500".into())],
    );
}

#[test]
fn a_sent_sigbus_with_the_default_disposition_kills_the_process() {
    if role().is_some() {
        return;
    }
    let (status, out, err) = run("kill-default", &[]);
    assert!(out.contains("killing"), "{status:?}: {out}{err}");
    assert_eq!(
        status.signal(),
        Some(libc::SIGBUS),
        "{status:?}: {out}{err}"
    );
}

#[test]
fn a_sent_sigbus_leaves_the_guard_working() {
    if role().is_some() {
        return;
    }
    assert_ok("kill-then-truncate", &[]);
}

#[test]
fn std_still_reports_a_stack_overflow() {
    if role().is_some() {
        return;
    }
    let (status, out, err) = run("overflow", &[]);
    assert!(
        err.contains("has overflowed its stack"),
        "{status:?}: {out}{err}"
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{status:?}: {out}{err}"
    );
}

#[test]
fn more_mappings_than_the_first_table_chunk_are_all_guarded() {
    if role().is_some() {
        return;
    }
    let out = assert_ok("many", &[("MAPPINGS", "1300".into())]);
    assert!(out.contains("outcome ok 1300"), "{out}");
}
