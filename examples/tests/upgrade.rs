//! Rolling upgrades between separately compiled programs: `upgrade_v1`, `upgrade_v2` and
//! `upgrade_v3` each have their own version of the appendable `Pose` (32, 40 and 56 bytes; v3
//! grows v2's nested appendable struct, its last field, and appends after it). Each runs as
//! its own process; every reader checks every snapshot field by field, with zero for the
//! fields the segment's version does not have, under a writer that publishes back to back.
//! The test moves on only when a reader reports the progress it waits for.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A segment name for this test, removed on drop.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("/shmtest-{tag}-{}-{n}", std::process::id()))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shm_core::remove(&self.0);
    }
}

/// A running example program, killed on drop.
struct Program {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    what: String,
}

impl Program {
    fn start(version: u32, args: &[&str]) -> Program {
        let exe = match version {
            1 => env!("CARGO_BIN_EXE_upgrade_v1"),
            2 => env!("CARGO_BIN_EXE_upgrade_v2"),
            _ => env!("CARGO_BIN_EXE_upgrade_v3"),
        };
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Program {
            child,
            lines,
            what: format!("upgrade_v{version} {}", args.join(" ")),
        }
    }

    /// The next line the program prints; panics if it ends first or reports a failure.
    fn line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) if !line.starts_with("BAD") => line,
            Some(Ok(line)) => panic!("{}: {line}", self.what),
            _ => panic!("{} ended: {:?}", self.what, self.child.wait()),
        }
    }

    /// Reads lines until one equals `want`.
    fn wait_for(&mut self, want: &str) {
        loop {
            if self.line() == want {
                return;
            }
        }
    }

    /// Waits for the program to exit by itself and returns its code.
    fn exit_code(mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reader of `version` on `name`, whose stored layout is of version `stored`, reporting
/// `compat`, checking `count` distinct values (0: until killed).
fn reader(version: u32, name: &str, stored: u32, compat: &str, count: u64) -> Program {
    let (stored, count) = (stored.to_string(), count.to_string());
    Program::start(version, &["read", name, &stored, compat, &count])
}

const VALUES: u64 = 20_000;

#[test]
fn a_v1_writer_with_v2_and_v3_readers() {
    let name = Name::new("upgrade-v1w");
    let mut w = Program::start(1, &["create", &name.0]);
    w.wait_for("ready");
    let mut readers = [
        reader(1, &name.0, 1, "Exact", VALUES),
        reader(2, &name.0, 1, "SegmentOlder", VALUES),
        reader(3, &name.0, 1, "SegmentOlder", VALUES),
    ];
    for r in &mut readers {
        assert!(r.line().starts_with("phase 0"));
        assert_eq!(r.line(), format!("done {VALUES}"));
    }
    for r in readers {
        assert_eq!(r.exit_code(), Some(0));
    }
}

#[test]
fn a_v3_writer_with_v1_and_v2_readers() {
    let name = Name::new("upgrade-v3w");
    let mut w = Program::start(3, &["create", &name.0]);
    w.wait_for("ready");
    let mut readers = [
        reader(1, &name.0, 3, "SegmentNewer", VALUES),
        reader(2, &name.0, 3, "SegmentNewer", VALUES),
        reader(3, &name.0, 3, "Exact", VALUES),
    ];
    for r in &mut readers {
        assert!(r.line().starts_with("phase 0"));
        assert_eq!(r.line(), format!("done {VALUES}"));
    }
    for r in readers {
        assert_eq!(r.exit_code(), Some(0));
    }
}

/// The nested `ext` grown by v3: a v3 reader of a v2 segment reads `ext.z` and zero for
/// `ext.w` and `tail`; a v1 reader reads its prefix.
#[test]
fn a_v2_writer_with_v1_and_v3_readers() {
    let name = Name::new("upgrade-v2w");
    let mut w = Program::start(2, &["create", &name.0]);
    w.wait_for("ready");
    let mut readers = [
        reader(1, &name.0, 2, "SegmentNewer", VALUES),
        reader(3, &name.0, 2, "SegmentOlder", VALUES),
    ];
    for r in &mut readers {
        assert!(r.line().starts_with("phase 0"));
        assert_eq!(r.line(), format!("done {VALUES}"));
    }
    for r in readers {
        assert_eq!(r.exit_code(), Some(0));
    }
}

/// A v1 writer runs; a v2 reader starts; the writer is upgraded to v2 by a takeover that
/// adopts the stored layout (refused without adoption); the v1 reader keeps reading and the
/// v2 reader keeps reading zero for the field the segment does not have; then a rollback to a
/// plain v1 writer, which finds its own layout stored.
#[test]
fn a_rolling_upgrade_and_rollback() {
    let name = Name::new("upgrade-roll");
    let mut w1 = Program::start(1, &["create", &name.0]);
    w1.wait_for("ready");
    let mut r1 = reader(1, &name.0, 1, "Exact", 0);
    let mut r2 = reader(2, &name.0, 1, "SegmentOlder", 0);
    r1.wait_for("phase 0");
    r2.wait_for("phase 0");
    drop(w1);

    let mut refused = Program::start(2, &["takeover", &name.0, "plain"]);
    let line = refused.line();
    let want = format!(
        "refused: layout mismatch: segment {:?} holds an older version of `Pose` (32 bytes); this program writes `Pose` of 40 bytes: remove and re-create the segment, or allow adoption of its layout with `Options::adopt_stored_layout(true)` (layout hash ",
        name.0
    );
    assert!(line.starts_with(&want), "{line}");
    assert_eq!(refused.exit_code(), Some(3));

    let mut w2 = Program::start(2, &["takeover", &name.0, "adopt"]);
    assert_eq!(w2.line(), "compat SegmentOlder");
    assert_eq!(w2.line(), "writing from 1000000000");
    r1.wait_for("phase 1");
    r2.wait_for("phase 1");
    drop(w2);

    let mut back = Program::start(1, &["takeover", &name.0, "plain"]);
    assert_eq!(back.line(), "compat Exact");
    assert_eq!(back.line(), "writing from 2000000000");
    r1.wait_for("phase 2");
    r2.wait_for("phase 2");
}
