//! A hostile writer soak: one process scribbles random bytes over the whole mapped segment
//! (header, sequence words, `published`, payload, descriptor) while a legitimate writer writes
//! and reader processes open, read, wait and probe liveness in a loop. Nobody crashes or
//! hangs; every call gives a value or a typed error, and both occur.
//!
//! `cargo test -p shm-core --release --test soak -- --nocapture` prints the counts.

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::{Options, RawReader, Reader, SharedState};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Sample {
    seq: u64,
    values: [f64; 13],
    flags: u32,
    count: u32,
}

/// How long the attack lasts.
const SOAK: Duration = Duration::from_secs(3);
/// No single bounded call may take longer than this.
const CALL_LIMIT: Duration = Duration::from_secs(2);

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("scribbler") => scribbler(),
        Some("writer") => writer(),
        Some("reader") => reader(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// Maps the segment's file and stores random words at random places for `SOAK`.
fn scribbler() {
    let name = env("SHM_NAME");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm{name}"))
        .unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a fresh shared mapping of the whole file; accessed only through atomics below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let words = len / 8;
    // SAFETY: the mapping is `len` bytes, page-aligned, and lives until the process exits;
    // other processes change it concurrently, which atomics allow.
    let w = unsafe { std::slice::from_raw_parts(p as *const AtomicU64, words) };
    // The header as created: put back now and then, so that opens keep meeting both intact
    // and damaged headers rather than one dead magic for the rest of the run.
    let header: Vec<u64> = w[..16].iter().map(|x| x.load(Ordering::Relaxed)).collect();
    let mut rng = Rng(std::process::id() as u64 | 1);
    println!("ready");
    let start = Instant::now();
    let mut stores = 0u64;
    while start.elapsed() < SOAK {
        let i = match rng.below(4) {
            0 => rng.below(32) as usize,         // the header
            1 => 32 + rng.below(4) as usize * 8, // `published`, the futex line, slot 0's seq
            _ => rng.below(words as u64) as usize,
        };
        let value = match rng.below(4) {
            0 => rng.next(),
            1 => rng.below(16),
            2 => w[i].load(Ordering::Relaxed) ^ (1 << rng.below(64)),
            _ => u64::MAX - rng.below(4),
        };
        w[i].store(value, Ordering::Relaxed);
        stores += 1;
        if stores % 64 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        if stores % 4096 == 0 {
            for (word, v) in w.iter().zip(&header) {
                word.store(*v, Ordering::Relaxed);
            }
        }
    }
    println!("outcome stores={stores}");
}

/// Takes over the segment and writes for `SOAK` (a little longer, to outlive the attack).
fn writer() {
    let mut w = Sample::open_writer(&env("SHM_NAME")).expect("take over");
    println!("ready");
    let start = Instant::now();
    let (mut writes, mut update_errors) = (0u64, 0u64);
    while start.elapsed() < SOAK + Duration::from_millis(500) {
        let s = Sample {
            seq: writes,
            values: [writes as f64; 13],
            flags: 1,
            count: writes as u32,
        };
        w.write(&s);
        // The current slot may be scribbled on: an error, never a panic.
        if w.try_update(|v| v.count += 1).is_err() {
            update_errors += 1;
        }
        writes += 1;
        std::thread::sleep(Duration::from_micros(100));
    }
    println!("outcome writes={writes} update_errors={update_errors}");
}

/// Tallies one outcome by its kind.
fn tally<T>(counts: &mut BTreeMap<String, u64>, r: &shm_core::Result<T>) {
    let key = match r {
        Ok(_) => "value".to_string(),
        Err(e) => format!("{e:?}")
            .split([' ', '(', '{'])
            .next()
            .unwrap()
            .to_string(),
    };
    *counts.entry(key).or_default() += 1;
}

/// Runs `f` and fails if it took longer than `CALL_LIMIT`.
fn timed<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = f();
    assert!(
        start.elapsed() < CALL_LIMIT,
        "{what} took {:?}",
        start.elapsed()
    );
    r
}

