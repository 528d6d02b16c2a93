//! `shm watch` against a live writer: piped JSON lines, a reader that closes the pipe early,
//! Ctrl-C, and the in-place redraw on a pseudo-terminal.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

/// Waits at most `limit` for `child` to exit; kills it and fails if it does not.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > end {
            kill(child);
            panic!("shm watch did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sigint(child: &Child) {
    // SAFETY: `kill` with the pid of a child we spawned and have not reaped, so it cannot name
    // a reused process; SIGINT is handled by the child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

#[test]
fn watch_json_prints_one_object_per_update_with_increasing_versions() {
    let name = Name::new("watch-json");
    let _writer = LiveWriter::start(&name, 5);
    let out = shm_command()
        .args(["watch", "--count", "5", "--json", &name])
        .output()
        .expect("run shm watch");
    assert_code(&out, 0);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{}", stdout(&out));
    let mut last = None;
    for l in &lines {
        assert_eq!(l["name"], *name);
        let v = l["version"].as_u64().expect("version");
        assert!(
            last.is_none_or(|last| v > last),
            "versions not increasing: {}",
            stdout(&out)
        );
        last = Some(v);
        // The writer publishes `Sample::at(k)` as version k: the value belongs to its version.
        assert_eq!(l["value"]["tick"], v);
        assert_eq!(l["value"]["big"], (u128::MAX - u128::from(v)).to_string());
        assert_eq!(l["value"]["label"], format!("tick-{v}"));
    }

    // --fields selects, by path.
    let out = shm_command()
        .args([
            "watch",
            "--count",
            "2",
            "--json",
            "--fields",
            "tick,pose.x",
            &name,
        ])
        .output()
        .expect("run shm watch");
    assert_code(&out, 0);
    for line in stdout(&out).lines() {
        assert!(line.contains(r#""fields":{"tick":"#), "{line}");
        let l: serde_json::Value = serde_json::from_str(line).expect("JSON");
        // In the order asked for.
        let text = l.to_string();
        let fields = l["fields"].as_object().expect("fields");
        assert_eq!(fields.len(), 2, "{text}");
        assert!(fields.contains_key("pose.x"), "{text}");
        assert_eq!(fields["tick"], l["version"]);
    }
    let out = shm(&["watch", "--fields", "nope", &name]);
    assert_code(&out, 64);
    assert!(
        stderr(&out).contains("no field \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn watch_exits_0_without_a_panic_when_its_reader_closes_the_pipe() {
    for period in [5, 0] {
        let name = Name::new("watch-pipe");
        let _writer = LiveWriter::start(&name, period);
        let mut child = shm_command()
            .args(["watch", &name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shm watch");
        // `head -1`: read one line, then close the pipe.
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("first line");
        assert!(first.starts_with("version=1") || period > 0, "{first}");
        assert!(first.contains("tick="), "{first}");
        let status = wait_exit(&mut child, Duration::from_secs(10));
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("stderr");
        assert_eq!(status.code(), Some(0), "writer period {period} ms: {err}");
        assert!(err.is_empty(), "{err}");
    }
}

#[test]
fn watch_exits_0_on_ctrl_c() {
    let name = Name::new("watch-int");
    let _writer = LiveWriter::start(&name, 0);
    let mut child = shm_command()
        .args(["watch", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shm watch");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    sigint(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

/// A pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: both out-pointers are valid `c_int`s; name, termios and winsize may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded, so both are open descriptors that nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Every number that follows `tick` and `= ` on a line of terminal output.
fn ticks(screen: &str) -> Vec<u64> {
    screen
        .split("tick")
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.trim_start().strip_prefix("= ")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn watch_on_a_terminal_redraws_the_values_in_place() {
    let name = Name::new("watch-tty");
    let _writer = LiveWriter::start(&name, 50);
    let (master, slave) = openpty();
    let mut child = {
        let mut cmd = shm_command();
        cmd.args(["watch", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        cmd.spawn().expect("spawn shm watch on a pty")
        // `cmd` (and with it our copies of the slave) is dropped here, so reading the master
        // ends once the child exits.
    };
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut master = std::fs::File::from(master);
            let mut buf = [0u8; 4096];
            // Ends with EIO once the slave side is closed.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().expect("screen").extend_from_slice(&buf[..n]);
            }
        })
    };
    // Until the screen shows a redraw and two values of `tick` (or a generous limit, on a
    // loaded machine), then Ctrl-C.
    let text = || String::from_utf8_lossy(&screen.lock().expect("screen")).into_owned();
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let now = text();
        let mut seen = ticks(&now);
        seen.dedup();
        if now.contains("A\r\x1b[2K") && seen.len() >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sigint(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    reader.join().expect("reader thread");
    let screen = text();
    assert_eq!(status.code(), Some(0), "{screen}");
    // Cursor up over the previous frame, then each line cleared and rewritten.
    assert!(screen.contains("A\r\x1b[2K"), "no redraw in {screen:?}");
    assert!(screen.contains("updates/s"), "{screen:?}");
    assert!(!screen.contains("panicked"), "{screen:?}");
    let mut seen = ticks(&screen);
    seen.dedup();
    assert!(
        seen.len() >= 2,
        "tick did not change on screen: {seen:?} in {screen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // The cursor is shown again at the end.
    assert!(screen.contains("\x1b[?25h"), "{screen:?}");
}
