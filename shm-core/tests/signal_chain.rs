//! The SIGBUS guard owns its signal: its own faults never reach another handler (installed
//! before or after it), every other SIGBUS does, exactly as without the guard; threads that
//! fault at once all survive; a SIGBUS sent with `kill` keeps its usual effect and leaves the
//! guard working; std still reports a stack overflow; and more mappings than the table's
//! first chunk holds are all guarded. Several copies of the runtime in one process (here the
//! guard's source compiled three more times, as modules `copy_a`, `copy_b`, `copy_c`, beside
//! `shm_core` itself) chain to each other without loops, and a handler installed after ours
//! that removes itself by restoring its previous action runs once. A truncation is marked
//! before the zero pages appear, and a read-only mapping gets read-only ones. Each claim is
//! checked in its own child process, since a signal disposition belongs to the whole process;
//! every child that could loop is killed after a bound and fails the test.

mod common;

/// The operating-system layer the guard's source uses (`crate::sys`), for the copies below.
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../src/sys/linux.rs"]
mod sys;

/// Further copies of the guard, each with its own handler and statics, as a second static copy
/// of the runtime in a library would have.
macro_rules! guard_copy {
    ($name:ident) => {
        #[allow(dead_code)]
        #[path = "../src"]
        mod $name {
            // The point: the same source compiled again is a separate copy.
            #[allow(clippy::duplicate_mod)]
            pub mod fault;
        }
    };
}
guard_copy!(copy_a);
guard_copy!(copy_b);
guard_copy!(copy_c);

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
        Some("copies") => copies(&env("ORDER"), &env("ROOT"), &env("EVENT")),
        Some("later") => later_handler(&env("LATER")),
        Some("async-code") => async_code(&env("ROOT")),
        Some("read-only") => read_only(),
        Some("mark-first") => mark_before_zero_pages(),
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
    kill_this_thread();
    fault_in_our_mappings(50);
    println!("outcome ok");
}

/// A real stack overflow after the guard is installed: std must still report it. (On Linux an
/// overflow raises SIGSEGV, which the guard does not handle; this checks that installing the
/// guard leaves std's alternate stack and SIGSEGV handler working.)
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

/// Sends SIGBUS to the calling thread with `tgkill` (a sent signal, `SI_TKILL`): the kernel
/// delivers it to this thread before the call returns, since the thread does not block it.
fn kill_this_thread() {
    // SAFETY: `tgkill` to our own process and thread has no preconditions.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGBUS,
        )
    };
}

