//! Writers that take turns (`Options::shared_writers`): real writer and reader processes.
//!
//! - Four writer processes each add 1 to a counter 250,000 times in turns: the result is
//!   exact, and reader processes that check every snapshot see no torn one.
//! - The same while one writer is SIGKILLed 50 times, at points chosen by observed progress
//!   (most inside its turn, some in the middle of publishing), and restarted: no turn is lost
//!   or doubled, and every recovery is one epoch.
//! - A lone writer killed at random points of 64 KiB publications (at least 20 of them cut
//!   short, a slot left odd): readers keep the last value, the next turn recovers from it.
//! - Single writers and turn-taking writers exclude each other; a lock of another ABI is
//!   refused; a turn that cannot start in time is `Timeout`.

mod common;

use common::{env, kill, poke_bytes, role, spawn_role, Name, Rng, ENTRY};
use shm_core::{Error, Options, SharedState};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout};
use std::time::Duration;

/// Writers that take part in a test: one entry of `done` each.
const WRITERS: usize = 4;
/// Words of `fill`: enough that publishing takes a while, so that some kills land mid-write.
const FILL: usize = 1000;

/// The shared value. In every published snapshot `counter == sum(done)` and every word of
/// `fill` is `counter`: fields written together in one turn, which a torn read would break.
#[derive(SharedState, Clone, Copy, Debug)]
#[repr(C)]
struct Tally {
    counter: u64,
    /// Turns each writer completed: its own record, which survives it, published with the
    /// counter in the same turn.
    done: [u64; WRITERS],
    fill: [u64; FILL],
}

const ZERO: Tally = Tally {
    counter: 0,
    done: [0; WRITERS],
    fill: [0; FILL],
};

/// How long a writer waits for its turn before the test fails: far longer than any turn.
const TURN_WAIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("writer") => writer(),
        Some("reader") => reader(),
        Some("holder") => holder(),
        Some("big_writer") => big_writer(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Writer `SHM_WRITER` attaches and takes turns until its `done` entry reaches `SHM_TURNS`. In
/// each turn it checks that its entry is the count it keeps itself (a lost or doubled turn of
/// its own would show there at once), then adds 1 to it and to the counter. With
/// `SHM_REPORT=1` it prints `B n` once its turn `n` has started (the lock held) and `E n` once
/// it was published. At the end: `done <turns> recovered <turns that recovered>`.
fn writer() {
    let name = env("SHM_NAME");
    let k: usize = env("SHM_WRITER").parse().unwrap();
    let target: u64 = env("SHM_TURNS").parse().unwrap();
    let report = env("SHM_REPORT") == "1";
    let mut w = Options::new()
        .shared_writers(true)
        .open_writer::<Tally>(&name)
        .expect("attach as a turn-taking writer");
    let mut mine: Option<u64> = None;
    let mut recovered = 0u64;
    // Bounded: every turn either ends the loop or raises `done[k]` by one, up to `target`.
    loop {
        let mut t = w.turn(TURN_WAIT).expect("a turn within the wait");
        if t.recovered() {
            recovered += 1;
            if report {
                println!("R");
            }
        }
        let n = t.done[k];
        if let Some(mine) = mine {
            assert_eq!(
                n, mine,
                "writer {k}: the segment lost or doubled one of its turns"
            );
        }
        assert_eq!(t.counter, t.done.iter().sum::<u64>(), "a turn began torn");
        if n >= target {
            t.discard();
            break;
        }
        if report {
            println!("B {}", n + 1);
        }
        t.done[k] += 1;
        t.counter += 1;
        let c = t.counter;
        t.fill = [c; FILL];
        drop(t);
        mine = Some(n + 1);
        if report {
            println!("E {}", n + 1);
        }
    }
    println!("done {} recovered {recovered}", mine.unwrap_or(target));
}

/// Reads until the counter reaches `SHM_TOTAL`, checking every snapshot; prints `reads <n>
/// torn <n>`. Bounded by the writers, whose failure ends the test (and this process with it).
fn reader() {
    let r = Tally::open(&env("SHM_NAME")).expect("open");
    let total: u64 = env("SHM_TOTAL").parse().unwrap();
    let (mut reads, mut torn) = (0u64, 0u64);
    loop {
        let t = r.read();
        reads += 1;
        let c = t.counter;
        if c != t.done.iter().sum::<u64>() || t.fill.iter().any(|&x| x != c) {
            torn += 1;
        }
        if c >= total {
            break;
        }
    }
    println!("reads {reads} torn {torn}");
}

/// Takes a turn and keeps it until its parent kills it.
fn holder() {
    let mut w = Options::new()
        .shared_writers(true)
        .open_writer::<Tally>(&env("SHM_NAME"))
        .unwrap();
    let mut t = w.turn(TURN_WAIT).unwrap();
    t.counter += 1; // half a change: the counter no longer matches `done`
    println!("holding");
    // Bounded: the parent kills it long before (and the kernel does if the parent dies).
    for _ in 0..600 {
        std::thread::sleep(Duration::from_secs(1));
    }
    t.discard();
    panic!("the holder was not killed in its turn");
}

/// 64 KiB: a publication takes long enough that kills land in the middle of one.
const BIG: usize = 8192;
type Big = [u64; BIG];

/// Attaches and takes turns for ever, each publishing a value whose every word is the version
/// it is published as; prints `started` after its first turn.
fn big_writer() {
    let mut w = Options::new()
        .shared_writers(true)
        .open_writer::<Big>(&env("SHM_NAME"))
        .unwrap();
    for turn in 0u64.. {
        let mut t = w.turn(TURN_WAIT).unwrap();
        let v = t.version();
        t.fill(v);
        drop(t);
        if turn == 0 {
            println!("started");
        }
    }
}

fn spawn_writer(name: &str, k: usize, turns: u64, report: bool) -> Child {
    let env = [
        ("SHM_NAME", name.to_string()),
        ("SHM_WRITER", k.to_string()),
        ("SHM_TURNS", turns.to_string()),
        ("SHM_REPORT", if report { "1" } else { "0" }.to_string()),
    ];
    spawn_role(ENTRY, "writer", &env)
}

fn spawn_reader(name: &str, total: u64) -> Child {
    let env = [
        ("SHM_NAME", name.to_string()),
        ("SHM_TOTAL", total.to_string()),
    ];
    spawn_role(ENTRY, "reader", &env)
}

/// Waits for `child`, asserts it succeeded, and returns its output line starting `prefix`.
fn finish(mut child: Child, prefix: &str) -> String {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "child failed ({status}); its output:\n{out}"
    );
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
        .to_string()
}

