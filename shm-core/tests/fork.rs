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

/// The lines a child role and its forked child print, as they come (until both closed stdout).
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The next line that starts with `prefix` (others are the harness's).
fn expect_line(rx: &mpsc::Receiver<String>, prefix: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line {prefix:?}"));
        if line.starts_with(prefix) {
            return line;
        }
    }
}

/// Waits until every process holding the pipe closed it: the forked child has exited.
fn expect_end(rx: &mpsc::Receiver<String>) {
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
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
    let rx = lines(&mut holder);
    expect_line(&rx, "forked ");
    assert_eq!(
        expect_line(&rx, "child refused "),
        "child refused [true, true, true, true, true]",
        "a handle copied by fork published or took"
    );
    assert_eq!(expect_line(&rx, "child read "), "child read 1");
    assert_eq!(
        expect_line(&rx, "child own writer "),
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
        expect_line(&rx, "child after takeover "),
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
    let rx = lines(&mut holder);
    expect_line(&rx, "forked ");
    assert_eq!(expect_line(&rx, "child read "), "child read 1 alive=true");
    kill(&mut holder);
    ctl.write(&1);
    assert_eq!(
        expect_line(&rx, "child after parent died "),
        "child after parent died alive=false",
        "the anonymous segment's writer died, but its forked child keeps its lease"
    );
    expect_end(&rx);
}
