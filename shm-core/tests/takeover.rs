//! Writer takeover after a crash leaves the slots as the dead writer left them.

mod common;

use common::Name;
use shm_core::seqlock::complete;
use shm_core::{Error, Options, SharedState};
use std::io::{Seek, SeekFrom, Write};

/// Offset of slot 0's sequence word (docs/segment-format.md).
const SLOT0_SEQ: u64 = 256;

fn poke_u64(name: &str, offset: u64, value: u64) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&value.to_ne_bytes()).unwrap();
}

#[test]
fn one_slot_takeover_never_reuses_a_sequence_value() {
    let name = Name::new("aba");
    let mut w = Options::new().slots(1).create(&name, &[1u64; 4]).unwrap();
    w.write(&[2; 4]);
    let published = w.version();
    drop(w);
    // As a writer that completed version `published + 1` and died before publishing it.
    poke_u64(&name, SLOT0_SEQ, complete(published + 1));
    let mut w = <[u64; 4]>::open_writer(&name).unwrap();
    assert_eq!(
        w.version(),
        published + 1,
        "continues after the newest version seen"
    );
    w.write(&[3; 4]);
    let r = <[u64; 4]>::open(&name).unwrap();
    assert_eq!(r.slot_sequences(), vec![complete(published + 2)]);
    assert_eq!(r.read(), [3; 4]);
}

#[test]
fn one_slot_takeover_of_a_half_written_slot_refuses_update() {
    let name = Name::new("torn1");
    let mut w = Options::new().slots(1).create(&name, &[1u64; 4]).unwrap();
    w.write(&[2; 4]);
    let published = w.version();
    drop(w);
    // As a writer that died in the middle of writing version `published + 1`.
    poke_u64(&name, SLOT0_SEQ, complete(published + 1) - 1);
    let r = <[u64; 4]>::open(&name).unwrap();
    assert!(matches!(r.try_read(), Err(Error::WriterDied)));
    let mut w = <[u64; 4]>::open_writer(&name).unwrap();
    assert!(matches!(w.get(), Err(Error::WriterDied)));
    assert!(matches!(
        w.try_update(|v| v[0] += 1),
        Err(Error::WriterDied)
    ));
    w.write(&[5; 4]);
    assert_eq!(r.read(), [5; 4]);
    w.update(|v| v[0] = 6);
    assert_eq!(r.read(), [6, 5, 5, 5]);
}

#[test]
fn two_slot_takeover_continues_from_the_published_value() {
    let name = Name::new("take2");
    let mut w = <[u64; 4]>::create(&name, &[1; 4]).unwrap();
    w.write(&[2; 4]);
    let published = w.version();
    drop(w);
    // The dead writer half-wrote the next version into the other slot.
    let stride = 64 + 64; // sequence line + 32 payload bytes, rounded to 64
    poke_u64(
        &name,
        SLOT0_SEQ + stride * ((published + 1) % 2),
        complete(published + 1) - 1,
    );
    let r = <[u64; 4]>::open(&name).unwrap();
    assert_eq!(r.read(), [2; 4], "readers keep the last published value");
    let mut w = <[u64; 4]>::open_writer(&name).unwrap();
    assert_eq!(w.get().unwrap(), [2; 4]);
    w.update(|v| v[0] = 9);
    assert_eq!(r.read(), [9, 2, 2, 2]);
    assert_eq!(r.version(), published + 1);
}

#[test]
fn a_writer_that_dies_between_publishing_and_waking_strands_no_waiter() {
    let name = Name::new("nowake");
    let w = <[u64; 4]>::create(&name, &[1; 4]).unwrap();
    let r = <[u64; 4]>::open(&name).unwrap();
    let since = r.version();
    let waiter = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let v = r.wait_for_update(since, std::time::Duration::from_secs(60));
        (v, start.elapsed())
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    // As a writer that stored `published` and died before its futex wake-up.
    poke_u64(&name, 128, since + 1);
    let (v, waited) = waiter.join().unwrap();
    assert_eq!(v.unwrap(), since + 1);
    // Noticed at the end of a wait slice, not at the 60 s timeout.
    assert!(waited < std::time::Duration::from_secs(30), "{waited:?}");
    drop(w);
}
