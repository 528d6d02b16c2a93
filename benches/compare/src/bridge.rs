//! The bridge group: `shm-bridge` mirroring a 64-byte state to another process over Zenoh on
//! loopback, beside Zenoh's own pub/sub of the same bytes, a TCP socket and shared memory on
//! one host.
//!
//! The harness does not link Zenoh (it would build it a second time): it builds the main
//! workspace's binaries with `cargo build --locked --release --workspace --bins --examples`
//! (after the README's `cargo test --workspace --release` that compiles nothing: the same
//! units, the same feature resolution; `-p shm-bridge` would resolve features without the
//! other members' dev-dependencies and build another Zenoh), then runs the example
//! `bridge_bench --json` from the repository root and reads its JSON lines. Its human-readable
//! lines go to stderr as they come.
//!
//! Rows (64 bytes each):
//! - `bridge_latency`, one per path, contenders `ours-bridge` (writer, exporting bridge,
//!   importing bridge, reader waiting on the mirror), `zenoh-channel` and `zenoh-callback`
//!   (Zenoh's pub/sub between two processes, received on the subscriber's channel or in its
//!   callback), `tcp` (a socket to a child process) and `local-futex` (one host, no bridge):
//!   `median_ns`/`p99_ns` the one-way latency, `ops` the values sent, `distinct` and `used`
//!   those received, `cpu_ns` both bridge processes' CPU ns per value (`ours-bridge` only,
//!   NaN elsewhere).
//! - `bridge_ratio`, contenders `ours-bridge/zenoh-channel` and `ours-bridge/zenoh-callback`:
//!   ratios, not ns. `median_ns` is the median over the cycles of the bridge block's p50
//!   divided by the Zenoh block's p50 of the same cycle (`p50_cycles`: both met the same load),
//!   `p99_ns` the ratio of the p99s of all values, `used` the cycles. The ratio of the p50s of
//!   all values is that of the two `bridge_latency` rows.
//! - `bridge_updates`, contender `ours-bridge`: a writer publishing back to back for
//!   [`BACK_TO_BACK_S`]; `median_ns` is ns per distinct update reaching the far reader (the
//!   inverse of its updates per second: versions coalesce), `writer_per_s` the writer's
//!   publishes per second, `ops` its writes, `distinct` the updates, `cpu_ns` both bridges'
//!   CPU ns per update.

use crate::Row;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cases this group makes (`--only` matches them as the others: by substring).
pub const CASES: [&str; 3] = ["bridge_latency", "bridge_ratio", "bridge_updates"];

/// How long `bridge_bench`'s back-to-back run lasts (`Bridge::back_to_back` there): its JSON
/// line gives updates per second and the CPU seconds of the whole run.
pub const BACK_TO_BACK_S: f64 = 2.0;

/// Why the bridge rows are missing, when they are (for the end of the run and `summary.md`).
static FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// The bridge group's failure, if it failed.
pub fn failure() -> Option<String> {
    FAILURE.lock().ok()?.clone()
}

fn fail(what: String) -> Vec<Row> {
    eprintln!("\nerror: bridge rows left out: {what}\n");
    if let Ok(mut f) = FAILURE.lock() {
        *f = Some(what);
    }
    Vec::new()
}

/// The repository root: this crate is `benches/compare` in it.
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .expect("benches/compare sits two levels below the repository root")
        .to_path_buf()
}

/// The main workspace's target directory: `CARGO_TARGET_DIR` (relative to the root) if set,
/// as cargo takes it, else `target` at the root.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Builds the main workspace, runs `bridge_bench --json` and turns its lines into rows.
pub fn run_all(quick: bool, only: Option<&str>) -> Vec<Row> {
    if only.is_some_and(|o| !CASES.iter().any(|c| c.contains(o))) {
        return Vec::new();
    }
    let root = root();
    // `cargo run` names itself in CARGO; the same cargo, the same toolchain.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = [
        "build",
        "--locked",
        "--release",
        "--workspace",
        "--bins",
        "--examples",
    ];
    eprintln!(
        "bridge: {} {} (in {})",
        cargo.to_string_lossy(),
        build.join(" "),
        root.display()
    );
    match Command::new(&cargo)
        .args(build)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return fail(format!(
                "building the main workspace's binaries (`cargo {}` in {}) failed: {s}",
                build.join(" "),
                root.display()
            ))
        }
        Err(e) => {
            return fail(format!(
                "could not run {} to build the main workspace: {e}",
                cargo.to_string_lossy()
            ))
        }
    }
    let (samples, block): (u64, u64) = if quick { (300, 100) } else { (3000, 250) };
    let deadline = Duration::from_secs(if quick { 300 } else { 900 });
    let bench = target_dir(&root).join("release/examples/bridge_bench");
    let args = [
        "--samples".to_string(),
        samples.to_string(),
        "--block".into(),
        block.to_string(),
        "--json".into(),
    ];
    let what = format!("{} {}", bench.display(), args.join(" "));
    eprintln!("bridge: {what}");
    let lines = match run_bench(&bench, &args, &root, deadline) {
        Ok(lines) => lines,
        Err(e) => return fail(format!("`{what}` failed: {e}")),
    };
    let cycles = samples.div_ceil(block);
    let rows = match parse(&lines, cycles) {
        Ok(rows) => rows,
        Err(e) => return fail(format!("`{what}`: {e}")),
    };
    for r in &rows {
        if r.case == "bridge_ratio" {
            eprintln!(
                "{:>22} {:>26}  p50 {:.3}x (median of {} cycles)  p99 {:.3}x",
                r.case, r.contender, r.median_ns, r.used, r.p99_ns
            );
        } else {
            eprintln!(
                "{:>22} {:>26}  p50 {:>10.1} ns  p99 {:>10.1} ns  sent {:>8}  received {:>6}  cpu/value {:>8.1} ns",
                r.case, r.contender, r.median_ns, r.p99_ns, r.ops, r.distinct, r.cpu_ns
            );
        }
    }
    rows.into_iter()
        .filter(|r| only.is_none_or(|o| r.case.contains(o)))
        .collect()
}

