//! A peer shrinks and regrows a segment's file while `shm check`, `shm ls` and `shm inspect`
//! read it: they report what they find (healthy, damaged or truncated) and never die of
//! SIGBUS, since every mapping the tool makes is guarded as the runtime's are.

mod common;

use common::*;
use shm_core::Options;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

#[test]
fn reading_commands_survive_a_peer_shrinking_and_regrowing_the_file() {
    let name = Name::new("shrink");
    // Many slots: the slots' sequence words, which `check` reads, span several pages.
    drop(
        Options::new()
            .slots(256)
            .create(&name, &Sample::at(1))
            .expect("create"),
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(name.path())
        .unwrap();
    let full = file.metadata().unwrap().len();
    assert!(full > 4 * 4096, "the segment spans several pages: {full}");
    let stop = AtomicBool::new(false);
    let cycles = AtomicU64::new(0);
    std::thread::scope(|s| {
        // The peer: shrinks the file to its first page and regrows it, until the runs are
        // done (the runs are bounded, so it is too).
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                file.set_len(4096).unwrap();
                for _ in 0..2000 {
                    std::hint::spin_loop();
                }
                file.set_len(full).unwrap();
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        });
        let runs: Vec<Vec<&str>> = (0..600)
            .map(|i| match i % 6 {
                0..=3 => vec!["check", &name],
                4 => vec!["ls"],
                _ => vec!["inspect", &name],
            })
            .collect();
        let mut failure = None;
        for args in &runs {
            let out = shm(args);
            if let Some(sig) = out.status.signal() {
                failure = Some(format!(
                    "shm {args:?} died of signal {sig}: {}{}",
                    stdout(&out),
                    stderr(&out)
                ));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(f) = failure {
            panic!("{f}");
        }
    });
    assert!(cycles.load(Ordering::Relaxed) > 0);
}
