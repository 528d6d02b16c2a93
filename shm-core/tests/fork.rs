//! Leases and `fork`: a child forked by a writer does not keep the writer's lease (nor a stream
//! writer's, a queue producer's or a queue consumer's) once the writer's process dies, the
//! handles it inherited refuse to publish or take, and its readers keep working.
//!
//! Each test runs a child process that makes its handles and forks (a fork in the test
//! harness itself would copy its threads' state), kills that child once its own child has
//! reported, and checks the segments from outside.

mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Error, Options, SharedState};
use std::io::{BufRead, BufReader};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Value {
    n: u64,
}

const V1: Value = Value { n: 1 };
const V42: Value = Value { n: 42 };

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("named-holder") => named_holder(),
        Some("anonymous-holder") => anonymous_holder(),
        Some("raw-fork") => raw_fork(),
        Some("closing-child") => closing_child(),
        Some("closing-parent") => closing_parent(),
        Some("fork-storm") => fork_storm(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Waits (bounded) until the control segment says the test checked what it checks while the
/// forked child lives.
fn wait_for_go(ctl: &shm_core::Reader<u64>) -> bool {
    for _ in 0..300 {
        if ctl.read() >= 1 {
            return true;
        }
        let _ = ctl.wait_for_update(ctl.version(), Duration::from_millis(100));
    }
    false
}

/// Whether `f` panics with the message of a handle copied by fork.
fn refused(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(p) => p
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains("copied by fork")),
    }
}

/// Forks; in the child runs `child` and leaves with its exit code (`_exit`), in the parent
/// returns the child's pid.
fn fork(child: impl FnOnce() -> bool) -> i32 {
    // Output buffered before the fork would be written twice, once by each process, and the
    // child's first line would start with the parent's partial one.
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    // SAFETY: the process has two threads (the harness's main thread, waiting for this test,
    // and this one); the child only uses this thread and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = child();
        // SAFETY: `_exit` ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    pid
}

/// Creates a writer, a stream writer, a queue producer and a queue consumer, forks, and waits
/// to be killed. The forked child checks that every handle it inherited refuses to publish or
/// take, that its reader reads, and (once the test says so) that the reader sees the test's
/// new writer alive and its value.
fn named_holder() {
    let ctl = u64::open(&env("SHM_CTL")).unwrap();
    let mut w = Value::create(&env("SHM_STATE"), &V1).unwrap();
    let r = w.reader().unwrap();
    let mut s = Value::create_stream(&env("SHM_STREAM"), 8).unwrap();
    let mut q = Value::create_queue(&env("SHM_QUEUE"), 8).unwrap();
    q.try_send(&V1).unwrap();
    let mut c = Value::open_consumer(&env("SHM_QUEUE")).unwrap();
    let own = env("SHM_OWN");
    let child = fork(|| {
        std::panic::set_hook(Box::new(|_| {}));
        let refusals = [
            refused(|| w.write(&V42)),
            refused(|| w.update(|v| v.n += 1)),
            refused(|| s.send(&V42)),
            refused(|| drop(q.try_send(&V42))),
            refused(|| drop(c.try_recv())),
        ];
        println!("child refused {refusals:?}");
        println!("child read {}", r.read().n);
        // A writer this process makes itself publishes.
        let mine = u64::create(&own, &7).map(|mut m| {
            m.write(&8);
            m.get().unwrap()
        });
        let _ = shm_core::remove(&own);
        println!("child own writer {mine:?}");
        if !wait_for_go(&ctl) {
            return false;
        }
        println!(
            "child after takeover alive={} value={}",
            r.info().writer().alive(),
            r.read().n
        );
        true
    });
    println!("forked {child}");
    std::thread::sleep(Duration::from_secs(60));
}

