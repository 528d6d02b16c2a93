//! Runs the `async_select` example: one tokio task awaits a state segment and a stream at
//! once and sees the last pose and the last event the writer published.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn async_select_sees_every_last_value() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_async_select"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the example takes about 0.1 s; a hang is reported, not waited for.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("async_select hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pose tick=20 "), "{text}");
    assert!(text.contains("event 120"), "{text}");
    assert!(
        text.contains("done: last pose tick 20, last event 120"),
        "{text}"
    );
}
