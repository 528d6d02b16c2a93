//! Support for tests that run real processes: unique segment names that are removed on drop,
//! and re-running the test binary itself in a child role.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable that tells a re-executed test binary which role to play.
pub const ROLE: &str = "SHM_TEST_ROLE";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A segment name unique to this process and call, removed (if it exists) on drop.
pub struct Name(pub String);

impl Name {
    /// `/shmtest-<tag>-<pid>-<n>`: every test segment starts with `/shmtest-`, so a leak is
    /// easy to spot in /dev/shm.
    pub fn new(tag: &str) -> Name {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Name(format!("/shmtest-{tag}-{}-{n}", std::process::id()))
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
        let _ = shm_core::remove(&self.0);
    }
}

/// Starts this test binary again, running only the test `entry` (which must dispatch on
/// [`ROLE`]) in role `role`, with extra environment `env`. Stdout is piped.
pub fn spawn_role(entry: &str, role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current test binary"));
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child role")
}

/// The role this process was started in, if it is a child. A child asks the kernel to kill it
/// when the thread that spawned it ends, so no child outlives a failed or interrupted test.
pub fn role() -> Option<String> {
    let role = std::env::var(ROLE).ok()?;
    // SAFETY: `prctl(PR_SET_PDEATHSIG, SIGKILL)` only sets a flag on the calling process; the
    // unused arguments are passed as zero as the man page asks.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    Some(role)
}

/// An environment variable a child role needs.
pub fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("child role needs {key}"))
}

/// Sends SIGKILL to `child` and reaps it.
pub fn kill(child: &mut Child) {
    // SAFETY: `kill` with a pid we spawned and have not reaped, so it cannot name a reused
    // process; SIGKILL has no handler to run.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
}

/// A small deterministic pseudo-random generator (xorshift64*), for varied timings.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