/// The numbers in a line such as `done 250000 recovered 3`.
fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn create(name: &str) -> shm_core::Writer<Tally> {
    Options::new()
        .shared_writers(true)
        .create::<Tally>(name, &ZERO)
        .expect("create")
}

/// Checks the readers' reports: each read at least once, none saw a torn snapshot.
fn check_readers(readers: Vec<Child>) {
    for r in readers {
        let line = finish(r, "reads");
        let n = numbers(&line);
        eprintln!("reader: {line}");
        assert!(n[0] > 0);
        assert_eq!(n[1], 0, "torn snapshots: {line}");
    }
}

#[test]
fn four_writers_count_exactly_and_readers_never_see_a_torn_value() {
    if role().is_some() {
        return;
    }
    const TURNS: u64 = 250_000;
    let name = Name::new("turns4");
    let creator = create(&name);
    let total = TURNS * WRITERS as u64;
    let readers: Vec<Child> = (0..2).map(|_| spawn_reader(&name, total)).collect();
    let writers: Vec<Child> = (0..WRITERS)
        .map(|k| spawn_writer(&name, k, TURNS, false))
        .collect();
    for (k, w) in writers.into_iter().enumerate() {
        let line = finish(w, "done");
        assert_eq!(numbers(&line), [TURNS, 0], "writer {k}: {line}");
    }
    check_readers(readers);
    let r = Tally::open(&name).unwrap();
    let end = r.read();
    assert_eq!(end.counter, total);
    assert_eq!(end.done, [TURNS; WRITERS]);
    assert_eq!(r.version(), total, "one publication per turn");
    assert_eq!(r.info().writer().epoch(), 1, "no writer died: no recovery");
    assert!(r.info().writer().alive(), "the creator is still attached");
    drop(creator);
    assert!(!r.info().writer().alive(), "nobody is attached any more");
}

/// What the parent saw of one run of the writer it kills: the last `B` and `E` lines.
#[derive(Default)]
struct Seen {
    begun: Option<u64>,
    ended: Option<u64>,
    recovered: u64,
}

impl Seen {
    fn line(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next().and_then(|n| n.parse().ok())) {
            (Some("B"), Some(n)) => self.begun = Some(n),
            (Some("E"), Some(n)) => self.ended = Some(n),
            (Some("R"), None) => self.recovered += 1,
            _ => {}
        }
    }
}

/// Whether some slot of the segment `r` reads is odd: written, or left half-written.
fn odd_slot(r: &shm_core::Reader<Tally>) -> bool {
    shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(r))
        .iter()
        .any(|s| s % 2 == 1)
}