/// Queues SIGBUS with `si_code` to the calling thread (only a process itself can send a
/// positive code, which the kernel otherwise reserves for signals it raises); delivered before
/// the call returns.
fn queue_to_this_thread(code: libc::c_int) {
    // SAFETY: all-zero bytes are a valid `siginfo_t`.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    si.si_signo = libc::SIGBUS;
    si.si_code = code;
    // SAFETY: `si` is a valid `siginfo_t` for SIGBUS; the target is this thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGBUS,
            &si as *const libc::siginfo_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// Sets SIGBUS's disposition before any guard is installed: `std` leaves std's handler,
/// `dfl` the default, `ign` ignored.
fn set_root(root: &str) {
    let handler = match root {
        "std" => return,
        "dfl" => libc::SIG_DFL,
        "ign" => libc::SIG_IGN,
        other => panic!("unknown root {other}"),
    };
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler;
    // SAFETY: `sa` is the default or ignored disposition.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// 8192 bytes of an unlinked temporary file, mapped shared and writable.
struct FileMapping {
    file: std::fs::File,
    ptr: *const u8,
}

impl FileMapping {
    fn new() -> FileMapping {
        let path = std::env::temp_dir().join(format!(
            "shmtest-map-{}-{}",
            std::process::id(),
            MAPS.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.set_len(8192).unwrap();
        // SAFETY: a fresh shared mapping of 8192 bytes of an open file; no Rust object lives
        // there, and it is never unmapped (the child process ends instead).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        FileMapping {
            file,
            ptr: p as *const u8,
        }
    }

    /// Shrinks the file to nothing and reads the mapping's second page: a SIGBUS fault.
    fn shrink_and_read(&self) -> u8 {
        self.file.set_len(0).unwrap();
        // SAFETY: `ptr` is a live mapping of 8192 bytes, never unmapped; the file behind it is
        // empty, so this load faults (and reads zeros if a guard repairs the mapping).
        unsafe { std::ptr::read_volatile(self.ptr.add(4096)) }
    }
}

static MAPS: AtomicUsize = AtomicUsize::new(0);

/// One registration of a mapping with one copy of the guard: `A`, `B`, `C` (the copies
/// compiled into this test) or `D` (`shm_core` itself, through a reader of a segment).
/// `check` shrinks the mapping, reads it and says whether the copy reported the truncation.
struct Registration {
    copy: char,
    check: Box<dyn Fn() -> bool>,
}

fn register(copy: char) -> Registration {
    macro_rules! copy_guard {
        ($m:ident) => {{
            let map = FileMapping::new();
            let guard = $m::fault::Guard::new(map.ptr, 8192, true);
            Box::new(move || map.shrink_and_read() == 0 && guard.truncated())
                as Box<dyn Fn() -> bool>
        }};
    }
    let check = match copy {
        'A' => copy_guard!(copy_a),
        'B' => copy_guard!(copy_b),
        'C' => copy_guard!(copy_c),
        'D' => {
            let name = Name::new("copies");
            drop(Payload::create(&name, &Box::new([3; W])).unwrap());
            let r = Payload::open(&name).unwrap();
            Box::new(move || {
                shrink(&name, 0);
                matches!(r.try_read(), Err(Error::Truncated { .. }))
            })
        }
        other => panic!("unknown copy {other}"),
    };
    Registration { copy, check }
}

/// Registers mappings with the copies in `order` (each letter one registration, so `ABA`
/// installs A, then B in front of it, then registers with A again) over the root disposition
/// `root`; checks that a fault in every registration's mapping is reported by its copy; then
/// meets `event`: `fault` (a foreign fault: the process must die of SIGBUS, as without the
/// guards) or `kill` (a SIGBUS sent to the thread, twice, with a second round of our faults
/// in between, in a mapping registered before the first signal).
fn copies(order: &str, root: &str, event: &str) {
    set_root(root);
    let first: Vec<Registration> = order.chars().map(register).collect();
    let second: Vec<Registration> = order.chars().map(register).collect();
    for r in &first {
        assert!((r.check)(), "copy {}: our fault was not reported", r.copy);
    }
    println!("our faults ok");
    match event {
        "fault" => {
            println!("foreign fault");
            foreign_fault();
            println!("survived the foreign fault");
        }
        "kill" => {
            kill_this_thread();
            println!("survived the first signal");
            for r in &second {
                assert!((r.check)(), "copy {}: our fault was not reported", r.copy);
            }
            println!("our faults ok after the signal");
            kill_this_thread();
            println!("survived the second signal");
        }
        other => panic!("unknown event {other}"),
    }
}

/// How many times the later handler ran.
static LATER_CALLS: AtomicUsize = AtomicUsize::new(0);
/// Whether the later handler raises the signal again after restoring its previous action.
static LATER_RAISES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The replaced action, copied where the handler can read it without a lock.
static mut LATER_SAVED: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// A handler in the style of Python's `faulthandler` (restore the previous action, then raise
/// the signal again: `SA_NODEFER` delivers it at once) or of a crash reporter that did not
/// handle a signal (restore the previous action and return, so a fault repeats under it).
extern "C" fn later_handler_fn(sig: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    LATER_CALLS.fetch_add(1, Ordering::SeqCst);
    let msg = b"later handler ran\n";
    // SAFETY: `write` of a static buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    // SAFETY: `LATER_SAVED` was written before this handler was installed and never since.
    unsafe {
        libc::sigaction(
            libc::SIGBUS,
            std::ptr::addr_of!(LATER_SAVED).cast(),
            std::ptr::null_mut(),
        )
    };
    if LATER_RAISES.load(Ordering::SeqCst) {
        // SAFETY: `raise` has no preconditions.
        unsafe { libc::raise(sig) };
    }
}

fn install_later_handler(raises: bool) {
    LATER_RAISES.store(raises, Ordering::SeqCst);
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = later_handler_fn as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0);
    // SAFETY: the handler is not installed yet, so nothing reads `LATER_SAVED` now.
    unsafe { std::ptr::addr_of_mut!(LATER_SAVED).write(std::mem::MaybeUninit::new(old)) };
    // SAFETY: `sa` is a valid action whose handler only makes async-signal-safe calls.
    let rc = unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// A handler installed after ours (`raise`: restores its previous action and raises again;
/// `return`: restores it and returns), then another registration (ours goes in front of it):
/// our faults stay ours, and a foreign fault runs the later handler once and then kills the
/// process with SIGBUS, as without the guard.
fn later_handler(style: &str) {
    fault_in_our_mappings(1);
    install_later_handler(style == "raise");
    fault_in_our_mappings(20);
    assert_eq!(LATER_CALLS.load(Ordering::SeqCst), 0, "it saw our faults");
    println!("our faults ok");
    foreign_fault();
    println!("survived the foreign fault");
}

/// A SIGBUS the kernel raises but that does not repeat (`BUS_MCEERR_AO`, queued here with
/// that code) meets the previous action as without the guard: with the default it kills; with
/// std's handler (which resets SIGBUS to the default) the first is survived, the guard keeps
/// working, and the second kills.
fn async_code(root: &str) {
    set_root(root);
    fault_in_our_mappings(1);
    queue_to_this_thread(libc::BUS_MCEERR_AO);
    println!("survived the first signal");
    fault_in_our_mappings(5);
    println!("our faults ok after the signal");
    queue_to_this_thread(libc::BUS_MCEERR_AO);
    println!("survived the second signal");
}

/// How much of a child's stdout and stderr is kept: a child that loops printing must fail the
/// test, not fill the memory.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Reads `from` to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
fn read_bounded(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// A read-only mapping, truncated and read: the zero pages the guard maps are read-only too
/// (`/proc/self/maps` shows the page as `r--p`).
fn read_only() {
    let map = FileMapping::new();
    // SAFETY: `map.ptr` is the start of an 8192-byte mapping we own; read-only from now on.
    let rc = unsafe { libc::mprotect(map.ptr as *mut libc::c_void, 8192, libc::PROT_READ) };
    assert_eq!(rc, 0);
    let guard = copy_a::fault::Guard::new(map.ptr, 8192, false);
    assert_eq!(map.shrink_and_read(), 0);
    assert!(guard.truncated());
    let page = map.ptr as usize + 4096;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| {
            let (range, _) = l.split_once(' ').unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            );
            lo <= page && page < hi
        })
        .unwrap();
    println!("zero page: {line}");
    assert!(line.contains(" r--p "), "{line}");
    println!("outcome ok");
}

/// The guard whose mark the `SIGSYS` handler below reads.
static MARKED: std::sync::OnceLock<copy_a::fault::Guard> = std::sync::OnceLock::new();
/// What the exit status of `mark-first` means.
const MARK_SEEN: i32 = 42;
const MARK_NOT_SEEN: i32 = 43;

/// Runs when the guard's handler asks for its zero pages (trapped by the filter below): exits
/// the process at once with whether the mark was already stored.
extern "C" fn at_zero_page_mmap(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let seen = MARKED.get().is_some_and(|g| g.truncated());
    // SAFETY: `_exit` has no preconditions and is async-signal-safe.
    unsafe { libc::_exit(if seen { MARK_SEEN } else { MARK_NOT_SEEN }) };
}

/// A fault in a guarded mapping, with the guard's `mmap` of zero pages trapped (seccomp
/// `SECCOMP_RET_TRAP` on `mmap` with exactly `MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS`): the
/// `SIGSYS` handler sees whether the range was already marked truncated when the zero pages
/// were about to appear. Another thread reading them must not find them unmarked.
fn mark_before_zero_pages() {
    let map = FileMapping::new();
    let guard = copy_a::fault::Guard::new(map.ptr, 8192, true);
    assert!(MARKED.set(guard).is_ok());
    // SAFETY: all-zero bytes are a valid `sigaction`.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = at_zero_page_mmap as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa` is a valid action whose handler only loads an atomic and calls `_exit`.
    let rc = unsafe { libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    // Classic BPF, as in <linux/filter.h> and <linux/seccomp.h>: load `nr`; if `mmap`, load
    // the low word of `args[3]` (the flags, offset 40 on little-endian); trap if they are the
    // guard's, else allow.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const TRAP: u32 = 0x0003_0000;
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let flags = (libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;
    let filter = [
        insn(LD_W_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 3, libc::SYS_mmap as u32),
        insn(LD_W_ABS, 0, 0, 40),
        insn(JEQ_K, 0, 1, flags),
        insn(RET_K, 0, 0, TRAP),
        insn(RET_K, 0, 0, ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0);
    // SAFETY: PR_SET_SECCOMP gets a valid program that outlives the call (the kernel copies
    // it).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0);
    println!("faulting");
    map.shrink_and_read();
    println!("the zero pages were mapped without a trap");
}

/// Runs this binary in `role` with `env`; returns its status, stdout and stderr. Kills it and
/// fails if it runs longer than two minutes.
fn run(role: &str, env: &[(&str, String)]) -> (ExitStatus, String, String) {
    run_bounded(role, env, Duration::from_secs(120))
}

/// As [`run`], killing the child and failing once it has run for `limit` (a child that loops
/// in its signal handler never ends by itself).
fn run_bounded(
    role: &str,
    env: &[(&str, String)],
    limit: Duration,
) -> (ExitStatus, String, String) {
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
    let out_reader = read_bounded(child.stdout.take().unwrap());
    let err_reader = read_bounded(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            kill(&mut child);
            remove_segments_of(child.id());
            let (out, err) = (out_reader.join().unwrap(), err_reader.join().unwrap());
            panic!("child role {role} {env:?} hung\nstdout:\n{out}\nstderr:\n{err}");
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

/// How long a child that should end quickly may run before it counts as looping.
const LOOP_LIMIT: Duration = Duration::from_secs(60);

/// Runs the `copies` role for `order` over every root disposition and both events; checks
/// each outcome against what the process would do without any guard.
fn check_copies(order: &str) {
    for root in ["std", "dfl", "ign"] {
        for event in ["fault", "kill"] {
            let env = [
                ("ORDER", order.to_string()),
                ("ROOT", root.to_string()),
                ("EVENT", event.to_string()),
            ];
            let (status, out, err) = run_bounded("copies", &env, LOOP_LIMIT);
            let what =
                format!("{order} over {root}, {event}: {status:?}\nstdout:\n{out}\nstderr:\n{err}");
            assert!(out.contains("our faults ok"), "{what}");
            match (event, root) {
                // A foreign fault kills, whatever the root (a fault cannot be ignored; std's
                // handler resets to the default and the fault repeats).
                ("fault", _) => {
                    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
                    assert!(!out.contains("survived"), "{what}");
                }
                // std's handler resets to the default: the first signal is survived, the
                // guards keep working, the second kills.
                ("kill", "std") => {
                    assert!(out.contains("our faults ok after the signal"), "{what}");
                    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
                    assert!(!out.contains("survived the second signal"), "{what}");
                }
                ("kill", "dfl") => {
                    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
                    assert!(!out.contains("survived the first signal"), "{what}");
                }
                _ => assert!(
                    status.success() && out.contains("survived the second signal"),
                    "{what}"
                ),
            }
        }
    }
}

#[test]
fn copies_registered_aba_chain_without_loops() {
    if role().is_some() {
        return;
    }
    check_copies("ABA");
}

#[test]
fn copies_registered_abcab_chain_without_loops() {
    if role().is_some() {
        return;
    }
    check_copies("ABCAB");
}

#[test]
fn copies_with_the_runtime_itself_chain_without_loops() {
    if role().is_some() {
        return;
    }
    check_copies("DADBD");
}

/// A later handler that removes itself runs once for a foreign fault, which then kills.
fn check_later(style: &str) {
    let (status, out, err) = run_bounded("later", &[("LATER", style.into())], LOOP_LIMIT);
    let what = format!("{style}: {status:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("our faults ok"), "{what}");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
    assert_eq!(err.matches("later handler ran").count(), 1, "{what}");
}

#[test]
fn a_later_handler_that_restores_its_previous_action_and_raises_runs_once() {
    if role().is_some() {
        return;
    }
    check_later("raise");
}

#[test]
fn a_later_handler_that_restores_its_previous_action_and_returns_runs_once() {
    if role().is_some() {
        return;
    }
    check_later("return");
}

#[test]
fn a_kernel_sigbus_that_does_not_repeat_meets_the_previous_action() {
    if role().is_some() {
        return;
    }
    let (status, out, err) = run_bounded("async-code", &[("ROOT", "dfl".into())], LOOP_LIMIT);
    let what = format!("dfl: {status:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
    assert!(!out.contains("survived the first signal"), "{what}");

    let (status, out, err) = run_bounded("async-code", &[("ROOT", "std".into())], LOOP_LIMIT);
    let what = format!("std: {status:?}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("our faults ok after the signal"), "{what}");
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{what}");
    assert!(!out.contains("survived the second signal"), "{what}");
}

#[test]
fn a_read_only_mapping_is_repaired_with_read_only_pages() {
    if role().is_some() {
        return;
    }
    assert_ok("read-only", &[]);
}

#[test]
fn a_truncation_is_marked_before_the_zero_pages_appear() {
    if role().is_some() {
        return;
    }
    let (status, out, err) = run_bounded("mark-first", &[], LOOP_LIMIT);
    assert!(out.contains("faulting"), "{status:?}\n{out}\n{err}");
    assert_eq!(
        status.code(),
        Some(MARK_SEEN),
        "{status:?} ({MARK_NOT_SEEN}: zero pages before the mark; 0: no trap)\n{out}\n{err}"
    );
}
