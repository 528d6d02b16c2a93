//! One slot: a read that returns a version returns the version of the bytes it copied.
//!
//! With one slot the slot holds whatever complete value the writer wrote last, possibly newer
//! than the `published` counter a read loads first. A writer process publishes back to back
//! values whose every word is their version; readers check that every read's bytes are the
//! version it reports, and that `wait_for_update` with that version waits for newer bytes.

mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Options, RawReader, SharedState};
use std::time::Duration;

/// A payload of four words, each the value's version.
type Payload = [u64; 4];

/// Reads per reader kind.
const READS: u64 = 200_000;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Takes over the segment and writes back to back until killed; version `v` holds
        // `[v; 4]`.
        Some("writer") => {
            let mut w = Payload::open_writer(&env("SHM_NAME")).unwrap();
            let mut v = w.version();
            loop {
                v += 1;
                w.write(&[v; 4]);
                assert_eq!(w.version(), v);
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// The four words of a payload's bytes.
fn words(bytes: &[u8]) -> [u64; 4] {
    core::array::from_fn(|i| u64::from_ne_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
}

#[test]
fn every_version_a_one_slot_read_reports_is_the_version_of_its_bytes() {
    if role().is_some() {
        return;
    }
    let name = Name::new("one-slot-versions");
    drop(Options::new().slots(1).create(&name, &[0u64; 4]).unwrap());
    let r = RawReader::open(&name).unwrap();
    assert_eq!(r.info().slots(), 1);
    let mut writer = spawn_role(ENTRY, "writer", &[("SHM_NAME", name.to_string())]);
    // Observed progress: the writer is writing.
    let started = r.wait_for_update(0, Duration::from_secs(20));
    let mut bytes = vec![0u8; r.payload_size()];
    let (mut mismatched, mut stale_waits, mut newer_than_published) = (0u64, 0u64, 0u64);
    let (mut worst, mut try_read_timeouts) = (0u64, 0u64);
    for i in 0..READS {
        let version = if i % 2 == 0 {
            // A bounded number of attempts, each of which a write in progress can spoil: with a
            // writer that never pauses, some run out (`Timeout`).
            match r.try_read(&mut bytes) {
                Ok(v) => v,
                Err(shm_core::Error::Timeout) => {
                    try_read_timeouts += 1;
                    continue;
                }
                Err(e) => panic!("{e}"),
            }
        } else {
            r.read_timeout(&mut bytes, Duration::from_secs(5)).unwrap()
        };
        let value = words(&bytes);
        assert!(value.iter().all(|&w| w == value[0]), "torn: {value:?}");
        if value[0] != version {
            mismatched += 1;
            worst = worst.max(value[0].abs_diff(version));
        }
        if version > r.version() {
            newer_than_published += 1;
        }
        // A wait for a version after the one read returns newer bytes.
        if i % 64 == 0 {
            let next = r.wait_for_update(version, Duration::from_secs(5)).unwrap();
            let again = r.read_timeout(&mut bytes, Duration::from_secs(5)).unwrap();
            if next <= version || words(&bytes)[0] <= value[0] {
                stale_waits += 1;
            }
            if words(&bytes)[0] != again {
                mismatched += 1;
            }
        }
    }
    let reached = r.version();
    kill(&mut writer);
    eprintln!("the writer wrote versions {started:?} to {reached} meanwhile");
    assert!(started.is_ok(), "the writer never wrote: {started:?}");
    eprintln!(
        "{READS} reads: {mismatched} reported another version than their bytes' (off by up \
         to {worst}), {newer_than_published} newer than `published` loaded after them, \
         {stale_waits} waits that returned no newer bytes ({try_read_timeouts} try_read \
         timeouts)"
    );
    assert!(try_read_timeouts < READS / 2, "try_read never got a value");
    assert_eq!(
        mismatched, 0,
        "reads reported a version their bytes are not"
    );
    assert_eq!(
        stale_waits, 0,
        "a wait for the next version returned the same bytes"
    );
}
