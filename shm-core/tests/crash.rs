//! A writer process killed with SIGKILL in the middle of writes: readers never hang, never see
//! a torn value, keep reading the last published value, see the writer dead, and a new writer
//! takes over.

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::{Error, Options, Reader, SharedState};
use std::time::{Duration, Instant};

/// 64 KiB payload: a write takes long enough that most kills land inside one.
const W: usize = 8192;
type Payload = [u64; W];

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("writer") => writer(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Takes over the segment and publishes, forever, values whose every word is the version
/// they are published as.
fn writer() {
    let mut w = Payload::open_writer(&env("SHM_NAME")).expect("take over");
    let mut value: Box<Payload> = Box::new([0; W]);
    loop {
        value.fill(w.version() + 1);
        w.write(&value);
    }
}

fn wait_for_version(r: &Reader<Payload>, above: u64) {
    let start = Instant::now();
    while r.version() <= above {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writer published nothing"
        );
        std::thread::yield_now();
    }
}

/// Reads, with a deadline so a hang fails the test instead of stalling it, and validates.
fn read_checked(r: &Reader<Payload>) -> u64 {
    let v: Box<Payload> = Box::new(r.read_timeout(Duration::from_secs(5)).expect("read"));
    let c = v[0];
    assert!(v.iter().all(|&x| x == c), "torn value after a crash");
    c
}

#[test]
fn two_slot_readers_keep_the_last_value_when_the_writer_is_killed_mid_write() {
    if role().is_some() {
        return;
    }
    let name = Name::new("crash2");
    drop(Payload::create(&name, &[0; W]).unwrap());
    let r = Payload::open(&name).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut kills, mut mid_write) = (0u32, 0u32);
    // At least 100 kills that landed inside a write, at varied points.
    while mid_write < 100 {
        assert!(
            kills < 1000,
            "only {mid_write} of {kills} kills landed mid-write"
        );
        let before = r.version();
        let mut child = spawn_role(ENTRY, "writer", &[("SHM_NAME", name.to_string())]);
        wait_for_version(&r, before);
        assert!(r.info().writer().alive());
        assert_eq!(
            r.info().writer().epoch(),
            2 + kills as u64,
            "a takeover is a new epoch"
        );
        // The new writer continues from the value it took over.
        assert!(read_checked(&r) > before);
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        kill(&mut child);
        kills += 1;

        if shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(&r))
            .iter()
            .any(|s| s % 2 == 1)
        {
            mid_write += 1;
        }
        assert!(
            !r.info().writer().alive(),
            "the lease dies with its process"
        );
        // The last published value is intact: its counter equals its version (each write
        // publishes its version number as its value).
        let published = r.version();
        assert_eq!(read_checked(&r), published);
        assert_eq!(r.try_read().expect("try_read after a crash")[0], published);
        assert_eq!(
            read_checked(&r),
            published,
            "nothing changes after the crash"
        );
    }
    eprintln!("{kills} kills, {mid_write} of them mid-write");
}

#[test]
fn one_slot_writer_killed_mid_write_reports_writer_died() {
    if role().is_some() {
        return;
    }
    let name = Name::new("crash1");
    drop(
        Options::new()
            .slots(1)
            .create::<Payload>(&name, &[0; W])
            .unwrap(),
    );
    let r = Payload::open(&name).unwrap();
    let mut rng = Rng(42);
    let (mut kills, mut mid_write, mut last) = (0u32, 0u32, 0u64);
    while mid_write < 10 {
        assert!(
            kills < 500,
            "only {mid_write} of {kills} kills landed mid-write"
        );
        let before = r.version();
        let mut child = spawn_role(ENTRY, "writer", &[("SHM_NAME", name.to_string())]);
        wait_for_version(&r, before);
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        kill(&mut child);
        kills += 1;
        assert!(!r.info().writer().alive());
        if shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(&r))[0] % 2
            == 1
        {
            mid_write += 1;
            // Nothing consistent is left, and the reader is told so instead of spinning.
            assert!(matches!(r.try_read(), Err(Error::WriterDied)));
            assert!(matches!(
                r.read_timeout(Duration::from_secs(5)),
                Err(Error::WriterDied)
            ));
        } else {
            // One slot is overwritten in place: a write that completed just before the kill is
            // readable even if its version was not published yet.
            let c = read_checked(&r);
            assert!(c >= r.version() && c > last, "value went backwards");
            last = c;
        }
    }
    // A new writer takes over and completes the slot; readers see its values.
    let mut w = Payload::open_writer(&name).unwrap();
    if shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(&r))[0] % 2 == 1 {
        // Nothing complete to build on: `update` refuses, a whole new value is needed.
        assert!(matches!(w.get(), Err(Error::WriterDied)));
        assert!(matches!(w.try_update(|_| {}), Err(Error::WriterDied)));
    }
    let next = w.version() + 1;
    w.write(&[next; W]);
    assert_eq!(read_checked(&r), next);
    eprintln!("{kills} kills, {mid_write} of them mid-write");
}
