//! Every error variant, produced by a test that causes it.

mod common;

use common::{poke, poke_bytes, role, spawn_role, Field, Name, ENTRY};
use shm_core::{Error, Options, SharedState};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

mod v1 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f64; 3],
        pub status: u32,
        pub flags: u32,
    }
}

mod v2 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Telemetry {
        pub tick: u64,
        pub pos: [f32; 3],
        pub status: u32,
        pub flags: u32,
        pub _pad: [u8; 4],
    }
}

const T1: v1::Telemetry = v1::Telemetry {
    tick: 1,
    pos: [1.0, 2.0, 3.0],
    status: 2,
    flags: 3,
};

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("open") => {
            let name = common::env("SHM_NAME");
            match v1::Telemetry::open(&name) {
                Ok(_) => println!("outcome ok"),
                Err(e) => println!("outcome {e:?}"),
            }
        }
        Some("crashing-creator") => {
            let name = common::env("SHM_NAME");
            let _ =
                shm_core::__private::hooks::crash_before_ready(Options::new()).create(&name, &T1);
            unreachable!("the creator aborts before the segment is ready");
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// The file behind a named segment, for tests that damage it.
fn shm_file(name: &str) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap()
}

#[test]
fn a_missing_segment_is_not_found() {
    let name = Name::new("missing");
    assert!(matches!(
        v1::Telemetry::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v1::Telemetry::open_writer(&name),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        shm_core::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn creating_a_taken_name_fails_with_already_exists() {
    let name = Name::new("exists");
    let _w = v1::Telemetry::create(&name, &T1).unwrap();
    let e = v1::Telemetry::create(&name, &T1).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("a shared segment named {:?} already exists", &*name)
    );
}

#[test]
fn invalid_names_are_refused_with_the_reason() {
    for bad in [
        "no-slash",
        "/",
        "/a/b",
        "/nul\0",
        "/..",
        &format!("/{}", "x".repeat(300)),
    ] {
        let e = v1::Telemetry::create(bad, &T1).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
        assert!(e.to_string().starts_with("invalid segment name"), "{e}");
        assert!(matches!(
            v1::Telemetry::open(bad),
            Err(Error::InvalidName { .. })
        ));
    }
}

#[test]
fn layout_mismatch_names_the_field() {
    let name = Name::new("mismatch");
    let _w = v1::Telemetry::create(&name, &T1).unwrap();
    let e = v2::Telemetry::open(&name).unwrap_err();
    let Error::LayoutMismatch {
        expected,
        found,
        first_difference,
    } = &e
    else {
        panic!("expected LayoutMismatch, got {e}");
    };
    assert_eq!(*expected, v2::Telemetry::LAYOUT_HASH);
    assert_eq!(*found, v1::Telemetry::LAYOUT_HASH);
    assert_eq!(
        first_difference,
        "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]` at offset 8 in this program"
    );
    assert!(
        e.to_string().starts_with("layout mismatch: field `pos`"),
        "{e}"
    );
    // The writer side checks too.
    assert!(matches!(
        v2::Telemetry::open_writer(&name),
        Err(Error::LayoutMismatch { .. })
    ));
}

#[test]
fn wrong_magic_is_not_a_segment() {
    let name = Name::new("magic");
    drop(v1::Telemetry::create(&name, &T1).unwrap());
    poke_bytes(&name, Field::Magic.place().0, b"NOTOURS!");
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotASegment { .. }), "{e}");
}

#[test]
fn newer_format_version_is_refused() {
    let name = Name::new("version");
    drop(v1::Telemetry::create(&name, &T1).unwrap());
    poke(&name, Field::FormatVersion, 99);
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(
        matches!(
            e,
            Error::FormatVersion {
                expected: 2,
                found: 99
            }
        ),
        "{e}"
    );
}