fn reader() {
    let name = env("SHM_NAME");
    let opts = Options::new().ready_wait(Duration::from_millis(1));
    let mut counts = BTreeMap::new();
    let mut typed: Option<Reader<Sample>> = None;
    let mut raw: Option<RawReader> = None;
    let mut buf = Vec::new();
    println!("ready");
    let start = Instant::now();
    let mut round = 0u64;
    while start.elapsed() < SOAK {
        if round % 32 == 0 {
            let r = timed("open", || opts.open::<Sample>(&name));
            tally(&mut counts, &r);
            typed = r.ok().or(typed);
            let r = timed("open_raw", || opts.open_raw(&name));
            tally(&mut counts, &r);
            raw = r.ok().or(raw);
        }
        round += 1;
        if let Some(r) = &typed {
            tally(&mut counts, &timed("try_read", || r.try_read()));
            let t = timed("read_timeout", || r.read_timeout(Duration::from_millis(1)));
            tally(&mut counts, &t);
            let v = r.version();
            let w = timed("wait", || r.wait_for_update(v, Duration::from_millis(1)));
            tally(&mut counts, &w);
            let _ = timed("writer_alive", || r.info().writer().alive());
        }
        if let Some(r) = &raw {
            buf.resize(r.payload_size(), 0);
            let t = timed("raw read_timeout", || {
                r.read_timeout(&mut buf, Duration::from_millis(1))
            });
            tally(&mut counts, &t);
            let _ = (
                r.info().writer().pid(),
                r.info().writer().epoch(),
                r.info().layout_hash(),
            );
        }
    }
    let values = counts.get("value").copied().unwrap_or(0);
    let errors: u64 = counts
        .iter()
        .filter(|(k, _)| *k != "value")
        .map(|(_, n)| n)
        .sum();
    println!("outcome values={values} errors={errors} {counts:?}");
}

/// Reads the child's `outcome` line (after `ready`).
fn outcome(out: BufReader<std::process::ChildStdout>) -> String {
    out.lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("outcome ").map(str::to_string))
        .unwrap_or_default()
}

fn number(outcome: &str, key: &str) -> u64 {
    outcome
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {outcome:?}"))
}

#[test]
fn a_scribbling_peer_crashes_and_hangs_nobody() {
    if role().is_some() {
        return;
    }
    let name = Name::new("soak");
    let initial = Sample {
        seq: 0,
        values: [0.0; 13],
        flags: 0,
        count: 0,
    };
    drop(Options::new().slots(3).create(&name, &initial).unwrap());
    let env = [("SHM_NAME", name.to_string())];
    // The writer takes the segment over before the attack starts.
    let mut children = Vec::new();
    let mut outs = Vec::new();
    for r in ["writer", "reader", "reader", "scribbler"] {
        children.push(spawn_role(ENTRY, r, &env));
        let c = children.last_mut().unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "ready" {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "a child ended early");
        }
        outs.push(out);
    }
    let deadline = Instant::now() + SOAK + Duration::from_secs(30);
    let mut results = Vec::new();
    for (c, out) in children.iter_mut().zip(outs) {
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                kill(c);
                panic!("a child hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let o = outcome(out);
        assert!(status.success(), "a child failed: {status:?} {o}");
        results.push(o);
    }
    println!("writer:    {}", results[0]);
    println!("reader 1:  {}", results[1]);
    println!("reader 2:  {}", results[2]);
    println!("scribbler: {}", results[3]);
    assert!(number(&results[3], "stores") > 0);
    let values: u64 = results[1..3].iter().map(|o| number(o, "values")).sum();
    let errors: u64 = results[1..3].iter().map(|o| number(o, "errors")).sum();
    assert!(values > 0, "no call gave a value");
    assert!(errors > 0, "no call gave an error: the attack did nothing");
}