/// Reads `out` until `begun` more `B` lines arrived (or the output ends).
fn read_until_begun(out: &mut BufReader<ChildStdout>, seen: &mut Seen, begun: u64) {
    let mut count = 0;
    let mut line = String::new();
    // Bounded: each pass consumes a line, and the output ends when the writer does.
    while count < begun {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            return;
        }
        if line.starts_with("B ") {
            count += 1;
        }
        seen.line(&line);
    }
}

#[test]
fn a_writer_killed_in_its_turn_50_times_loses_and_doubles_no_turn() {
    if role().is_some() {
        return;
    }
    const TURNS: u64 = 250_000;
    const KILLS: u32 = 50;
    const VICTIM: usize = 0;
    let name = Name::new("turnskill");
    let creator = create(&name);
    let r = Tally::open(&name).unwrap();
    drop(creator);
    let total = TURNS * WRITERS as u64;
    let readers: Vec<Child> = (0..2).map(|_| spawn_reader(&name, total)).collect();
    let others: Vec<Child> = (1..WRITERS)
        .map(|k| spawn_writer(&name, k, TURNS, false))
        .collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut in_turn, mut mid_write, mut after_publish) = (0u32, 0u32, 0u32);
    let mut recovered = 0u64;
    for kill_no in 0..KILLS {
        let mut child = spawn_writer(&name, VICTIM, TURNS, true);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = Seen::default();
        read_until_begun(&mut out, &mut seen, 1 + rng.below(200));
        if kill_no % 2 == 1 {
            // Aim at a publication: kill once a slot is seen odd (a write in progress, most
            // likely the victim's, which was in its turn a moment ago). Bounded.
            for _ in 0..1_000_000 {
                if odd_slot(&r) {
                    break;
                }
            }
        }
        kill(&mut child);
        let odd = odd_slot(&r);
        // Everything it printed before it died.
        for line in out.lines() {
            seen.line(&line.unwrap());
        }
        recovered += seen.recovered;
        // Only the victim changes its own entry, and it is dead: this is final.
        let done = r.read().done[VICTIM];
        let killed_in = seen.begun.filter(|&b| seen.ended.is_none_or(|e| e < b));
        if let Some(b) = killed_in {
            // Killed inside turn `b`: published (and not yet reported) or not.
            assert!(
                done == b || done + 1 == b,
                "kill {kill_no}: killed in turn {b}, but {done} turns are recorded"
            );
            in_turn += 1;
            if done == b {
                after_publish += 1;
            }
            if odd {
                mid_write += 1;
            }
        } else if let Some(e) = seen.ended {
            assert_eq!(done, e, "kill {kill_no}: {e} turns reported");
        }
    }
    // The victim's last run, to the end.
    let last = spawn_writer(&name, VICTIM, TURNS, false);
    let line = finish(last, "done");
    recovered += numbers(&line)[1];
    for (k, w) in others.into_iter().enumerate() {
        let line = finish(w, "done");
        let n = numbers(&line);
        assert_eq!(n[0], TURNS, "writer {}: {line}", k + 1);
        recovered += n[1];
    }
    check_readers(readers);
    let end = r.read();
    assert_eq!(end.done, [TURNS; WRITERS], "no turn lost or doubled");
    assert_eq!(end.counter, total);
    // Every kill inside a turn left the lock to be recovered, each recovery is one epoch, and
    // a recovery the victim itself was killed in is made again by the next writer.
    let epoch = r.info().writer().epoch();
    assert!(
        recovered >= u64::from(in_turn)
            && epoch > recovered
            && epoch <= 1 + recovered + u64::from(KILLS),
        "epoch {epoch}, {recovered} recoveries reported, {in_turn} kills in a turn"
    );
    eprintln!(
        "{KILLS} kills: {in_turn} in a turn ({mid_write} with a slot left odd, {after_publish} after publishing, before reporting); {recovered} recoveries, epoch {epoch}"
    );
    assert!(in_turn > 0, "no kill landed in a turn");
}

