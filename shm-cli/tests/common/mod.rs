//! Shared test support: unique segment names removed on drop, the `Sample` type a live writer
//! publishes, child roles run by re-executing the test binary, and running the `shm` binary.
#![allow(dead_code)]

use shm_core::{FixedStr, FixedVec, Options, SharedState, ShmBool};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "SHM_CLI_TEST_ROLE";
/// The segment a child role works on.
pub const NAME_VAR: &str = "SHM_CLI_TEST_NAME";
/// Milliseconds between a writer's publishes (0: publish once, then idle).
pub const PERIOD_VAR: &str = "SHM_CLI_TEST_PERIOD_MS";
/// Slots of the segment a writer creates.
pub const SLOTS_VAR: &str = "SHM_CLI_TEST_SLOTS";

/// The name of every test file's child-process entry point: an ignored test that dispatches on
/// [`ROLE`].
pub const ENTRY: &str = "child_process_entry_point";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A segment name unique to this process and call, removed (if it exists) on drop.
pub struct Name(pub String);

impl Name {
    /// `/shmtest-cli-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Name {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Name(format!("/shmtest-cli-{tag}-{}-{n}", std::process::id()))
    }

    /// The file behind the name.
    pub fn path(&self) -> String {
        format!("/dev/shm{}", self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// A nested struct.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Pose {
    pub x: f64,
    pub y: f64,
}

/// The type the test writers publish: a nested struct, arrays, `FixedStr`, `FixedVec`,
/// `ShmBool`, floats and 128-bit integers.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Sample {
    pub big: u128,
    pub tick: u64,
    pub pose: Pose,
    pub temps: [f64; 3],
    pub label: FixedStr<12>,
    pub readings: FixedVec<u32, 4>,
    pub ratio: f32,
    pub level: i32,
    pub armed: ShmBool,
    pub _pad: [u8; 15],
}

impl Sample {
    /// The value number `k` a writer publishes.
    pub fn at(k: u64) -> Sample {
        let mut readings = FixedVec::new();
        for i in 0..=(k % 4) {
            readings.push(k as u32 * 10 + i as u32).expect("fits");
        }
        Sample {
            big: u128::MAX - u128::from(k),
            tick: k,
            pose: Pose {
                x: k as f64 * 0.5,
                y: -1.25,
            },
            temps: [k as f64, k as f64 + 1.0, k as f64 + 2.0],
            label: FixedStr::try_from(format!("tick-{k}").as_str()).expect("fits"),
            readings,
            ratio: 0.5,
            level: -(k as i32),
            armed: if k % 2 == 1 {
                ShmBool::TRUE
            } else {
                ShmBool::FALSE
            },
            _pad: [0; 15],
        }
    }
}

