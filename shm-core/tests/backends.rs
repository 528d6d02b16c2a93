//! The file backend (state that survives restarts) and the anonymous backend (shared with
//! `fork` children).

mod common;

use common::{env, role, spawn_role, ENTRY};
use shm_core::{Backend, Options, SharedState};
use std::io::Read;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Counter {
    runs: u64,
    total: u64,
}

fn file_opts() -> Options {
    Options::new().backend(Backend::File)
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // One "run" of a program that keeps its state in a file segment.
        Some("file-run") => {
            let path = env("SHM_PATH");
            let mut w = file_opts()
                .open_or_create(&path, &Counter { runs: 0, total: 0 })
                .unwrap();
            w.update(|c| {
                c.runs += 1;
                c.total += 10;
            });
            println!("runs={}", w.get().expect("current value").runs);
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

struct TempPath(std::path::PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_segment_survives_its_processes() {
    if role().is_some() {
        return;
    }
    let path =
        TempPath(std::env::temp_dir().join(format!("shmtest-file-{}.shm", std::process::id())));
    let p = path.0.to_str().unwrap().to_string();
    for run in 1..=3u64 {
        let mut child = spawn_role(ENTRY, "file-run", &[("SHM_PATH", p.clone())]);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert!(out.contains(&format!("runs={run}")), "{out}");
    }
    // No process has it open now; the state is in the file.
    let r = file_opts().open::<Counter>(&p).unwrap();
    assert_eq!(r.read(), Counter { runs: 3, total: 30 });
    assert!(!r.info().writer().alive());
    std::fs::remove_file(&p).unwrap();
    assert!(!path.0.exists());
}

#[test]
fn anonymous_segment_is_shared_with_fork_children() {
    let mut w = Options::new()
        .create_anonymous(&Counter { runs: 1, total: 2 })
        .unwrap();
    let r = w.reader().unwrap();
    assert!(r.info().writer().alive());
    w.write(&Counter { runs: 5, total: 6 });
    // SAFETY: the child only reads shared memory (no allocation, no locks) and leaves with
    // `_exit`, which is all that is safe after forking a multi-threaded process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = r.read() == Counter { runs: 5, total: 6 };
        // Wait for the parent's next write, then check it too.
        let ok = ok
            && r.wait_for_update(1, std::time::Duration::from_secs(10))
                .is_ok()
            && r.read() == Counter { runs: 7, total: 8 };
        // SAFETY: `_exit` ends the child without running the parent's atexit handlers or
        // destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    w.write(&Counter { runs: 7, total: 8 });
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child saw wrong values"
    );
}
