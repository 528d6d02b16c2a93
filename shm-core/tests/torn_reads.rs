//! Torn-read stress across processes: a writer process publishes, as fast as it can, values
//! whose every 8-byte word holds the same counter; two reader processes validate every read.
//!
//! `SHM_STRESS_READS` sets the validated reads per reader (default 1,000,000).
//! `SHM_STRESS_UNVALIDATED=1` makes readers skip the seqlock's consistency check: the test must
//! then fail, which shows that it catches torn reads.

mod common;

use common::{env, kill, role, spawn_role, Name, ENTRY};
use shm_core::{Options, SharedState};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("writer-8") => writer::<8>(),
        Some("writer-512") => writer::<512>(),
        Some("writer-8192") => writer::<8192>(),
        Some("reader-8") => reader::<8>(),
        Some("reader-512") => reader::<512>(),
        Some("reader-8192") => reader::<8192>(),
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn writer<const W: usize>() {
    let mut w = <[u64; W]>::open_writer(&env("SHM_NAME")).expect("writer takes over");
    let mut value = Box::new([0u64; W]);
    let mut c = 0u64;
    loop {
        c += 1;
        value.fill(c);
        w.write(&value);
    }
}

fn reader<const W: usize>() {
    let r = <[u64; W]>::open(&env("SHM_NAME")).expect("reader opens");
    let target: u64 = env("SHM_STRESS_READS").parse().unwrap();
    let unvalidated = std::env::var("SHM_STRESS_UNVALIDATED").is_ok_and(|v| v == "1");
    let (mut torn, mut backwards, mut distinct) = (0u64, 0u64, 0u64);
    let mut last = 0u64;
    for _ in 0..target {
        let v: Box<[u64; W]> = Box::new(if unvalidated {
            shm_core::__private::hooks::read_unvalidated(&r)
        } else {
            r.read()
        });
        let c = v[0];
        if v.iter().any(|&x| x != c) {
            torn += 1;
        }
        if c < last {
            backwards += 1;
        }
        if c != last {
            distinct += 1;
        }
        last = c;
    }
    println!("reads={target} torn={torn} backwards={backwards} distinct={distinct}");
}

fn stress<const W: usize>() {
    let reads = std::env::var("SHM_STRESS_READS").unwrap_or_else(|_| "1000000".into());
    let name = Name::new(&format!("torn{W}"));
    // Without the check, a read tears only when the writer laps it. With the default four
    // slots that takes three writes during one copy, which a million 64-byte reads see only a
    // few times; on two slots one write does, so the unvalidated run fails at every size.
    let unvalidated = std::env::var("SHM_STRESS_UNVALIDATED").is_ok_and(|v| v == "1");
    let options = if unvalidated {
        Options::new().slots(2)
    } else {
        Options::new()
    };
    drop(options.create(&name, &[0u64; W]).expect("create segment"));
    let vars = [
        ("SHM_NAME", name.to_string()),
        ("SHM_STRESS_READS", reads.clone()),
    ];
    let mut writer = spawn_role(ENTRY, &format!("writer-{W}"), &vars);
    // Let the writer start publishing before the readers begin.
    let probe = <[u64; W]>::open(&name).unwrap();
    let start = Instant::now();
    while probe.version() < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "writer never wrote"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let readers: Vec<_> = (0..2)
        .map(|_| spawn_role(ENTRY, &format!("reader-{W}"), &vars))
        .collect();
    let mut reports = Vec::new();
    for mut r in readers {
        // Read to the end: the child's harness still prints after the report.
        let out = BufReader::new(r.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("reads="))
            .last();
        let status = r.wait().unwrap();
        reports.push((status, out));
    }
    kill(&mut writer);
    let writes = probe.version();
    for (status, report) in &reports {
        eprintln!("{W} words: {report:?} ({writes} values published)");
        assert!(status.success(), "reader failed: {status}");
        let report = report.as_deref().expect("reader report");
        let field = |k: &str| -> u64 {
            report
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(field("reads"), reads.parse::<u64>().unwrap());
        assert_eq!(field("torn"), 0, "torn reads seen: {report}");
        assert_eq!(field("backwards"), 0, "counter went backwards: {report}");
        assert!(
            field("distinct") > 1,
            "the writer never changed the value during the reads: {report}"
        );
    }
}

#[test]
fn reads_are_never_torn_at_64_bytes() {
    if role().is_none() {
        stress::<8>();
    }
}

#[test]
fn reads_are_never_torn_at_4_kib() {
    if role().is_none() {
        stress::<512>();
    }
}

#[test]
fn reads_are_never_torn_at_64_kib() {
    if role().is_none() {
        stress::<8192>();
    }
}