/// Runs the role this process was started in, if it is a child; a child asks the kernel to
/// kill it when the thread that spawned it ends, so no child outlives its test.
pub fn child_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // SAFETY: `prctl(PR_SET_PDEATHSIG, SIGKILL)` only sets a flag on the calling process; the
    // unused arguments are zero as the man page asks.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let name = std::env::var(NAME_VAR).expect("child role needs a name");
    let period: u64 = std::env::var(PERIOD_VAR)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let slots: usize = std::env::var(SLOTS_VAR)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(2);
    match role.as_str() {
        // Creates the segment, publishes value 1 (then one more every `period` ms, if not 0)
        // and lives for at most a minute.
        "writer" => {
            let mut w = Options::new()
                .slots(slots)
                .create(&name, &Sample::at(0))
                .expect("create");
            w.write(&Sample::at(1));
            println!("ready");
            let end = Instant::now() + Duration::from_secs(60);
            let mut k = 1;
            while Instant::now() < end {
                if period == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    std::thread::sleep(Duration::from_millis(period));
                    k += 1;
                    w.write(&Sample::at(k));
                }
            }
        }
        // Creates the segment and publishes as fast as it can, for at most a minute.
        "fast-writer" => {
            let mut w = Options::new()
                .slots(slots)
                .create(&name, &Sample::at(0))
                .expect("create");
            w.write(&Sample::at(1));
            println!("ready");
            let end = Instant::now() + Duration::from_secs(60);
            let mut k = 1;
            while Instant::now() < end {
                k += 1;
                w.write(&Sample::at(k));
            }
        }
        // Creates the segment, publishes value 1 and exits: the writer is dead.
        "create-and-exit" => {
            let mut w = Sample::create(&name, &Sample::at(0)).expect("create");
            w.write(&Sample::at(1));
            println!("ready");
        }
        // Creates a stream of capacity `slots`, sends messages 1 to 10 (message k is
        // `Sample::at(k)`), then one more every `period` ms if not 0; lives at most a minute.
        "stream-writer" => {
            let mut tx = Sample::create_stream(&name, slots).expect("create the stream");
            for k in 1..=10 {
                tx.send(&Sample::at(k));
            }
            println!("ready");
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                if period == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                } else {
                    std::thread::sleep(Duration::from_millis(period));
                    tx.send(&Sample::at(tx.sent() + 1));
                }
            }
        }
        // Creates a queue of capacity `slots`, sends messages 1 to 5 and lives at most a
        // minute.
        "queue-producer" => {
            let mut tx = Sample::create_queue(&name, slots).expect("create the queue");
            for k in 1..=5 {
                tx.send(&Sample::at(k));
            }
            println!("ready");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Starts this test binary again in `role` on segment `name`, and waits until it says it is
/// ready.
pub fn spawn_role(role: &str, name: &str, period_ms: u64, slots: usize) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("current test binary"))
        .args([
            ENTRY,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(NAME_VAR, name)
        .env(PERIOD_VAR, period_ms.to_string())
        .env(SLOTS_VAR, slots.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child role");
    // The test harness prints lines of its own: wait for "ready", and keep reading (in a
    // thread) so that the child never writes into a closed pipe.
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        kill(&mut child);
        panic!("child role {role} did not start");
    }
    child
}

/// Kills `child` and reaps it.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A live writer process that is killed on drop.
pub struct LiveWriter(pub Child);

impl LiveWriter {
    /// Starts a writer on `name`, publishing every `period_ms` ms (0: once).
    pub fn start(name: &str, period_ms: u64) -> LiveWriter {
        LiveWriter(spawn_role("writer", name, period_ms, 2))
    }

    /// Starts a writer on `name` with `slots` slots that publishes as fast as it can.
    pub fn fast(name: &str, slots: usize) -> LiveWriter {
        LiveWriter(spawn_role("fast-writer", name, 0, slots))
    }

    /// The writer's process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for LiveWriter {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// A segment whose writer has exited.
pub fn dead_writer_segment(name: &str) {
    let mut child = spawn_role("create-and-exit", name, 0, 2);
    let status = child.wait().expect("wait");
    assert!(status.success());
}

/// The `shm` binary.
pub fn shm_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shm"));
    c.env("NO_COLOR", "1").env_remove("RUST_BACKTRACE");
    c
}

/// Runs `shm args...` to completion.
pub fn shm(args: &[&str]) -> Output {
    shm_command().args(args).output().expect("run shm")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout parsed as JSON (panics with the output if it is not).
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\nstdout: {}\nstderr: {}",
            stdout(o),
            stderr(o)
        )
    })
}

/// Asserts the exit code, showing the output if it differs.
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        !stderr(o).contains("panicked"),
        "panic message: {}",
        stderr(o)
    );
}

/// Overwrites `bytes` at `offset` of segment `name`'s file, as a hostile or buggy peer would.
pub fn poke(name: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .expect("open the segment's file");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    f.write_all(bytes).expect("write");
}

/// Reads `len` bytes at `offset` of segment `name`'s file.
pub fn peek(name: &str, offset: u64, len: usize) -> Vec<u8> {
    let bytes = std::fs::read(format!("/dev/shm{name}")).expect("read the segment's file");
    bytes[offset as usize..offset as usize + len].to_vec()
}
