//! The writer lease and `wait_for_update`, across processes.

mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Error, SharedState};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Takes the writer lease, says so, then holds it until killed.
        Some("hold-writer") => {
            let _w = u64::open_writer(&env("SHM_NAME")).unwrap();
            println!("holding");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Writes `value` after `delay_ms`, then exits.
        Some("write-later") => {
            let mut w = u64::open_writer(&env("SHM_NAME")).unwrap();
            std::thread::sleep(Duration::from_millis(env("DELAY_MS").parse().unwrap()));
            w.write(&env("VALUE").parse().unwrap());
        }
        // Blocks in wait_for_update, then reports what it saw and how long it slept.
        Some("waiter") => {
            let r = u64::open(&env("SHM_NAME")).unwrap();
            let since = r.version();
            println!("waiting");
            let start = Instant::now();
            let v = r.wait_for_update(since, Duration::from_secs(20)).unwrap();
            println!(
                "woke version={v} value={} after_ms={}",
                r.read(),
                start.elapsed().as_millis()
            );
        }
        // Writes 10,000 times under a seccomp filter that kills the process at its first
        // system call other than exit_group: it survives only if writing makes no syscall.
        Some("write-without-syscalls") => {
            let mut w = u64::open_writer(&env("SHM_NAME")).unwrap();
            common::seccomp::forbid_syscalls_except_exit();
            for i in 0..10_000u64 {
                w.write(&i);
            }
            // SAFETY: exit_group ends the process at once; nothing after it runs.
            unsafe { libc::syscall(libc::SYS_exit_group, 0) };
            unreachable!();
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// The child's next line of its own output (the test harness's lines are skipped).
fn first_line(child: &mut std::process::Child) -> String {
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            return String::new();
        }
        let line = line.trim();
        if !line.is_empty() && !line.starts_with("running ") {
            return line.to_string();
        }
    }
}

#[test]
fn writer_busy_while_another_process_holds_the_lease() {
    if role().is_some() {
        return;
    }
    let name = Name::new("lease");
    drop(u64::create(&name, &0).unwrap());
    let r = u64::open(&name).unwrap();
    assert!(!r.info().writer().alive());
    let mut holder = spawn_role(ENTRY, "hold-writer", &[("SHM_NAME", name.to_string())]);
    assert_eq!(first_line(&mut holder), "holding");
    assert!(r.info().writer().alive());
    assert_eq!(r.info().writer().pid(), holder.id());
    let e = u64::open_writer(&name).unwrap_err();
    assert!(
        matches!(e, Error::WriterBusy { pid } if pid == holder.id()),
        "{e}"
    );
    // Probing did not disturb the holder, which still holds the lease.
    assert!(r.info().writer().alive());
    kill(&mut holder);
    assert!(!r.info().writer().alive());
    let w = u64::open_writer(&name).expect("takeover after the holder died");
    assert_eq!(w.info().writer().epoch(), 3);
}

#[test]
fn wait_for_update_wakes_when_another_process_writes() {
    if role().is_some() {
        return;
    }
    let name = Name::new("wake");
    drop(u64::create(&name, &0).unwrap());
    let r = u64::open(&name).unwrap();
    let since = r.version();
    let mut writer = spawn_role(
        ENTRY,
        "write-later",
        &[
            ("SHM_NAME", name.to_string()),
            ("DELAY_MS", "200".into()),
            ("VALUE", "77".into()),
        ],
    );
    let start = Instant::now();
    let v = r.wait_for_update(since, Duration::from_secs(20)).unwrap();
    let waited = start.elapsed();
    assert!(v > since);
    assert_eq!(r.read(), 77);
    assert!(waited < Duration::from_secs(10), "woken late: {waited:?}");
    assert!(writer.wait().unwrap().success());
}

#[test]
fn a_write_wakes_waiters_in_other_processes() {
    if role().is_some() {
        return;
    }
    let name = Name::new("wakeall");
    let mut w = u64::create(&name, &0).unwrap();
    let mut waiters: Vec<_> = (0..3)
        .map(|_| spawn_role(ENTRY, "waiter", &[("SHM_NAME", name.to_string())]))
        .collect();
    for c in &mut waiters {
        assert_eq!(first_line(c), "waiting");
    }
    // Give them time to block in the futex, then publish once.
    std::thread::sleep(Duration::from_millis(200));
    w.write(&5);
    for mut c in waiters {
        let line = first_line(&mut c);
        assert!(line.starts_with("woke version=1 value=5"), "{line}");
        // Woken by the write, not by the 20 s timeout.
        let after_ms: u64 = line.rsplit('=').next().unwrap().parse().unwrap();
        assert!(after_ms < 10_000, "{line}");
        assert!(c.wait().unwrap().success());
    }
}

#[test]
fn writing_makes_no_syscall_unless_somebody_waits() {
    use std::os::unix::process::ExitStatusExt;
    if role().is_some() {
        return;
    }
    let name = Name::new("nosys");
    drop(u64::create(&name, &0).unwrap());
    let run = || {
        let mut child = spawn_role(
            ENTRY,
            "write-without-syscalls",
            &[("SHM_NAME", name.to_string())],
        );
        child.wait().unwrap()
    };
    let status = run();
    assert!(status.success(), "a write made a syscall: {status:?}");
    assert_eq!(u64::open(&name).unwrap().read(), 9_999);

    // With a waiter registered (as a reader blocked in wait_for_update would be), a write
    // wakes it with a futex syscall, and the filter kills the writer: the check above can fail.
    common::poke(&name, common::Field::Waiters, 1);
    let status = run();
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{status:?}");
}