#[test]
fn a_turn_times_out_while_another_process_holds_one_and_recovers_after_it_dies() {
    if role().is_some() {
        return;
    }
    let name = Name::new("turnwait");
    let mut w = create(&name);
    let r = Tally::open(&name).unwrap();
    let mut holder = spawn_role(ENTRY, "holder", &[("SHM_NAME", name.to_string())]);
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    // Bounded: the holder prints `holding` once it holds its turn, or ends.
    while !line.starts_with("holding") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the holder ended");
    }
    assert!(matches!(
        w.turn(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(matches!(w.turn(Duration::ZERO), Err(Error::Timeout)));
    kill(&mut holder);
    assert_eq!(r.info().writer().epoch(), 1);
    let mut t = w
        .turn(TURN_WAIT)
        .expect("the lock is released with its holder");
    assert!(t.recovered(), "the holder died in its turn");
    assert_eq!(t.counter, 0, "the dead turn's change was never published");
    t.counter += 1;
    t.done[0] += 1;
    drop(t);
    assert_eq!(r.info().writer().epoch(), 2, "a recovery is a new epoch");
    let t = w.turn(TURN_WAIT).unwrap();
    assert!(!t.recovered());
    assert_eq!((t.counter, t.done[0]), (1, 1));
    t.discard();
    assert_eq!(r.version(), 1);
}

#[test]
fn single_writers_and_turn_taking_writers_exclude_each_other() {
    if role().is_some() {
        return;
    }
    // A turn-taking segment refuses a single writer, however it opens it.
    let name = Name::new("turnsmode");
    let w = create(&name);
    let e = Tally::open_writer(&name).unwrap_err();
    assert!(matches!(e, Error::WriterMode { shared: true }), "{e}");
    assert!(e.to_string().contains("shared_writers(true)"), "{e}");
    let e = Tally::open_or_create(&name, &ZERO).unwrap_err();
    assert!(matches!(e, Error::WriterMode { shared: true }), "{e}");
    // A writer that predates the mode checks nothing of it, but takes the writer lease
    // exclusively: refused while any turn-taking writer is attached.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{}", &*name))
        .unwrap();
    assert_eq!(
        exclusive_lock(&file),
        Err(libc::EAGAIN),
        "the lease is held shared"
    );
    let r = Tally::open(&name).unwrap();
    assert!(r.info().writer().alive());
    drop(w);
    assert!(!r.info().writer().alive());
    // And while such a writer holds the lease, turn-taking writers cannot attach.
    assert_eq!(exclusive_lock(&file), Ok(()));
    let e = Options::new()
        .shared_writers(true)
        .open_writer::<Tally>(&name)
        .unwrap_err();
    assert!(matches!(e, Error::WriterBusy { .. }), "{e}");
    drop(file);
    let mut w = Options::new()
        .shared_writers(true)
        .open_writer::<Tally>(&name)
        .unwrap();
    w.turn(TURN_WAIT).unwrap().counter += 1;
    assert_eq!(r.read().counter, 1);

    // A one-writer segment refuses turn-taking writers.
    let single = Name::new("singlemode");
    let w = Tally::create(&single, &ZERO).unwrap();
    drop(w);
    for e in [
        Options::new()
            .shared_writers(true)
            .open_writer::<Tally>(&single)
            .unwrap_err(),
        Options::new()
            .shared_writers(true)
            .open_or_create::<Tally>(&single, &ZERO)
            .unwrap_err(),
    ] {
        assert!(matches!(e, Error::WriterMode { shared: false }), "{e}");
        assert!(e.to_string().contains("one writer at a time"), "{e}");
    }
}

/// An exclusive OFD lock on byte 0, as every writer before turn-taking writers takes its
/// lease; held until `file` is closed. The error number if it is refused.
fn exclusive_lock(file: &std::fs::File) -> Result<(), i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero bytes are a valid `flock`.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_len = 1;
    // SAFETY: an open descriptor and a valid `flock` that outlives the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    }
}

#[test]
fn a_lock_of_another_abi_is_refused_with_both_named() {
    if role().is_some() {
        return;
    }
    let name = Name::new("turnsabi");
    drop(create(&name));
    // `lock_abi`, offset 104: a 48-byte glibc aarch64 mutex.
    poke_bytes(&name, 104, &0x0102_0030u32.to_ne_bytes());
    let e = Options::new()
        .shared_writers(true)
        .open_writer::<Tally>(&name)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::LockAbi {
                found: 0x0102_0030,
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("glibc aarch64 pthread_mutex_t 48 bytes"),
        "{msg}"
    );
    assert!(msg.contains("pthread_mutex_t"), "{msg}");
    // Readers are unaffected.
    assert_eq!(Tally::open(&name).unwrap().read().counter, 0);
}

#[test]
#[should_panic(expected = "two or more slots")]
fn turn_taking_writers_need_two_slots() {
    let name = Name::new("turns1slot");
    let _ = Options::new()
        .shared_writers(true)
        .slots(1)
        .create::<Tally>(&name, &ZERO);
}

#[test]
fn a_turn_that_panics_publishes_nothing() {
    if role().is_some() {
        return;
    }
    let name = Name::new("turnpanic");
    let mut w = create(&name);
    let r = Tally::open(&name).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut t = w.turn(TURN_WAIT).unwrap();
        t.counter = 99;
        panic!("in the turn");
    }));
    assert!(caught.is_err());
    assert_eq!(r.read().counter, 0);
    assert_eq!(r.version(), 0);
    // The lock was released: the next turn starts, clean.
    let mut t = w.turn(Duration::ZERO).unwrap();
    assert!(!t.recovered());
    t.counter = 1;
    t.publish();
    w.update(|t| t.counter += 1);
    w.write(&Tally { counter: 5, ..ZERO });
    assert_eq!(r.read().counter, 5);
    assert_eq!(w.get().unwrap().counter, 5);
    assert_eq!(r.version(), 3);
}