/// Creates an anonymous segment, makes a reader, forks (the documented recipe) and waits to be
/// killed; the forked child reports, once the test says its parent is dead, whether its reader
/// sees a writer alive.
fn anonymous_holder() {
    let ctl = u64::open(&env("SHM_CTL")).unwrap();
    let w = Options::new().create_anonymous(&V1).unwrap();
    let r = w.reader().unwrap();
    let child = fork(|| {
        println!(
            "child read {} alive={}",
            r.read().n,
            r.info().writer().alive()
        );
        if !wait_for_go(&ctl) {
            return false;
        }
        println!(
            "child after parent died alive={}",
            r.info().writer().alive()
        );
        true
    });
    println!("forked {child}");
    std::thread::sleep(Duration::from_secs(60));
    drop(w);
}

/// Waits for the child `pid` and says whether it exited with 0.
fn reap(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: `pid` is a child of this process not reaped yet; `status` outlives the call.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Creates a writer and makes a child with the raw `clone` system call, as `fork` does but
/// without running the `fork` handlers (so do `_Fork`, `vfork` and `clone` wrappers); the child
/// drops the writer it copied and exits. Reports whether the writer, still alive here, is
/// still seen alive and still refuses a second writer.
fn raw_fork() {
    let state = env("SHM_STATE");
    let w = Value::create(&state, &V1).unwrap();
    let r = Value::open(&state).unwrap();
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    // SAFETY: `clone` with only SIGCHLD and no new stack is `fork` without its handlers: the
    // child is a copy of this process with one thread (this one); it only drops a handle and
    // leaves with `_exit`.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) } as i32;
    assert!(pid >= 0, "clone failed");
    if pid == 0 {
        drop(w);
        // SAFETY: `_exit` ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    assert!(reap(pid), "the cloned child failed");
    let second = Value::open_writer(&state);
    println!(
        "after the child dropped its copy alive={} second writer refused={}",
        r.info().writer().alive(),
        matches!(second, Err(Error::WriterBusy { .. }))
    );
    drop(second);
    drop(w);
}

/// The identity (device, inode) of descriptor `fd`.
fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: `stat` is a plain C struct for which all-zero bytes are valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fstat` only writes `st`, which outlives the call; a bad `fd` fails with EBADF.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Creates a writer and forks; the child closes every descriptor it inherited above stderr
/// (as daemons do), opens files of its own and forks again. The grandchild reports whether
/// its descriptors are still the files its parent opened.
fn closing_child() {
    let w = Value::create(&env("SHM_STATE"), &V1).unwrap();
    let child = fork(|| {
        // SAFETY: closes descriptors this process no longer uses: the handles copied from the
        // parent are never used again (they are forgotten below, never dropped).
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        let files: Vec<std::fs::File> = (0..16).map(|_| tempfile()).collect();
        use std::os::fd::AsRawFd;
        let before: Vec<_> = files.iter().map(|f| identity(f.as_raw_fd())).collect();
        let grandchild = fork(|| {
            let after: Vec<_> = files.iter().map(|f| identity(f.as_raw_fd())).collect();
            println!("grandchild files intact={}", after == before);
            true
        });
        let ok = reap(grandchild);
        std::mem::forget(files);
        ok
    });
    std::mem::forget(w);
    println!("forked {}", reap(child));
}

/// Creates a writer, then closes every descriptor above stderr (the writer's among them: it is
/// never used again), opens files of its own and forks. The child reports whether its
/// descriptors are still the files its parent opened: the numbers the writer's descriptors had
/// are now other files, which a child must not replace.
fn closing_parent() {
    let w = Value::create(&env("SHM_STATE"), &V1).unwrap();
    std::mem::forget(w);
    // SAFETY: closes descriptors this process no longer uses: the writer's, forgotten above
    // and never used again.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let files: Vec<std::fs::File> = (0..16).map(|_| tempfile()).collect();
    use std::os::fd::AsRawFd;
    let before: Vec<_> = files.iter().map(|f| identity(f.as_raw_fd())).collect();
    let child = fork(|| {
        let after: Vec<_> = files.iter().map(|f| identity(f.as_raw_fd())).collect();
        println!("child files intact={}", after == before);
        true
    });
    println!("forked {}", reap(child));
}

/// One thread forks over and over (each child exits at once) while this one creates writers,
/// which wait for each fork in progress to finish before opening their lease's description.
/// Reports how many writers it made, and whether each was alive while it lived and released
/// its lease when dropped (a child forked meanwhile keeps no copy of it).
fn fork_storm() {
    const ROUNDS: usize = 300;
    let name = env("SHM_STATE");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (made, right, forks) = std::thread::scope(|s| {
        let forker = s.spawn(|| {
            let mut forks = 0;
            // Bounded: stops when the writers are done, or after this many forks.
            for _ in 0..100_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                forks += 1;
                // SAFETY: the child only calls `_exit`, async-signal-safe.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: ends the child without running the parent's exit handlers.
                    unsafe { libc::_exit(0) };
                }
                assert!(pid > 0 && reap(pid), "fork failed");
            }
            forks
        });
        let mut made = 0;
        let mut right = 0;
        for _ in 0..ROUNDS {
            if let Ok(w) = Value::create(&name, &V1) {
                made += 1;
                let r = Value::open(&name).unwrap();
                let alive = r.info().writer().alive();
                drop(w);
                if alive && !r.info().writer().alive() {
                    right += 1;
                }
                drop(r);
            }
            let _ = shm_core::remove(&name);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (made, right, forker.join().unwrap())
    });
    // How many forks overlapped the writers varies from run to run: told, not checked.
    println!("writers made {made} right {right} during {forks} forks");
}

/// An unnamed temporary file (a memfd, each its own inode).
fn tempfile() -> std::fs::File {
    use std::os::fd::FromRawFd;
    // SAFETY: the name is a NUL-terminated string; the flags are constants.
    let fd = unsafe { libc::memfd_create(c"shmtest-fork".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: `fd` was just returned by `memfd_create`; nobody else owns it.
    unsafe { std::fs::File::from_raw_fd(fd) }
}

/// The lines a child role and its forked child print, as they come (until both closed stdout),
/// and the ones read but not yet expected: the two processes print concurrently, so the lines
/// of one may come before or after the other's.
struct Lines {
    rx: mpsc::Receiver<String>,
    pending: Vec<String>,
}

fn lines(child: &mut Child) -> Lines {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Lines {
        rx,
        pending: Vec::new(),
    }
}

/// The first line, read now or earlier, that starts with `prefix` (others are kept for later
/// calls, or are the harness's).
fn expect_line(lines: &mut Lines, prefix: &str) -> String {
    if let Some(i) = lines.pending.iter().position(|l| l.starts_with(prefix)) {
        return lines.pending.remove(i);
    }
    loop {
        let line = lines
            .rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line {prefix:?}; other lines: {:?}", lines.pending));
        if line.starts_with(prefix) {
            return line;
        }
        lines.pending.push(line);
    }
}

/// Waits until every process holding the pipe closed it: the forked child has exited.
fn expect_end(lines: &Lines) {
    loop {
        match lines.rx.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the forked child did not exit"),
        }
    }
}

#[test]
fn a_child_forked_by_a_writer_keeps_no_lease_after_the_writer_dies() {
    if role().is_some() {
        return;
    }
    let ctl_name = Name::new("fork-ctl");
    let state = Name::new("fork-state");
    let stream = Name::new("fork-stream");
    let queue = Name::new("fork-queue");
    let own = Name::new("fork-own");
    let mut ctl = u64::create(&ctl_name, &0).unwrap();
    let mut holder = spawn_role(
        ENTRY,
        "named-holder",
        &[
            ("SHM_CTL", ctl_name.to_string()),
            ("SHM_STATE", state.to_string()),
            ("SHM_STREAM", stream.to_string()),
            ("SHM_QUEUE", queue.to_string()),
            ("SHM_OWN", own.to_string()),
        ],
    );
    let mut rx = lines(&mut holder);
    expect_line(&mut rx, "forked ");
    assert_eq!(
        expect_line(&mut rx, "child refused "),
        "child refused [true, true, true, true, true]",
        "a handle copied by fork published or took"
    );
    assert_eq!(expect_line(&mut rx, "child read "), "child read 1");
    assert_eq!(
        expect_line(&mut rx, "child own writer "),
        "child own writer Ok(8)"
    );
    // The parent is alive and keeps its leases; the child's handler did not release them.
    assert!(Value::open(&state).unwrap().info().writer().alive());
    assert!(matches!(
        Value::open_writer(&state),
        Err(Error::WriterBusy { pid }) if pid == holder.id()
    ));
    assert!(matches!(
        Value::open_consumer(&queue),
        Err(Error::ConsumerBusy)
    ));

    // The writer's process dies; its forked child lives on.
    let dead = holder.id();
    kill(&mut holder);
    let r = Value::open(&state).unwrap();
    assert!(
        !r.info().writer().alive(),
        "the writer (pid {dead}) is dead, but its forked child keeps its lease"
    );
    let mut w = Value::open_writer(&state).expect("take over the dead writer's segment");
    Value::open_stream_writer(&stream).expect("take over the dead writer's stream");
    Value::open_queue_producer(&queue).expect("take over the dead producer's queue");
    let mut c = Value::open_consumer(&queue).expect("take over the dead consumer's queue");
    assert_eq!(
        c.try_recv().unwrap(),
        Some(V1),
        "the inherited consumer took nothing"
    );
    w.write(&V42);
    ctl.write(&1);
    // The child's reader, made before the fork, sees the new writer and its value.
    assert_eq!(
        expect_line(&mut rx, "child after takeover "),
        "child after takeover alive=true value=42"
    );
    expect_end(&rx);
}

#[test]
fn a_child_forked_by_an_anonymous_segments_writer_sees_it_die() {
    if role().is_some() {
        return;
    }
    let ctl_name = Name::new("fork-anon-ctl");
    let mut ctl = u64::create(&ctl_name, &0).unwrap();
    let mut holder = spawn_role(
        ENTRY,
        "anonymous-holder",
        &[("SHM_CTL", ctl_name.to_string())],
    );
    let mut rx = lines(&mut holder);
    expect_line(&mut rx, "forked ");
    assert_eq!(
        expect_line(&mut rx, "child read "),
        "child read 1 alive=true"
    );
    kill(&mut holder);
    ctl.write(&1);
    assert_eq!(
        expect_line(&mut rx, "child after parent died "),
        "child after parent died alive=false",
        "the anonymous segment's writer died, but its forked child keeps its lease"
    );
    expect_end(&rx);
}

#[test]
fn a_child_made_without_fork_handlers_does_not_release_its_parents_lease() {
    if role().is_some() {
        return;
    }
    let state = Name::new("fork-raw");
    let out = spawn_role(ENTRY, "raw-fork", &[("SHM_STATE", state.to_string())])
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("after the child dropped its copy alive=true second writer refused=true"),
        "a child that dropped its copy of a writer released the live writer's lease: {text}"
    );
}

#[test]
fn a_grandchild_keeps_the_descriptors_its_parent_opened_after_closing_inherited_ones() {
    if role().is_some() {
        return;
    }
    let state = Name::new("fork-closing");
    let out = spawn_role(ENTRY, "closing-child", &[("SHM_STATE", state.to_string())])
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("grandchild files intact=true"),
        "a fork overwrote descriptors the forking process had opened: {text}"
    );
    assert!(text.contains("forked true"), "{text}");
}

#[test]
fn a_child_keeps_the_descriptors_its_parent_opened_in_place_of_closed_leases() {
    if role().is_some() {
        return;
    }
    let state = Name::new("fork-closing-parent");
    let out = spawn_role(ENTRY, "closing-parent", &[("SHM_STATE", state.to_string())])
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("child files intact=true"),
        "a fork overwrote descriptors the forking process had opened: {text}"
    );
    assert!(text.contains("forked true"), "{text}");
}

#[test]
fn leases_taken_while_another_thread_forks_stay_with_their_process() {
    if role().is_some() {
        return;
    }
    let state = Name::new("fork-storm");
    let out = spawn_role(ENTRY, "fork-storm", &[("SHM_STATE", state.to_string())])
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("writers made 300 right 300 during "),
        "writers failed, or kept their lease after being dropped: {text}"
    );
}
