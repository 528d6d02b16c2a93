//! No missed wake-ups: a writer that publishes without a locked instruction (the asymmetric
//! barrier, `protocol::Announce`) still wakes every reader blocked in `wait_for_update`.
//!
//! A writer process publishes one version at a time; before each publication it waits until
//! this process (the reader) acknowledges the previous version, then pauses a random few
//! hundred nanoseconds, so that its publication races with the reader registering as a
//! waiter. A wake-up the writer misses leaves the reader asleep until its wait slice ends
//! (100 ms) with the futex word unchanged: the test counts those waits and expects none.
//! Removing the reader's barrier (`wait::barrier_after_registering`) makes them appear.

mod common;

use common::{env, role, spawn_role, Field, Name, Rng, ENTRY};
use shm_core::SharedState;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Versions published per run.
const ROUNDS: u64 = 50_000;
/// The reader's longest futex sleep (`WAIT_SLICE` in `wait/futex.rs`): a wait that lasts this
/// long ended by its re-check, not by a wake-up.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// The writer's longest pause between seeing an acknowledgement and publishing.
const MAX_PAUSE_NS: u64 = 800;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Publishes versions 1..=ROUNDS, each after the reader acknowledged the previous one
        // and a random pause.
        Some("publisher") => {
            let mut w = u64::open_writer(&env("SHM_NAME")).unwrap();
            let ack = u64::open(&env("ACK_NAME")).unwrap();
            let mut rng = Rng(env("SEED").parse().unwrap());
            for v in 1..=ROUNDS {
                while ack.read() != v - 1 {
                    core::hint::spin_loop();
                }
                let pause = Duration::from_nanos(rng.below(MAX_PAUSE_NS));
                let start = Instant::now();
                while start.elapsed() < pause {
                    core::hint::spin_loop();
                }
                w.write(&v);
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// The futex word of a segment, read through its file (not a mapping of ours).
fn futex_word(file: &File) -> u32 {
    let (offset, width) = Field::Futex.place();
    let mut bytes = [0u8; 4];
    file.read_exact_at(&mut bytes[..width], offset).unwrap();
    u32::from_ne_bytes(bytes)
}

#[test]
fn a_writer_never_misses_a_waiter() {
    if role().is_some() {
        return;
    }
    let name = Name::new("wake-race");
    let ack_name = Name::new("wake-ack");
    drop(u64::create(&name, &0).unwrap());
    let mut ack = u64::create(&ack_name, &0).unwrap();
    let r = u64::open(&name).unwrap();
    let file = File::open(format!("/dev/shm{}", &*name)).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut publisher = spawn_role(
        ENTRY,
        "publisher",
        &[
            ("SHM_NAME", name.to_string()),
            ("ACK_NAME", ack_name.to_string()),
            ("SEED", seed.to_string()),
        ],
    );
    let (mut missed, mut slept) = (0u64, 0u64);
    for v in 1..=ROUNDS {
        let word = futex_word(&file);
        let start = Instant::now();
        let got = r.wait_for_update(v - 1, Duration::from_secs(20)).unwrap();
        let took = start.elapsed();
        assert_eq!(got, v, "the writer publishes one version at a time");
        if took >= Duration::from_micros(5) {
            slept += 1;
        }
        // Woken by the writer, the word has changed; a wait the writer missed ends only
        // when its slice does, with the word as it was.
        if took >= WAIT_SLICE && futex_word(&file) == word {
            missed += 1;
        }
        ack.write(&v);
    }
    assert!(publisher.wait().unwrap().success());
    eprintln!(
        "{ROUNDS} rounds (seed {seed}): {slept} waits of 5 us or more, {missed} missed wake-ups"
    );
    assert_eq!(
        missed, 0,
        "waits that only their {WAIT_SLICE:?} re-check ended"
    );
}
