//! Writer takeover after a crash leaves the slots as the dead writer left them.

mod common;

use common::{poke, poke_bytes, Field, Name};
use shm_core::{Error, Options, SharedState};

/// The sequence value of a slot that holds version `v` complete (docs/segment-format.md).
fn complete(v: u64) -> u64 {
    2 * v + 2
}

#[test]
fn one_slot_takeover_never_reuses_a_sequence_value() {
    let name = Name::new("aba");
    let mut w = Options::new().slots(1).create(&name, &[1u64; 4]).unwrap();
    w.write(&[2; 4]);
    let published = w.version();
    drop(w);
    // As a writer that completed version `published + 1` and died before publishing it.
    poke(&name, Field::Slot0Seq, complete(published + 1));
    let mut w = <[u64; 4]>::open_writer(&name).unwrap();
    assert_eq!(
        w.version(),
        published + 1,
        "continues after the newest version seen"
    );
    w.write(&[3; 4]);
    let r = <[u64; 4]>::open(&name).unwrap();
    assert_eq!(
        shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(&r)),
        vec![complete(published + 2)]
    );
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
    poke(&name, Field::Slot0Seq, complete(published + 1) - 1);
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
    poke_bytes(
        &name,
        Field::Slot0Seq.place().0 + stride * ((published + 1) % 2),
        &(complete(published + 1) - 1).to_ne_bytes(),
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
    poke(&name, Field::Published, since + 1);
    let (v, waited) = waiter.join().unwrap();
    assert_eq!(v.unwrap(), since + 1);
    // Noticed at the end of a wait slice, not at the 60 s timeout.
    assert!(waited < std::time::Duration::from_secs(30), "{waited:?}");
    drop(w);
}

/// What `shm gc` does to a segment it found dead: takes the writer lease on an open file
/// description of its own and, if it got it, removes the name while holding it. Says whether
/// it removed the name.
fn collect_if_dead(name: &str) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
    else {
        return false;
    };
    // SAFETY: `flock` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_len = 1;
    // SAFETY: `file` is open and `fl` a valid `flock` that outlives the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } != 0 {
        return false;
    }
    std::fs::remove_file(format!("/dev/shm{name}")).is_ok()
}

#[test]
fn a_takeover_never_becomes_the_writer_of_a_segment_removed_meanwhile() {
    // Each round races a takeover of a dead writer's segment against a collector removing it;
    // whichever wins, the new writer must never hold a segment whose name is gone.
    for round in 0..3000 {
        let name = Name::new("gc-race");
        drop(u64::create(&name, &1).unwrap());
        let go = std::sync::Barrier::new(2);
        let (taken, removed) = std::thread::scope(|s| {
            let collector = s.spawn(|| {
                go.wait();
                collect_if_dead(&name)
            });
            go.wait();
            let taken = u64::open_writer(&name);
            (taken, collector.join().unwrap())
        });
        match taken {
            Ok(w) => assert!(
                !removed,
                "round {round}: became the writer of {} after its removal (version {})",
                &*name,
                w.version()
            ),
            // Removed before the takeover opened it, or while the collector held the lease.
            Err(Error::NotFound { .. } | Error::WriterBusy { .. }) => assert!(removed),
            Err(e) => panic!("round {round}: {e}"),
        }
    }
}
