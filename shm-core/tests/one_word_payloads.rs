//! Payloads of 8 bytes or less: the writer keeps the latest value in the header's `inline`
//! word, and `Reader::read` loads it instead of copying a slot.

mod common;

use common::{env, kill, peek, poke, role, spawn_role, Field, Name, Rng, ENTRY};
use shm_core::{Options, SharedState};
use std::time::Duration;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Takes over the counter segment and publishes 1, 2, 3, ... back to back until killed:
        // the value of version `v` is `v`.
        Some("counter") => {
            let mut w = u64::open_writer(&env("SHM_NAME")).unwrap();
            let mut v = w.version();
            loop {
                v += 1;
                w.write(&v);
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

#[test]
fn the_inline_word_holds_the_latest_value_zero_extended() {
    let name = Name::new("inline");
    let mut w = u16::create(&name, &0xbeef).unwrap();
    // Creation stores the initial value too (docs/segment-format.md, "Header").
    assert_eq!(peek(&name, Field::Inline), 0xbeef);
    let r = u16::open(&name).unwrap();
    for v in [1u16, 0xffff, 0x1234] {
        w.write(&v);
        assert_eq!(peek(&name, Field::Inline), u64::from(v));
        assert_eq!(r.read(), v);
        let mut into = 0;
        r.read_into(&mut into);
        assert_eq!(into, v);
    }
}

#[test]
fn larger_payloads_leave_the_inline_word_alone() {
    let name = Name::new("inline9");
    let mut w = <[u8; 9]>::create(&name, &[7; 9]).unwrap();
    w.write(&[8; 9]);
    assert_eq!(peek(&name, Field::Inline), 0);
}

/// A writer that dies in the middle of writing a one-slot segment leaves the slot half
/// written: an untyped reader (which reads the slots) then has no value, but every typed read
/// of a one-word payload still has the last complete one, from the `inline` word, without a
/// retry.
#[test]
fn a_half_written_slot_does_not_stop_a_one_word_read() {
    let name = Name::new("inline-torn");
    let mut w = Options::new().slots(1).create(&name, &5u64).unwrap();
    w.write(&6);
    let published = w.version();
    drop(w);
    // As a writer that died in the middle of writing version `published + 1`.
    poke(&name, Field::Slot0Seq, 2 * (published + 1) + 1);
    let raw = shm_core::RawReader::open(&name).unwrap();
    // Another test of this binary that spawns a process shares every open file description
    // with its child until the child's `exec` closes them, the writer's lease among them: until
    // then the writer still counts as alive and the read reports a busy slot, not a death.
    let mut result = raw.try_read(&mut [0; 8]);
    for _ in 0..100_000 {
        if !matches!(result, Err(shm_core::Error::Timeout)) {
            break;
        }
        std::thread::yield_now();
        result = raw.try_read(&mut [0; 8]);
    }
    assert!(
        matches!(result, Err(shm_core::Error::WriterDied)),
        "{result:?}"
    );
    let r = u64::open(&name).unwrap();
    assert_eq!(r.read(), 6);
    assert_eq!(r.try_read().unwrap(), 6);
    assert_eq!(r.read_timeout(Duration::from_millis(10)).unwrap(), 6);
}

/// Reads of a one-word payload never go backwards, whichever typed reads are mixed: `read`
/// and `read_into` load the `inline` word, which the writer stores before it publishes, so
/// if `try_read` or `read_timeout` copied the published slot instead, a `read` that returned
/// the value about to be published could be followed by one of the published value, one
/// less. A writer process publishes a counter back to back; this process reads it with a
/// random sequence of every typed read and counts the reads older than the one before.
#[test]
fn reads_of_a_one_word_payload_never_go_backwards_across_calls() {
    if role().is_some() {
        return;
    }
    const READS: u64 = 3_000_000;
    const KINDS: [&str; 5] = [
        "read",
        "read_into",
        "try_read",
        "read_timeout",
        "read_timeout_into",
    ];
    let name = Name::new("inline-monotonic");
    drop(u64::create(&name, &0).unwrap());
    let r = u64::open(&name).unwrap();
    let mut writer = spawn_role(ENTRY, "counter", &[("SHM_NAME", name.to_string())]);
    // Observed progress: the writer is publishing.
    let started = r.wait_for_update(0, Duration::from_secs(20));
    let timeout = Duration::from_secs(5);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut regressions = [[0u64; KINDS.len()]; KINDS.len()];
    let mut pairs = [[0u64; KINDS.len()]; KINDS.len()];
    let (mut last, mut last_kind) = (r.read(), 0);
    for _ in 0..READS {
        let kind = rng.below(KINDS.len() as u64) as usize;
        let v = match kind {
            0 => r.read(),
            1 => {
                let mut v = 0;
                r.read_into(&mut v);
                v
            }
            2 => r.try_read().unwrap(),
            3 => r.read_timeout(timeout).unwrap(),
            _ => {
                let mut v = 0;
                r.read_timeout_into(&mut v, timeout).unwrap();
                v
            }
        };
        pairs[last_kind][kind] += 1;
        if v < last {
            regressions[last_kind][kind] += 1;
        }
        (last, last_kind) = (v, kind);
    }
    let still_writing = r.version();
    kill(&mut writer);
    assert!(started.is_ok(), "the writer never published: {started:?}");
    let total: u64 = regressions.iter().flatten().sum();
    for (a, row) in regressions.iter().enumerate() {
        for (b, &n) in row.iter().enumerate() {
            if n > 0 {
                eprintln!(
                    "{} then {}: {n} of {} pairs went backwards",
                    KINDS[a], KINDS[b], pairs[a][b]
                );
            }
        }
    }
    eprintln!("{READS} reads up to version {still_writing}: {total} went backwards");
    assert_eq!(
        total, 0,
        "a read returned an older value than the read before it"
    );
}