/// Runs `bench` in its own process group (the bridges and receivers it starts with it), its
/// stdout read here: JSON lines kept, the others passed on to stderr. Past `deadline` the
/// group is ended; either way no segment of it is left in /dev/shm.
fn run_bench(
    bench: &Path,
    args: &[String],
    root: &Path,
    deadline: Duration,
) -> Result<Vec<String>, String> {
    let mut child = Command::new(bench)
        .args(args)
        .current_dir(root)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("could not start it: {e}"))?;
    let pid = child.id();
    GROUP.store(pid as i32, std::sync::atomic::Ordering::Relaxed);
    let out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut json = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.trim_start().starts_with('{') {
                json.push(line);
            } else {
                eprintln!("{line}");
            }
        }
        json
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > deadline => {
                end_group(pid);
                let _ = child.wait();
                break Err(format!("no result after {deadline:?}; ended"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                end_group(pid);
                let _ = child.wait();
                break Err(format!("waiting for it: {e}"));
            }
        }
    };
    GROUP.store(0, std::sync::atomic::Ordering::Relaxed);
    // Its children (bridges, receivers) end with it; a bridge that outlived it would still
    // hold the pipe: ended too.
    end_group(pid);
    let json = reader.join().unwrap_or_default();
    remove_leftovers(pid);
    match status? {
        s if s.success() => Ok(json),
        s => Err(format!("it exited with {s}")),
    }
}

/// The process group of a running `bridge_bench` (0: none), for [`on_signal`].
static GROUP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Ends a running `bridge_bench` and what it started, when the harness is ended by a signal.
pub fn on_signal() {
    let pgid = GROUP.load(std::sync::atomic::Ordering::Relaxed);
    if pgid > 0 {
        // SAFETY: kill(2) has no memory preconditions; a negative pid names the group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        remove_leftovers(pgid as u32);
    }
}

