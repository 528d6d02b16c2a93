//! `shm gc`: removes exactly the segments whose writer is dead and that no process maps.

mod common;

use common::*;
use std::path::Path;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

fn names(list: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn gc_removes_dead_unmapped_segments_and_keeps_live_or_mapped_ones() {
    let dead = Name::new("gc");
    let live = Name::new("gc");
    let mapped = Name::new("gc");
    let prefix = format!("/shmtest-cli-gc-{}-", std::process::id());
    dead_writer_segment(&dead);
    dead_writer_segment(&mapped);
    let _writer = LiveWriter::start(&live, 0);
    // This process maps `mapped`; its writer is dead.
    let reader = shm_core::RawReader::open(&mapped).expect("open");
    assert!(!reader.info().writer().alive());

    let out = shm(&["gc", "--dry-run", "--json", "--prefix", &prefix]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["dry_run"], true);
    assert_eq!(names(&j["removed"]), [dead.to_string()]);
    let mut kept = vec![live.to_string(), mapped.to_string()];
    kept.sort();
    assert_eq!(names(&j["kept"]), kept);
    let reason_of = |name: &str| {
        j["kept"]
            .as_array()
            .expect("kept")
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(reason_of(&live).contains("alive"), "{}", reason_of(&live));
    assert!(
        reason_of(&mapped).contains(&format!("mapped by pid {}", std::process::id())),
        "{}",
        reason_of(&mapped)
    );
    for n in [&dead, &live, &mapped] {
        assert!(Path::new(&n.path()).exists(), "dry run removed {}", &**n);
    }
    // The human form says the same.
    let text = stdout(&shm(&["gc", "-n", "--prefix", &prefix]));
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line(&dead).starts_with("would remove"), "{text}");
    assert!(line(&live).starts_with("kept"), "{text}");
    assert!(line(&mapped).starts_with("kept"), "{text}");

    let out = shm(&["gc", "--json", "--prefix", &prefix]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["dry_run"], false);
    assert_eq!(names(&j["removed"]), [dead.to_string()]);
    assert_eq!(names(&j["kept"]), kept);
    assert!(!Path::new(&dead.path()).exists());
    assert!(Path::new(&live.path()).exists());
    assert!(Path::new(&mapped.path()).exists());

    // Unmapped now, and its writer still dead: the next run removes it.
    drop(reader);
    let j = json(&shm(&["gc", "--json", "--prefix", &prefix]));
    assert_eq!(names(&j["removed"]), [mapped.to_string()]);
    assert!(Path::new(&live.path()).exists());
}

/// `shm gc --json --prefix PREFIX`, paused between its scan and its removals: `act` runs in
/// that pause (see the test hook in gc.rs), then gc goes on; returns its JSON.
fn gc_with_act_after_scan(prefix: &str, act: impl FnOnce()) -> serde_json::Value {
    static DIRS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shmtest-cli-gc-pause-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let gc = shm_command()
        .args(["gc", "--json", "--prefix", prefix])
        .env("SHM_GC_TEST_PAUSE", &dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run shm gc");
    let mut scanned = false;
    for _ in 0..3000 {
        if dir.join("scanned").exists() {
            scanned = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(scanned, "gc did not reach the end of its scan");
    act();
    std::fs::write(dir.join("go"), b"").unwrap();
    let out = gc.wait_with_output().expect("wait for shm gc");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_code(&out, 0);
    json(&out)
}

/// The reason gc gave for keeping `name`.
fn kept_reason(j: &serde_json::Value, name: &str) -> String {
    j["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("{name:?} not kept: {j}"))
}

#[test]
fn gc_keeps_a_segment_a_process_maps_after_the_scan() {
    let seg = Name::new("gcrace");
    let prefix = format!("/shmtest-cli-gcrace-{}-", std::process::id());
    dead_writer_segment(&seg);
    let mut reader = None;
    let j = gc_with_act_after_scan(&prefix, || {
        // A reader maps the segment after gc found nobody mapping it.
        reader = Some(shm_core::RawReader::open(&seg).expect("open"));
    });
    assert_eq!(names(&j["removed"]), Vec::<String>::new(), "{j}");
    let reason = kept_reason(&j, &seg);
    assert!(
        reason.contains(&format!(
            "pid {} mapped it after the scan",
            std::process::id()
        )),
        "{reason}"
    );
    assert!(Path::new(&seg.path()).exists());
    drop(reader);
}

#[test]
fn gc_keeps_a_name_a_live_creator_makes_again_after_the_scan() {
    let seg = Name::new("gcnew");
    let prefix = format!("/shmtest-cli-gcnew-{}-", std::process::id());
    dead_writer_segment(&seg);
    let mut creator = None;
    let j = gc_with_act_after_scan(&prefix, || {
        // The dead segment is removed and a creator makes the name again: it created the
        // object, sized it and holds the writer lease, but has not made it ready yet
        // (docs/segment-format.md, "Creating", steps 1 to 3).
        shm_core::remove(&seg).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(seg.path())
            .unwrap();
        file.set_len(4096).unwrap();
        // SAFETY: all-zero bytes are a valid `flock`.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_len = 1;
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open and `fl` is a valid `flock` that outlives the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        assert_eq!(rc, 0, "take the writer lease");
        creator = Some(file);
    });
    assert_eq!(names(&j["removed"]), Vec::<String>::new(), "{j}");
    let reason = kept_reason(&j, &seg);
    assert!(reason.contains("another segment"), "{reason}");
    assert!(
        Path::new(&seg.path()).exists(),
        "gc removed a segment its creator is making"
    );
    drop(creator);
}

#[test]
fn gc_keeps_mapped_segments_whatever_their_names() {
    let base = Name::new("gcname");
    let prefix = format!("/shmtest-cli-gcname-{}-", std::process::id());
    // Names /proc/PID/maps shows differently (a newline is escaped), or that look like a
    // mapping whose name is gone.
    let odd = [
        Name(format!("{}-line\nbreak", &*base)),
        Name(format!("{}-gone (deleted)", &*base)),
    ];
    let mut readers = Vec::new();
    for n in &odd {
        dead_writer_segment(n);
        readers.push(shm_core::RawReader::open(n).expect("open"));
    }
    let j = json(&shm(&["gc", "--json", "--prefix", &prefix]));
    assert_eq!(names(&j["removed"]), Vec::<String>::new(), "{j}");
    for n in &odd {
        let reason = kept_reason(&j, n);
        assert!(
            reason.contains(&format!("mapped by pid {}", std::process::id())),
            "{reason}"
        );
        assert!(
            Path::new(&n.path()).exists(),
            "gc removed mapped {:?}",
            &**n
        );
    }
    // Unmapped, they go.
    drop(readers);
    let j = json(&shm(&["gc", "--json", "--prefix", &prefix]));
    let mut expected: Vec<String> = odd.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(names(&j["removed"]), expected, "{j}");
}

#[test]
fn gc_keeps_a_segment_a_live_creator_recovers_in_place_after_the_scan() {
    let seg = Name::new("gcrecover");
    let prefix = format!("/shmtest-cli-gcrecover-{}-", std::process::id());
    dead_writer_segment(&seg);
    let mut recoverer = None;
    let j = gc_with_act_after_scan(&prefix, || {
        // A creator recovering the segment in place (as `open_or_create` does with one whose
        // creator died): it holds the writer lease and has set `state` back to creating.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg.path())
            .unwrap();
        // SAFETY: all-zero bytes are a valid `flock`.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_len = 1;
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open and `fl` is a valid `flock` that outlives the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        assert_eq!(rc, 0, "take the writer lease");
        poke(&seg, 12, &0u32.to_ne_bytes());
        recoverer = Some(file);
    });
    assert_eq!(names(&j["removed"]), Vec::<String>::new(), "{j}");
    let reason = kept_reason(&j, &seg);
    assert!(reason.contains("took it over meanwhile"), "{reason}");
    assert!(
        Path::new(&seg.path()).exists(),
        "gc removed a segment its creator is recovering"
    );
    drop(recoverer);
}

#[test]
fn gc_removes_more_dead_segments_than_it_may_open_descriptors() {
    const SEGMENTS: usize = 48;
    let prefix = format!("/shmtest-cli-gcmany-{}-", std::process::id());
    let segments: Vec<Name> = (0..SEGMENTS).map(|_| Name::new("gcmany")).collect();
    for n in &segments {
        // Created and dropped: no lease, no mapping, as a dead writer leaves it.
        drop(
            shm_core::Options::new()
                .create::<u64>(n, &1)
                .expect("create"),
        );
    }
    let mut gc = shm_command();
    gc.args(["gc", "--json", "--prefix", &prefix]);
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls `setrlimit`, which is
    // async-signal-safe, on a stack value.
    unsafe {
        gc.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 32,
                rlim_max: 32,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let out = gc.output().expect("run shm gc");
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(
        names(&j["removed"]).len(),
        SEGMENTS,
        "gc with 32 descriptors kept some of {SEGMENTS} dead segments: {}",
        j["kept"]
    );
    for n in &segments {
        assert!(!Path::new(&n.path()).exists(), "{} left", &**n);
    }
}