#[test]
fn an_untyped_writer_that_takes_turns_writes_in_a_turn_of_its_own() {
    if role().is_some() {
        return;
    }
    let name = Name::new("turnsraw");
    let mut typed = create(&name);
    let layout = shm_core::LayoutBuf::from(Tally::LAYOUT);
    let mut raw = Options::new()
        .shared_writers(true)
        .open_raw_writer(&name, &layout)
        .unwrap();
    let r = Tally::open(&name).unwrap();
    let (started, start) = std::sync::mpsc::channel();
    let (finish, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let typed = &mut typed;
        s.spawn(move || {
            let mut t = typed.turn(TURN_WAIT).unwrap();
            started.send(()).unwrap();
            finished.recv().unwrap();
            t.counter = 1;
        });
        start.recv().unwrap();
        // The other turn is held: this write waits for it to end, and comes second.
        let mut bytes = vec![0u8; raw.payload_size()];
        bytes[..8].copy_from_slice(&100u64.to_ne_bytes());
        finish.send(()).unwrap();
        raw.write(&bytes);
    });
    assert_eq!(r.version(), 2, "two turns, two versions");
    assert_eq!(r.read().counter, 100);
}

#[test]
fn a_writer_killed_mid_write_leaves_the_last_value_and_the_next_turn_recovers() {
    if role().is_some() {
        return;
    }
    let name = Name::new("turnsmid");
    let mut w = Options::new()
        .shared_writers(true)
        .create::<Big>(&name, &[0; BIG])
        .unwrap();
    let r = Big::open(&name).unwrap();
    let odd = || {
        shm_core::__private::hooks::slot_sequences(shm_core::__private::hooks::raw(&r))
            .iter()
            .any(|s| s % 2 == 1)
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut kills, mut mid_write, mut recoveries) = (0u32, 0u32, 0u64);
    // At least 20 kills that landed inside a publication, at varied points.
    while mid_write < 20 {
        assert!(
            kills < 1000,
            "only {mid_write} of {kills} kills landed mid-write"
        );
        let mut child = spawn_role(ENTRY, "big_writer", &[("SHM_NAME", name.to_string())]);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // Bounded: the writer prints `started` after its first turn, or ends.
        while !line.starts_with("started") {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "the writer ended");
        }
        std::thread::sleep(Duration::from_micros(rng.below(2000)));
        kill(&mut child);
        kills += 1;
        // The victim was the only writer: an odd slot is its publication, cut short.
        let cut = odd();
        mid_write += u32::from(cut);
        // Readers keep the last published value, whole.
        let v = r.version();
        let value = r.read();
        assert!(
            value.iter().all(|&x| x == v),
            "torn or wrong value after a kill"
        );
        // The next turn recovers from it (it held the lock) and continues from that value.
        let epoch = r.info().writer().epoch();
        let mut t = w
            .turn(TURN_WAIT)
            .expect("the lock is released with its holder");
        let recovered = t.recovered();
        assert!(!cut || recovered, "a writer killed mid-write held the lock");
        recoveries += u64::from(recovered);
        assert!(
            t.iter().all(|&x| x == v),
            "the turn starts from the published value"
        );
        let next = t.version();
        assert_eq!(next, v + 1);
        t.fill(next);
        drop(t);
        assert_eq!(
            r.info().writer().epoch(),
            epoch + u64::from(recovered),
            "a recovery is a new epoch"
        );
        assert!(!odd(), "the next publication completed the slot");
        assert_eq!(r.read()[BIG - 1], next);
    }
    assert_eq!(
        r.info().writer().epoch(),
        1 + recoveries,
        "one epoch per recovery"
    );
    eprintln!("{kills} kills, {mid_write} mid-write, {recoveries} recoveries");
}