/// A segment of format version 1 (no `inline` word, waiters without the barrier) is refused:
/// its writer would not keep this reader's one-word reads current, nor wake it reliably.
#[test]
fn a_version_1_segment_is_refused() {
    let name = Name::new("version1");
    drop(v1::Telemetry::create(&name, &T1).unwrap());
    poke(&name, Field::FormatVersion, 1);
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(
        matches!(
            e,
            Error::FormatVersion {
                expected: 2,
                found: 1
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("version 1"), "{e}");
}

#[test]
fn a_truncated_segment_is_refused() {
    let name = Name::new("trunc");
    drop(v1::Telemetry::create(&name, &T1).unwrap());
    let f = shm_file(&name);
    let full = f.metadata().unwrap().len();
    // Shorter than the header says.
    f.set_len(full - 1).unwrap();
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(
        matches!(e, Error::Truncated { expected, found } if expected == full && found == full - 1),
        "{e}"
    );
    // Too short for a header at all.
    f.set_len(100).unwrap();
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(matches!(e, Error::Truncated { found: 100, .. }), "{e}");
}

#[test]
fn a_corrupt_geometry_is_refused() {
    let name = Name::new("corrupt");
    drop(v1::Telemetry::create(&name, &T1).unwrap());
    poke(&name, Field::SlotCount, 0);
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    // slot_count = 3: the stored offsets no longer add up.
    poke(&name, Field::SlotCount, 3);
    let e = v1::Telemetry::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[test]
fn creator_died_before_ready_gives_not_ready() {
    if role().is_some() {
        return;
    }
    let name = Name::new("notready");
    let mut child = spawn_role(ENTRY, "crashing-creator", &[("SHM_NAME", name.to_string())]);
    let status = child.wait().unwrap();
    assert!(!status.success(), "the creator should have aborted");
    let wait = Duration::from_millis(200);
    let start = Instant::now();
    let e = Options::new()
        .ready_wait(wait)
        .open::<v1::Telemetry>(&name)
        .unwrap_err();
    assert!(matches!(e, Error::NotReady), "{e}");
    assert!(start.elapsed() >= wait, "gave up before the bounded wait");
    // Nobody holds the dead creator's lease, so an idempotent start takes the segment over and
    // initializes it; readers then open it normally.
    let w = Options::new()
        .ready_wait(wait)
        .open_or_create(&name, &T1)
        .expect("recover a segment whose creator died");
    assert!(w.created());
    let r = v1::Telemetry::open(&name).unwrap();
    assert_eq!(r.read(), T1);
    assert!(r.info().writer().alive());
}

#[test]
fn empty_segment_gives_not_ready() {
    // A creator that died between `shm_open` and `ftruncate` leaves an empty object.
    let name = Name::new("empty");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(format!("/dev/shm{}", &*name))
        .unwrap();
    let opts = Options::new().ready_wait(Duration::from_millis(50));
    let e = opts.open::<v1::Telemetry>(&name).unwrap_err();
    assert!(matches!(e, Error::NotReady), "{e}");
    let mut w = opts
        .open_or_create(&name, &T1)
        .expect("recover an empty segment");
    w.update(|t| t.tick += 1);
    assert_eq!(v1::Telemetry::open(&name).unwrap().read().tick, 2);
}

#[test]
fn a_slow_live_creator_is_not_taken_over() {
    // A process that holds the lease of a segment that is not ready is a live creator: an
    // idempotent start must wait for it and give up with NotReady, never re-initialize.
    let name = Name::new("slow");
    let path = format!("/dev/shm{}", &*name);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is open and `fl` is a valid `flock` that outlives the call.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(rc, 0);
    let e = Options::new()
        .ready_wait(Duration::from_millis(50))
        .open_or_create(&name, &T1)
        .unwrap_err();
    assert!(matches!(e, Error::NotReady), "{e}");
    assert_eq!(f.metadata().unwrap().len(), 0, "the segment was touched");
}

#[test]
fn forever_is_a_valid_timeout() {
    let name = Name::new("forever");
    let mut w = v1::Telemetry::create(&name, &T1).unwrap();
    w.update(|t| t.tick += 1);
    let r = v1::Telemetry::open(&name).unwrap();
    assert_eq!(r.wait_for_update(0, Duration::MAX).unwrap(), 1);
    assert_eq!(r.read_timeout(Duration::MAX).unwrap().tick, 2);
    assert!(Options::new()
        .ready_wait(Duration::MAX)
        .open::<v1::Telemetry>(&name)
        .is_ok());
}

#[test]
fn an_unreadable_segment_gives_permission_denied() {
    if role().is_some() {
        return;
    }
    let name = Name::new("perm");
    let _w = Options::new().mode(0o600).create(&name, &T1).unwrap();
    // SAFETY: `geteuid` has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let outcome = if root {
        // Root bypasses file modes: ask an unprivileged process to open it. The test binary is
        // copied to a world-readable temporary directory first, since the build directory may
        // sit where an unprivileged user cannot reach it.
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let dir = std::env::temp_dir().join(format!("shmtest-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("errors-test");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            ENTRY,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(common::ROLE, "open")
        .env("SHM_NAME", name.to_string())
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped());
        let out = cmd.output();
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.expect("run the test binary as an unprivileged user");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("outcome ").map(str::to_string))
            .expect("child outcome")
    } else {
        std::fs::set_permissions(
            format!("/dev/shm{}", &*name),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        format!("{:?}", v1::Telemetry::open(&name).unwrap_err())
    };
    assert!(outcome.starts_with("PermissionDenied"), "{outcome}");
}

#[test]
fn second_writer_is_busy_with_the_holder_pid() {
    let name = Name::new("busy");
    let _w = v1::Telemetry::create(&name, &T1).unwrap();
    let e = v1::Telemetry::open_writer(&name).unwrap_err();
    assert!(
        matches!(e, Error::WriterBusy { pid } if pid == std::process::id()),
        "{e}"
    );
    let e = v1::Telemetry::open_or_create(&name, &T1).unwrap_err();
    assert!(matches!(e, Error::WriterBusy { .. }), "{e}");
}

#[test]
fn wait_times_out_when_nothing_is_written() {
    let name = Name::new("timeout");
    let _w = v1::Telemetry::create(&name, &T1).unwrap();
    let r = v1::Telemetry::open(&name).unwrap();
    let start = Instant::now();
    let e = r
        .wait_for_update(r.version(), Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    assert!(start.elapsed() >= Duration::from_millis(100));
}

#[test]
fn display_is_lowercase_and_sources_chain() {
    use std::error::Error as _;
    let io = Error::Io {
        action: "creating",
        name: "/x".to_string(),
        source: std::io::Error::other("no space left on device"),
    };
    assert!(io.source().is_some());
    // Display describes this error only; the cause is reached through `source()`.
    assert_eq!(io.to_string(), "creating segment \"/x\"");
    for e in [
        Error::NotReady,
        Error::Timeout,
        Error::WriterDied,
        Error::WriterBusy { pid: 7 },
        io,
    ] {
        let s = e.to_string();
        assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
        assert!(!s.ends_with('.'), "{s}");
    }
}