/// SIGTERM to the group (the bridges remove their mirrors on it), then SIGKILL to whatever is
/// left of it a moment later.
fn end_group(pgid: u32) {
    let pgid = pgid as i32;
    // SAFETY: kill(2) has no memory preconditions; a negative pid names the group.
    if unsafe { libc::kill(-pgid, libc::SIGTERM) } != 0 {
        return; // the group is gone
    }
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: as above; signal 0 only checks that the group still exists.
        if unsafe { libc::kill(-pgid, 0) } != 0 {
            return;
        }
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Removes the segments of `bridge_bench` process `pid` from /dev/shm: `shm-bench-local-PID`,
/// `shm-bench-bridge-TAG-PID` and its mirrors `...-PID@HOST` (it removes them itself when it
/// ends normally).
fn remove_leftovers(pid: u32) {
    let suffix = format!("-{pid}");
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let base = name.split('@').next().unwrap_or_default();
        if name.starts_with("shm-bench-") && base.ends_with(&suffix) {
            eprintln!("bridge: removing /dev/shm/{name}, left by bridge_bench");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A row of this group with nothing measured yet.
fn row(case: &str, contender: String) -> Row {
    Row {
        case: case.into(),
        contender,
        bytes: 64,
        median_ns: f64::NAN,
        p99_ns: f64::NAN,
        ops: 0,
        torn: 0,
        retries: 0,
        distinct: 0,
        used: 0,
        samples: Vec::new(),
        cpu_ns: f64::NAN,
        threads: 0,
        writer_per_s: f64::NAN,
    }
}

/// The harness's name for a path of `bridge_bench`.
fn contender(path: &str) -> String {
    match path {
        "local" => "local-futex".into(),
        p if p.starts_with("bridge") => format!("ours-{p}"),
        p => p.into(),
    }
}

/// Rows from `bridge_bench --json`'s lines: an error if a latency row or the back-to-back
/// line is missing.
fn parse(lines: &[String], cycles: u64) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for line in lines {
        // `{:.3}` of a path that received nothing prints NaN, which JSON does not have.
        let line = line
            .replace(":NaN", ":null")
            .replace(":-inf", ":null")
            .replace(":inf", ":null");
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("unreadable line {line}: {e}"))?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let u = |k: &str| v[k].as_u64().unwrap_or(0);
        if let Some(path) = v["path"].as_str() {
            if path == "bridge-b2b" {
                let mut r = row("bridge_updates", contender("bridge"));
                let updates = f("updates_per_s");
                let seen = (updates * BACK_TO_BACK_S).round() as u64;
                r.median_ns = 1e9 / updates;
                r.ops = u("writes");
                r.distinct = seen;
                r.used = seen;
                r.writer_per_s = r.ops as f64 / BACK_TO_BACK_S;
                r.cpu_ns = f("cpu_s") * 1e9 / seen.max(1) as f64;
                rows.push(r);
            } else {
                let mut r = row("bridge_latency", contender(path));
                r.bytes = u("bytes") as usize;
                r.median_ns = f("p50_us") * 1e3;
                r.p99_ns = f("p99_us") * 1e3;
                r.ops = u("sent");
                r.distinct = u("received");
                r.used = r.distinct;
                r.cpu_ns = f("cpu_us_per_value") * 1e3;
                rows.push(r);
            }
        } else if let Some(ratio) = v["ratio"].as_str() {
            let mut r = row("bridge_ratio", contender(ratio));
            r.median_ns = f("p50_cycles");
            r.p99_ns = f("p99_all");
            r.used = cycles;
            rows.push(r);
        }
    }
    for case in ["bridge_latency", "bridge_updates"] {
        if !rows.iter().any(|r| r.case == case) {
            return Err(format!("no {case} line in its output"));
        }
    }
    // Latency rows first, then the ratios, then the back-to-back row: the order of summary.md.
    rows.sort_by_key(|r| CASES.iter().position(|c| *c == r.case));
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lines_of_bridge_bench() {
        let lines: Vec<String> = [
            r#"{"path":"local","bytes":64,"p50_us":9.500,"p99_us":30.000,"received":1000,"sent":1000,"cpu_us_per_value":null}"#,
            r#"{"path":"zenoh-channel","bytes":64,"p50_us":89.800,"p99_us":216.300,"received":999,"sent":1000,"cpu_us_per_value":null}"#,
            r#"{"path":"tcp","bytes":64,"p50_us":NaN,"p99_us":NaN,"received":0,"sent":1000,"cpu_us_per_value":null}"#,
            r#"{"path":"bridge","bytes":64,"p50_us":95.000,"p99_us":250.000,"received":1000,"sent":1000,"cpu_us_per_value":41.250}"#,
            r#"{"path":"bridge-b2b","writes":5000000,"updates_per_s":20000.0,"cpu_s":1.500}"#,
            r#"{"ratio":"bridge/zenoh-channel","p50_all":1.0579,"p50_cycles":1.0412,"p99_all":1.1558}"#,
        ]
        .map(String::from)
        .into();
        let rows = parse(&lines, 12).unwrap();
        let get = |case: &str, c: &str| {
            rows.iter()
                .find(|r| r.case == case && r.contender == c)
                .unwrap_or_else(|| panic!("{case} {c}"))
        };
        let b = get("bridge_latency", "ours-bridge");
        assert_eq!((b.median_ns, b.p99_ns, b.cpu_ns), (95e3, 250e3, 41250.0));
        assert_eq!((b.ops, b.distinct, b.bytes), (1000, 1000, 64));
        let z = get("bridge_latency", "zenoh-channel");
        assert_eq!((z.median_ns, z.distinct), (89800.0, 999));
        assert!(z.cpu_ns.is_nan());
        assert!(get("bridge_latency", "tcp").median_ns.is_nan());
        assert_eq!(get("bridge_latency", "local-futex").median_ns, 9500.0);
        let r = get("bridge_ratio", "ours-bridge/zenoh-channel");
        assert_eq!((r.median_ns, r.p99_ns, r.used), (1.0412, 1.1558, 12));
        let u = get("bridge_updates", "ours-bridge");
        assert_eq!(
            (u.median_ns, u.ops, u.distinct),
            (50_000.0, 5_000_000, 40_000)
        );
        assert_eq!((u.writer_per_s, u.cpu_ns), (2_500_000.0, 37_500.0));
        assert_eq!(rows[0].case, "bridge_latency");
        assert_eq!(rows[rows.len() - 1].case, "bridge_updates");
        // The human-readable output alone is not a result.
        assert!(parse(&lines[..4], 12).is_err());
    }
}
