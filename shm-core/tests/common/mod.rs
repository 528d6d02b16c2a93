//! Shared test support: unique segment names that are removed on drop, re-running the test
//! binary itself in a child role, damaging a segment's header field by name, and one
//! deterministic random generator.
#![allow(dead_code)]

pub mod seccomp;

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

/// The name of every test file's child-process entry point: an ignored test (so that it is not
/// counted as a passing test in a normal run) that dispatches on [`ROLE`].
pub const ENTRY: &str = "child_process_entry_point";

/// Why the entry point is ignored in a normal run.
pub const ENTRY_ONLY: &str = "child-process entry point: runs only when a test spawns it";

/// Starts this test binary again, running only the ignored test `entry` (which must dispatch
/// on [`ROLE`]) in role `role`, with extra environment `env`. Stdout is piped.
pub fn spawn_role(entry: &str, role: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current test binary"));
    cmd.args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
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

/// A small deterministic pseudo-random generator (xorshift64*), for varied timings and hostile
/// bytes. The seed must not be 0.
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
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A header field of a segment, or a slot's sequence word: its offset and width, from the
/// tables in docs/segment-format.md.
#[derive(Clone, Copy, Debug)]
pub enum Field {
    Magic,
    FormatVersion,
    State,
    LayoutHash,
    PayloadSize,
    PayloadAlign,
    SlotCount,
    SlotsOffset,
    SlotStride,
    DescriptorOffset,
    DescriptorLen,
    TotalSize,
    WriterPid,
    CreatorPid,
    WriterEpoch,
    Published,
    /// The latest value of a one-word payload.
    Inline,
    Futex,
    Waiters,
    /// The first slot's sequence word.
    Slot0Seq,
}

impl Field {
    /// (offset, width in bytes)
    pub fn place(self) -> (u64, usize) {
        use Field::*;
        match self {
            Magic => (0, 8),
            FormatVersion => (8, 4),
            State => (12, 4),
            LayoutHash => (16, 8),
            PayloadSize => (24, 8),
            PayloadAlign => (32, 4),
            SlotCount => (36, 4),
            SlotsOffset => (40, 8),
            SlotStride => (48, 8),
            DescriptorOffset => (56, 8),
            DescriptorLen => (64, 8),
            TotalSize => (72, 8),
            WriterPid => (80, 4),
            CreatorPid => (84, 4),
            WriterEpoch => (88, 8),
            Published => (128, 8),
            Inline => (136, 8),
            Futex => (192, 4),
            Waiters => (196, 4),
            Slot0Seq => (256, 8),
        }
    }
}

/// Writes `value` (native-endian, cut to the field's width) into `field` of the named
/// shared-memory segment, as a hostile or buggy peer would.
pub fn poke(name: &str, field: Field, value: u64) {
    let (offset, width) = field.place();
    poke_bytes(name, offset, &value.to_ne_bytes()[..width]);
}

/// Reads `field` (native-endian, zero-extended from the field's width) of the named
/// shared-memory segment, through the file rather than a mapping.
pub fn peek(name: &str, field: Field) -> u64 {
    use std::io::{Read, Seek, SeekFrom};
    let (offset, width) = field.place();
    let mut f = std::fs::File::open(format!("/dev/shm{name}")).expect("open the segment's file");
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut bytes = [0u8; 8];
    f.read_exact(&mut bytes[..width]).unwrap();
    u64::from_ne_bytes(bytes)
}

/// Writes `bytes` at `offset` of the named shared-memory segment.
pub fn poke_bytes(name: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .expect("open the segment's file");
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}
