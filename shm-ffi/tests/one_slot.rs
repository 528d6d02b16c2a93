//! One slot, through the C ABI: the version `shm_ffi_reader_try_read` and
//! `shm_ffi_reader_read_timeout` report is the version of the bytes they copied, while a writer
//! process writes back to back values whose every word is their version.

#[path = "../../shm-core/tests/common/mod.rs"]
mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Options, SharedState};
use shm_ffi::*;
use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

/// Reads per entry point.
const READS: u64 = 100_000;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Takes over the segment and writes back to back until killed; version `v` holds
        // `[v; 4]`.
        Some("writer") => {
            let mut w = <[u64; 4]>::open_writer(&env("SHM_NAME")).unwrap();
            let mut v = w.version();
            loop {
                v += 1;
                w.write(&[v; 4]);
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn last_error() -> String {
    // SAFETY: `shm_ffi_last_error` never returns null, and the string stays valid until the
    // next call into the library on this thread; we copy it at once.
    unsafe { CStr::from_ptr(shm_ffi_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_version_a_one_slot_read_reports_is_the_version_of_its_bytes() {
    if role().is_some() {
        return;
    }
    let name = Name::new("ffi-one-slot");
    drop(Options::new().slots(1).create(&name, &[0u64; 4]).unwrap());
    let c_name = CString::new(name.to_string()).unwrap();
    let mut r = null_mut();
    // SAFETY: a NUL-terminated name, no descriptor, a writable out pointer.
    let st = unsafe { shm_ffi_reader_open(c_name.as_ptr(), null(), 0, 0, &mut r) };
    assert_eq!(st, Status::Ok, "{}", last_error());
    let mut writer = spawn_role(ENTRY, "writer", &[("SHM_NAME", name.to_string())]);
    let mut started = 0;
    // SAFETY: a live reader handle and a writable out pointer.
    let st = unsafe { shm_ffi_reader_wait_for_update(r, 0, 20_000_000_000, &mut started) };
    let (mut reads, mut mismatched, mut busy, mut worst) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..2 * READS {
        let mut words = [0u64; 4];
        let mut version = 0;
        // SAFETY: a live reader handle, a buffer of the payload size, a writable version.
        let got = unsafe {
            if i % 2 == 0 {
                shm_ffi_reader_try_read(r, words.as_mut_ptr().cast(), 32, &mut version)
            } else {
                shm_ffi_reader_read_timeout(
                    r,
                    words.as_mut_ptr().cast(),
                    32,
                    5_000_000_000,
                    &mut version,
                )
            }
        };
        if got == Status::Timeout && i % 2 == 0 {
            // Every bounded attempt met a write in progress (the writer never pauses).
            busy += 1;
            continue;
        }
        assert_eq!(got, Status::Ok, "{}", last_error());
        assert!(words.iter().all(|&w| w == words[0]), "torn: {words:?}");
        reads += 1;
        if words[0] != version {
            mismatched += 1;
            worst = worst.max(words[0].abs_diff(version));
        }
    }
    kill(&mut writer);
    // SAFETY: a live reader handle, not used again.
    unsafe { shm_ffi_reader_close(r) };
    assert_eq!(st, Status::Ok, "the writer never wrote");
    eprintln!(
        "{reads} reads from version {started}: {mismatched} reported another version than \
         their bytes' (off by up to {worst}); {busy} try_read timeouts"
    );
    assert!(reads > READS, "too few reads succeeded: {reads}");
    assert_eq!(
        mismatched, 0,
        "reads reported a version their bytes are not"
    );
}
