//! Hostile peers and damaged segments: every attack gets a documented outcome (a value or a
//! typed error), never a crash, a panic or a hang in a bounded call. Damage is done from
//! another process where that is the attack.

mod common;

use common::{env, kill, poke, poke_bytes, role, spawn_role, Field, Name, ENTRY};
use shm_core::{Backend, Error, Options, RawReader, SharedState};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct State {
    tick: u64,
    data: [u64; 7],
}

fn state(tick: u64) -> State {
    State {
        tick,
        data: [tick; 7],
    }
}

/// Slot stride of a `State` segment: one cache line of sequence word, then 64 payload bytes.
const STRIDE: u64 = 128;

/// Offset of slot `i`'s sequence word.
fn seq_offset(i: u64) -> u64 {
    256 + i * STRIDE
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("poke") => {
            let offset: u64 = env("OFFSET").parse().unwrap();
            let value: u64 = env("VALUE").parse().unwrap();
            poke_bytes(&env("SHM_NAME"), offset, &value.to_ne_bytes());
            println!("done");
        }
        Some("toggle-ready") => toggle_ready(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Damages the named segment from another process: writes `value` at `offset`.
fn poke_from_child(name: &str, offset: u64, value: u64) {
    let mut child = spawn_role(
        ENTRY,
        "poke",
        &[
            ("SHM_NAME", name.to_string()),
            ("OFFSET", offset.to_string()),
            ("VALUE", value.to_string()),
        ],
    );
    assert!(child.wait().unwrap().success());
}

/// Runs `f` on another thread and fails the test if it does not return within `limit`.
fn bounded<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("the call hung")
}

// ---- 2: something other than a regular file at the name ------------------------------------

fn mkfifo(path: &str) {
    let c = std::ffi::CString::new(path).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

fn assert_not_a_segment<T: std::fmt::Debug>(what: &str, r: shm_core::Result<T>) {
    match r {
        Err(Error::NotASegment { found: 0 }) => {}
        other => panic!("{what}: expected NotASegment, got {other:?}"),
    }
}

#[test]
fn a_fifo_at_the_name_is_refused_at_once() {
    let name = Name::new("fifo");
    mkfifo(&format!("/dev/shm{}", &*name));
    let n = name.to_string();
    let start = Instant::now();
    bounded(Duration::from_secs(10), move || {
        let slow = Options::new().ready_wait(Duration::from_secs(5));
        assert_not_a_segment("open", slow.open::<State>(&n));
        assert_not_a_segment("open_raw", slow.open_raw(&n));
        assert_not_a_segment("open_writer", slow.open_writer::<State>(&n));
        assert_not_a_segment("open_or_create", slow.open_or_create(&n, &state(1)));
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "waited for a FIFO"
    );
    let e = State::open(&name).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a shared-state segment (not a regular file, or a symbolic link)"
    );
}

#[test]
fn a_directory_at_the_name_is_not_a_segment() {
    let name = Name::new("dir");
    let path = format!("/dev/shm{}", &*name);
    std::fs::create_dir(&path).unwrap();
    let r = State::open(&name);
    let w = State::open_writer(&name);
    std::fs::remove_dir(&path).unwrap();
    assert_not_a_segment("open", r);
    assert_not_a_segment("open_writer", w);
}

#[test]
fn file_backend_refuses_fifos_directories_and_symlinks() {
    let dir = std::env::temp_dir().join(format!("shmtest-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = Options::new()
        .backend(Backend::File)
        .ready_wait(Duration::from_secs(5));
    let fifo = dir.join("fifo");
    mkfifo(fifo.to_str().unwrap());
    let real = dir.join("real");
    let link = dir.join("link");
    let real_s = real.to_str().unwrap().to_string();
    let w = file.create(&real_s, &state(3)).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let paths = [fifo, dir.clone(), link.clone()].map(|p| p.to_str().unwrap().to_string());
    let results = bounded(Duration::from_secs(10), move || {
        paths
            .iter()
            .map(|p| {
                (
                    format!("{:?}", file.open::<State>(p)),
                    format!("{:?}", file.open_writer::<State>(p).map(|_| ())),
                )
            })
            .collect::<Vec<_>>()
    });
    for (r, w) in &results {
        assert!(r.starts_with("Err(NotASegment { found: 0 })"), "{r}");
        assert!(w.starts_with("Err(NotASegment { found: 0 })"), "{w}");
    }
    // The real file is still fine, and creating through a planted link is refused.
    assert_eq!(
        Options::new()
            .backend(Backend::File)
            .open::<State>(&real_s)
            .unwrap()
            .read(),
        state(3)
    );
    drop(w);
    let e = Options::new()
        .backend(Backend::File)
        .create(link.to_str().unwrap(), &state(4))
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- 3: open_or_create against a peer that shows `ready` only while the lease is held ------

fn lease_held(f: &std::fs::File) -> bool {
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    };
    // SAFETY: `f` is open and `fl` a valid `flock` the kernel may overwrite.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    rc == 0 && fl.l_type != libc::F_UNLCK as libc::c_short
}

/// Keeps `state` at `ready` exactly while somebody holds the writer lease, and at `creating`
/// otherwise, for at most 20 s.
fn toggle_ready() {
    let name = env("SHM_NAME");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    println!("ready");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let state = if lease_held(&f) { 1 } else { 0 };
        poke(&name, Field::State, state);
    }
}

#[test]
fn open_or_create_ends_against_a_peer_that_toggles_ready() {
    if role().is_some() {
        return;
    }
    let name = Name::new("toggle");
    drop(State::create(&name, &state(5)).unwrap());
    poke(&name, Field::State, 0);
    let mut child = spawn_role(ENTRY, "toggle-ready", &[("SHM_NAME", name.to_string())]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let n = name.to_string();
    let outcome = bounded(Duration::from_secs(10), move || {
        Options::new()
            .ready_wait(Duration::from_millis(50))
            .open_or_create(&n, &state(6))
            .map(|w| w.get().ok())
    });
    kill(&mut child);
    match outcome {
        // Either it became the writer (keeping the lease it took to recover), or it gave up.
        Ok(_) | Err(Error::NotReady) => {}
        Err(e) => panic!("unexpected {e}"),
    }
}

// ---- 4: damaged slots with no writer alive ----------------------------------------------------

/// A two-slot segment that published versions 0..=3 (values `state(10 + v)`), writer gone.
fn published_three(name: &str) {
    let mut w = Options::new().slots(2).create(name, &state(10)).unwrap();
    for v in 1..=3 {
        w.write(&state(10 + v));
    }
}

#[test]
fn odd_published_slot_without_a_writer_is_corrupt_and_read_returns_the_newest_good_value() {
    if role().is_some() {
        return;
    }
    let name = Name::new("odd");
    published_three(&name);
    // Version 3 lives in slot 1; make its sequence word odd, as no dying writer can (it never
    // writes the published slot).
    poke_from_child(&name, seq_offset(1), 7);
    let r = State::open(&name).unwrap();
    assert!(!r.info().writer().alive());
    let e = r.try_read().unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("published slot"), "{e}");
    let e = r.read_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let mut buf = vec![0u8; 64];
    let raw = RawReader::open(&name).unwrap();
    assert!(matches!(
        raw.read_timeout(&mut buf, Duration::from_millis(50)),
        Err(Error::Corrupt { .. })
    ));
    // `read` does not panic: it returns the newest slot that is still consistent (version 2).
    let got = bounded(Duration::from_secs(10), move || r.read());
    assert_eq!(got, state(12));
}

#[test]
fn published_pointing_at_a_slot_that_never_matches_is_corrupt() {
    if role().is_some() {
        return;
    }
    let name = Name::new("pubjump");
    published_three(&name);
    poke_from_child(&name, Field::Published.place().0, 1_000_001);
    let r = State::open(&name).unwrap();
    assert!(matches!(r.try_read(), Err(Error::Corrupt { .. })));
    let mut out = state(0);
    let r = bounded(Duration::from_secs(10), move || {
        r.read_into(&mut out);
        assert_eq!(out, state(13), "the newest consistent slot");
        r
    });
    // A new writer takes over: no current value until it writes, which repairs the segment.
    let mut w = State::open_writer(&name).unwrap();
    assert!(matches!(w.get(), Err(Error::Corrupt { .. })));
    assert!(matches!(
        w.try_update(|s| s.tick += 1),
        Err(Error::Corrupt { .. })
    ));
    w.write(&state(99));
    assert_eq!(w.get().unwrap(), state(99));
    assert_eq!(r.read(), state(99));
    assert_eq!(r.try_read().unwrap(), state(99));
}

#[test]
fn one_slot_writer_died_mid_write_read_returns_without_panicking() {
    if role().is_some() {
        return;
    }
    let name = Name::new("oneslot");
    drop(Options::new().slots(1).create(&name, &state(1)).unwrap());
    poke_from_child(&name, seq_offset(0), 3);
    let r = State::open(&name).unwrap();
    assert!(matches!(r.try_read(), Err(Error::WriterDied)));
    // The slot's bytes as the writer left them.
    assert_eq!(bounded(Duration::from_secs(10), move || r.read()), state(1));
}

// ---- 5: header fields --------------------------------------------------------------------------

#[test]
fn a_maximal_waiter_count_does_not_wrap_and_the_wait_still_ends() {
    let name = Name::new("waiters");
    let mut w = State::create(&name, &state(1)).unwrap();
    poke(&name, Field::Waiters, u32::MAX as u64);
    let r = State::open(&name).unwrap();
    let waiting = std::thread::spawn(move || r.wait_for_update(0, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(50));
    let f = std::fs::read(format!("/dev/shm{}", &*name)).unwrap();
    let (off, _) = Field::Waiters.place();
    let waiters = u32::from_ne_bytes(f[off as usize..off as usize + 4].try_into().unwrap());
    assert_eq!(
        waiters,
        u32::MAX,
        "the registration wrapped the waiter count"
    );
    w.write(&state(2));
    let start = Instant::now();
    assert_eq!(waiting.join().unwrap().unwrap(), 1);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_takeover_at_the_maximal_epoch_is_refused() {
    let name = Name::new("epoch");
    drop(State::create(&name, &state(1)).unwrap());
    poke(&name, Field::WriterEpoch, u64::MAX);
    let e = State::open_writer(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("epoch"), "{e}");
    assert_eq!(
        State::open(&name).unwrap().info().writer().epoch(),
        u64::MAX
    );
    // One below is fine.
    poke(&name, Field::WriterEpoch, u64::MAX - 1);
    assert_eq!(
        State::open_writer(&name).unwrap().info().writer().epoch(),
        u64::MAX
    );
}

/// Stream writers and queue producers take over as state writers do: at the maximal epoch
/// the takeover is refused with the same error, never wrapped to 0.
#[test]
fn a_stream_or_queue_takeover_at_the_maximal_epoch_is_refused() {
    let stream = Name::new("epoch-stream");
    drop(u64::create_stream(&stream, 4).unwrap());
    poke(&stream, Field::WriterEpoch, u64::MAX);
    let e = u64::open_stream_writer(&stream).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("epoch"), "{e}");
    assert_eq!(
        u64::subscribe(&stream).unwrap().info().writer().epoch(),
        u64::MAX
    );
    poke(&stream, Field::WriterEpoch, u64::MAX - 1);
    assert_eq!(
        u64::open_stream_writer(&stream)
            .unwrap()
            .info()
            .writer()
            .epoch(),
        u64::MAX
    );

    let queue = Name::new("epoch-queue");
    drop(u64::create_queue(&queue, 4).unwrap());
    poke(&queue, Field::WriterEpoch, u64::MAX);
    let e = u64::open_queue_producer(&queue).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("epoch"), "{e}");
    poke(&queue, Field::WriterEpoch, u64::MAX - 1);
    assert_eq!(
        u64::open_queue_producer(&queue)
            .unwrap()
            .info()
            .writer()
            .epoch(),
        u64::MAX
    );
}

#[test]
fn payload_alignment_must_be_a_power_of_two_and_match_the_stored_layout() {
    let name = Name::new("align");
    drop(State::create(&name, &state(1)).unwrap());
    for (align, what) in [
        (3u64, "power of two"),
        (0, "power of two"),
        (16, "alignment"),
    ] {
        poke(&name, Field::PayloadAlign, align);
        for e in [
            State::open(&name).unwrap_err(),
            RawReader::open(&name).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Corrupt { .. }), "{align}: {e}");
            assert!(e.to_string().contains(what), "{align}: {e}");
        }
    }
}

#[test]
fn payload_size_off_by_eight_with_a_matching_hash_is_corrupt() {
    let name = Name::new("size8");
    drop(State::create(&name, &state(1)).unwrap());
    // Keep the geometry consistent with the new size, so that only the comparison with the
    // stored layout can catch it: 56 bytes still take a 128-byte slot stride.
    poke(&name, Field::PayloadSize, 56);
    for e in [
        State::open(&name).unwrap_err(),
        RawReader::open(&name).unwrap_err(),
    ] {
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("payload size"), "{e}");
    }
}

#[test]
fn the_stored_descriptor_is_rehashed_at_open() {
    let name = Name::new("rehash");
    drop(State::create(&name, &state(1)).unwrap());
    let desc = seq_offset(2);
    let file = std::fs::read(format!("/dev/shm{}", &*name)).unwrap();
    let text = &file[desc as usize..];
    // Rename the field `tick` to `tock` in the stored descriptor: still well-formed, but no
    // longer what the stored layout hash describes.
    let at = text
        .windows(4)
        .position(|w| w == b"tick")
        .expect("the descriptor names `tick`");
    poke_bytes(&name, desc + at as u64 + 1, b"o");
    let e = RawReader::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("layout hash"), "{e}");
    // A typed opener finds its hash matches the header's, then the same check refuses it.
    let e = State::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}
