//! Resource limits and foreign segments: a full file system at create, too many slots, a
//! descriptor too large, names too long, a segment that belongs to another user, and the
//! permission bits of a created segment whatever the creator's umask.

mod common;

use common::{env, poke, role, spawn_role, Field, Name, ENTRY};
use shm_core::{Backend, Error, Options, SharedState};
use std::time::Duration;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Small {
    a: u64,
    b: u64,
}

/// 128 KiB: more than the small file system below holds.
type Big = [u64; 16384];

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("foreign") => foreign(),
        Some("create-under-umask") => create_under_umask(),
        Some("create-read-only") => create_read_only(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// A small tmpfs mounted for one test, unmounted and removed on drop.
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    /// Mounts a 64 KiB tmpfs, or `None` (with a message) where mounting is not allowed.
    fn mount(tag: &str) -> Option<SmallFs> {
        let dir = std::env::temp_dir().join(format!("shmtest-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_full_file_system_at_create_is_a_clear_error_and_leaves_nothing() {
    let Some(fs) = SmallFs::mount("full") else {
        return;
    };
    let path = fs.0.join("big-segment");
    let path_s = path.to_str().unwrap().to_string();
    let big: Box<Big> = Box::new([1; 16384]);
    let e = Options::new()
        .backend(Backend::File)
        .create::<Big>(&path_s, &big)
        .unwrap_err();
    let Error::Io { name, source, .. } = &e else {
        panic!("expected an I/O error, got {e:?}");
    };
    assert_eq!(name, &path_s);
    assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}");
    assert!(
        e.to_string().contains(&path_s),
        "the error names the segment: {e}"
    );
    assert!(!path.exists(), "a failed create left its file behind");
    // A segment that fits is fine on the same file system.
    let small = fs.0.join("small-segment");
    let w = Options::new()
        .backend(Backend::File)
        .create(small.to_str().unwrap(), &Small { a: 1, b: 2 })
        .unwrap();
    drop(w);
}

#[test]
fn too_many_slots() {
    let e = std::panic::catch_unwind(|| Options::new().slots(2000)).unwrap_err();
    let msg = e.downcast_ref::<String>().unwrap();
    assert_eq!(msg, "slot count must be between 1 and 1024, got 2000");
    // A header that claims more slots than any writer makes is refused.
    let name = Name::new("slots");
    drop(Small::create(&name, &Small { a: 1, b: 2 }).unwrap());
    for n in [1025, 5000, u32::MAX as u64] {
        poke(&name, Field::SlotCount, n);
        let e = Small::open(&name).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{n}: {e}");
        assert!(e.to_string().contains("slot count"), "{e}");
    }
}

#[test]
fn a_descriptor_too_large_is_refused_before_anything_is_allocated() {
    let name = Name::new("desc");
    drop(Small::create(&name, &Small { a: 1, b: 2 }).unwrap());
    for len in [(1u64 << 20) + 1, u64::MAX] {
        poke(&name, Field::DescriptorLen, len);
        let e = shm_core::RawReader::open(&name).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{len}: {e}");
        assert!(e.to_string().contains("descriptor too large"), "{e}");
    }
}

#[test]
fn names_too_long() {
    let shm = format!("/{}", "n".repeat(255));
    let e = Small::create(&shm, &Small { a: 1, b: 2 }).unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    let file = std::env::temp_dir().join("x".repeat(300));
    let e = Options::new()
        .backend(Backend::File)
        .create(file.to_str().unwrap(), &Small { a: 1, b: 2 })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
}

/// Run as another user: what it can and cannot do with this user's segments.
fn foreign() {
    let private = common::env("PRIVATE");
    let shared = common::env("SHARED");
    let private_open = format!("{:?}", Small::open(&private).map(|r| r.read()));
    println!("outcome private-open {private_open}");
    let r = Small::open(&shared).expect("open a world-readable segment");
    println!("outcome shared-read {:?}", r.read());
    let v = r.version();
    // Read-only: it cannot register as a waiter, and polls; the wait is still bounded.
    let waited = r.wait_for_update(v, Duration::from_millis(50));
    println!("outcome shared-wait {waited:?}");
    let writer = Small::open_writer(&shared).map(|_| ());
    println!("outcome shared-writer {writer:?}");
    let either = Small::open_or_create(&shared, &Small { a: 0, b: 0 }).map(|_| ());
    println!("outcome shared-open-or-create {either:?}");
}

#[test]
fn a_segment_of_another_user() {
    if role().is_some() {
        return;
    }
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a child as another user");
        return;
    }
    let private = Name::new("private");
    let shared = Name::new("shared");
    let _p = Options::new()
        .mode(0o600)
        .create(&private, &Small { a: 1, b: 1 })
        .unwrap();
    let _s = Options::new()
        .mode(0o644)
        .create(&shared, &Small { a: 2, b: 2 })
        .unwrap();
    // The test binary is copied where an unprivileged user can run it.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!("shmtest-foreign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("resources-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe)
        .args([
            ENTRY,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(common::ROLE, "foreign")
        .env("PRIVATE", private.to_string())
        .env("SHARED", shared.to_string())
        .uid(65534)
        .gid(65534)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("run the test binary as nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("outcome {key} ")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_string()
    };
    assert!(
        get("private-open").starts_with("Err(PermissionDenied"),
        "{text}"
    );
    assert_eq!(get("shared-read"), "Small { a: 2, b: 2 }");
    assert_eq!(get("shared-wait"), "Err(Timeout)");
    assert!(
        get("shared-writer").starts_with("Err(PermissionDenied"),
        "{text}"
    );
    assert!(
        get("shared-open-or-create").starts_with("Err(PermissionDenied"),
        "{text}"
    );
}

/// Creates the named shared-memory segment and the file segment with mode 0o444 (no owner
/// write), as the user this process runs as, and reports each outcome.
fn create_read_only() {
    for backend in [Backend::Shm, Backend::File] {
        let name = env(if backend == Backend::Shm {
            "SHM_NAME"
        } else {
            "SHM_PATH"
        });
        let outcome = Options::new()
            .backend(backend.clone())
            .mode(0o444)
            .create(&name, &Small { a: 1, b: 2 })
            .map(|mut w| {
                w.write(&Small { a: 3, b: 4 });
                w.reader().unwrap().read()
            });
        println!("outcome {backend:?} {outcome:?}");
    }
}

/// Sets the umask to 022 (process-wide: that is why this runs in a child process) and creates
/// the named shared-memory segment and the file segment with `SHM_MODE` (octal; default
/// options when empty).
fn create_under_umask() {
    // SAFETY: `umask` only sets this process's file mode creation mask.
    unsafe { libc::umask(0o022) };
    let mode = env("SHM_MODE");
    let options = |backend: Backend| {
        let o = Options::new().backend(backend);
        if mode.is_empty() {
            o
        } else {
            o.mode(u32::from_str_radix(&mode, 8).unwrap())
        }
    };
    let w = options(Backend::Shm)
        .create(&env("SHM_NAME"), &Small { a: 1, b: 2 })
        .unwrap();
    let f = options(Backend::File)
        .create(&env("SHM_PATH"), &Small { a: 1, b: 2 })
        .unwrap();
    drop((w, f));
}

#[test]
fn a_created_segment_has_exactly_the_mode_asked_for_whatever_the_umask() {
    if role().is_some() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    for (asked, expected) in [("666", 0o666), ("640", 0o640), ("", 0o600)] {
        let name = Name::new("mode");
        let path = std::env::temp_dir().join(format!(
            "shmtest-mode-{}-{}.shm",
            std::process::id(),
            expected
        ));
        let mut child = spawn_role(
            ENTRY,
            "create-under-umask",
            &[
                ("SHM_MODE", asked.to_string()),
                ("SHM_NAME", name.to_string()),
                ("SHM_PATH", path.to_str().unwrap().to_string()),
            ],
        );
        assert!(child.wait().unwrap().success());
        let shm_mode = std::fs::metadata(format!("/dev/shm{}", &*name))
            .unwrap()
            .permissions()
            .mode();
        let file_mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            shm_mode & 0o777,
            expected,
            "shared memory created with mode {asked:?} under umask 022: {shm_mode:o}"
        );
        assert_eq!(
            file_mode & 0o777,
            expected,
            "file created with mode {asked:?} under umask 022: {file_mode:o}"
        );
    }
}

#[test]
fn an_unprivileged_user_creates_a_segment_without_owner_write() {
    if role().is_some() {
        return;
    }
    // SAFETY: `geteuid` has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run a child as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let name = Name::new("read-only");
    // A directory the unprivileged user may write, holding a copy of this test binary it can
    // run and its file segment.
    let dir = std::env::temp_dir().join(format!("shmtest-read-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = dir.join("resources-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("segment.shm");
    let out = std::process::Command::new(&exe)
        .args([
            ENTRY,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(common::ROLE, "create-read-only")
        .env("SHM_NAME", name.to_string())
        .env("SHM_PATH", path.to_str().unwrap())
        .uid(65534)
        .gid(65534)
        .output();
    let shm_mode = std::fs::metadata(format!("/dev/shm{}", &*name)).map(|m| m.permissions().mode());
    let file_mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.expect("run the test binary as nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{errors}");
    for backend in ["Shm", "File"] {
        assert!(
            text.contains(&format!("outcome {backend} Ok(Small {{ a: 3, b: 4 }})")),
            "creating with mode 0o444 as an unprivileged user failed: {text}"
        );
    }
    assert_eq!(shm_mode.unwrap() & 0o777, 0o444);
    assert_eq!(file_mode.unwrap() & 0o777, 0o444);
}
