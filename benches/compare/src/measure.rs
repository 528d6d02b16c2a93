//! What the children do: publish in a pattern, or measure reads, writes, latencies and
//! attach times, validating every value read inside the timing.

use crate::contenders::{self, Kind, ReadSide, WithReader, WithWriter, WriteSide};
use crate::{tell, watch_stdin, Budget, Row, STOP};
use serde_json::json;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A child's job, from its command line.
pub struct Job {
    pub role: String,
    pub kind: Kind,
    pub mode: String,
    pub name: String,
    pub budget: Budget,
}

/// Retries after which one read counts as starved and the case stops.
pub const STARVED_AFTER: u32 = 200_000;

/// Nanoseconds on the system-wide monotonic clock, comparable across processes.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A zeroed value on the heap (16 MiB does not fit on a stack).
fn boxed<const W: usize>(fill: u64) -> Box<[u64; W]> {
    vec![fill; W]
        .into_boxed_slice()
        .try_into()
        .expect("length W")
}

pub fn run<const W: usize>(job: &Job) {
    match job.role.as_str() {
        "writer" => writer::<W>(job),
        "reader" => reader::<W>(job),
        "write" => write::<W>(job),
        other => panic!("unknown role {other}"),
    }
}

fn writer<const W: usize>(job: &Job) {
    watch_stdin();
    if job.kind == Kind::Socket {
        contenders::serve::<W>(&job.name, job.mode == "b2b", &STOP, || tell("ready"));
        return;
    }
    contenders::with_writer::<W>(job.kind, &job.name, Publisher(job));
    if let Kind::Ours(_) = job.kind {
        let _ = shm_core::remove(&job.name);
    }
}

/// The writer child's loop over a concrete writer side.
struct Publisher<'a>(&'a Job);

impl<const W: usize> WithWriter<W> for Publisher<'_> {
    fn run<S: WriteSide<W>>(self, mut side: S) {
        publish_loop(self.0, &mut side);
    }
}

fn publish_loop<const W: usize, S: WriteSide<W>>(job: &Job, side: &mut S) {
    let mut value = boxed::<W>(1);
    side.publish(&value);
    tell("ready");
    let mut c = 1u64;
    match job.mode.as_str() {
        "b2b" => {
            while !STOP.load(Ordering::Relaxed) {
                c += 1;
                value.fill(c);
                side.publish(&value);
            }
        }
        "10us" => {
            let mut next = Instant::now();
            while !STOP.load(Ordering::Relaxed) {
                next += Duration::from_micros(10);
                while Instant::now() < next {
                    core::hint::spin_loop();
                }
                c += 1;
                value.fill(c);
                side.publish(&value);
            }
        }
        "latency-spin" | "latency-wake" => {
            let wake = job.mode == "latency-wake";
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            while !STOP.load(Ordering::Relaxed) {
                // 30-70 us apart, so that the reader is back to waiting or spinning.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let next = Instant::now() + Duration::from_nanos(30_000 + rng % 40_000);
                while Instant::now() < next {
                    core::hint::spin_loop();
                }
                value.fill(now_ns());
                side.publish(&value);
                if wake {
                    side.notify();
                }
            }
        }
        _ => {
            while !STOP.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// What one operation did, for [`batches`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Done; the value is the one the previous operation saw.
    Same,
    /// Done; the value changed since the previous operation (the writer published).
    Changed,
    /// Give up (a starved read).
    Stop,
}

/// Runs `op` in batches of a calibrated size. Returns every batch's mean ns per op with the
/// number of value changes seen in it, and the ops done.
fn batches(b: Budget, mut op: impl FnMut() -> Op) -> (Vec<(f64, u64)>, u64) {
    let mut k = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..k {
            if op() == Op::Stop {
                return (vec![(t.elapsed().as_nanos() as f64 / k as f64, 0)], k);
            }
        }
        if t.elapsed() >= b.batch / 2 || k >= 1 << 24 {
            break;
        }
        k *= 2;
    }
    let mut per_op = Vec::with_capacity(b.samples);
    let mut ops = 0;
    'outer: for _ in 0..b.samples {
        let t = Instant::now();
        let mut changes = 0;
        for _ in 0..k {
            match op() {
                Op::Same => {}
                Op::Changed => changes += 1,
                Op::Stop => {
                    per_op.push((t.elapsed().as_nanos() as f64 / k as f64, changes));
                    break 'outer;
                }
            }
        }
        per_op.push((t.elapsed().as_nanos() as f64 / k as f64, changes));
        ops += k;
    }
    (per_op, ops)
}

/// The batches to report, sorted: with a writer running, only those during which it
/// published at least twice (on a shared machine the writer's CPU is sometimes taken by
/// other work, and reads with no writer running are the uncontended case); all otherwise,
/// or when no batch saw the writer.
fn contended(per_op: &[(f64, u64)], writer_runs: bool) -> (Vec<f64>, u64) {
    let mut used: Vec<f64> = per_op
        .iter()
        .filter(|(_, changes)| !writer_runs || *changes >= 2)
        .map(|&(ns, _)| ns)
        .collect();
    if used.is_empty() {
        used = per_op.iter().map(|&(ns, _)| ns).collect();
    }
    used.sort_by(f64::total_cmp);
    let n = used.len() as u64;
    (used, n)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[allow(clippy::too_many_arguments)]
fn report(
    sorted: &[f64],
    ops: u64,
    torn: u64,
    retries: u64,
    distinct: u64,
    samples: bool,
    used: u64,
    writer_per_s: Option<f64>,
) {
    let mut v = json!({
        "used": used,
        "median_ns": quantile(sorted, 0.5),
        "p99_ns": quantile(sorted, 0.99),
        "ops": ops,
        "torn": torn,
        "retries": retries,
        "distinct": distinct,
    });
    if samples {
        v["samples"] = json!(sorted);
    }
    if let Some(rate) = writer_per_s {
        v["writer_per_s"] = json!(rate);
    }
    tell(&v.to_string());
}

fn reader<const W: usize>(job: &Job) {
    contenders::with_reader::<W>(job.kind, &job.name, Measurer(job));
}

/// The reader child's measurement over a concrete reader side.
struct Measurer<'a>(&'a Job);

impl<const W: usize> WithReader<W> for Measurer<'_> {
    fn run<R: ReadSide<W>>(self, side: R) {
        measure_reads(self.0, side);
    }
}

fn measure_reads<const W: usize, R: ReadSide<W>>(job: &Job, mut side: R) {
    let b = job.budget;
    let mut buf = boxed::<W>(0);
    let (mut torn, mut retries, mut distinct, mut last) = (0u64, 0u64, 0u64, 0u64);
    match job.mode.as_str() {
        "latency-spin" | "latency-wake" => {
            let wake = job.mode == "latency-wake";
            side.read(&mut buf);
            last = buf[0];
            let mut lat = Vec::with_capacity(b.samples * 20);
            let deadline = Instant::now() + Duration::from_secs(30);
            while lat.len() < b.samples * 20 && Instant::now() < deadline {
                let token = side.token();
                let r = side.read(&mut buf);
                let t = now_ns();
                retries += r as u64;
                if buf.iter().any(|&x| x != buf[0]) {
                    torn += 1;
                } else if buf[0] != last {
                    lat.push(t.saturating_sub(buf[0]) as f64);
                    last = buf[0];
                    distinct += 1;
                }
                if wake {
                    // A wait that times out (or wakes without news) just goes round again,
                    // bounded by the deadline.
                    side.wait(token);
                }
            }
            lat.sort_by(f64::total_cmp);
            let n = lat.len() as u64;
            report(&lat, n, torn, retries, distinct, true, n, None);
        }
        "attach" => {
            drop(side);
            let mut times = Vec::new();
            for _ in 0..b.samples.max(20) {
                let t = Instant::now();
                contenders::attach::<W>(job.kind, &job.name, &mut buf);
                times.push(t.elapsed().as_nanos() as f64);
            }
            times.sort_by(f64::total_cmp);
            report(
                &times,
                times.len() as u64,
                0,
                0,
                0,
                false,
                times.len() as u64,
                None,
            );
        }
        _ => {
            let mut starved = false;
            // The writer's rate while we measure: its values are its publish count (every
            // word of the `c`-th value is `c`), so the first and last values read span the
            // values it published meanwhile.
            let mut first = None;
            let start = Instant::now();
            let (per_op, ops) = batches(b, || {
                let r = side.read(&mut buf);
                if r >= STARVED_AFTER {
                    starved = true;
                    return Op::Stop;
                }
                retries += r as u64;
                let word = buf[0];
                first.get_or_insert(word);
                if buf.iter().any(|&x| x != word) {
                    torn += 1;
                }
                black_box(&buf);
                if word != last {
                    distinct += 1;
                    last = word;
                    Op::Changed
                } else {
                    Op::Same
                }
            });
            if starved {
                // One read gave up after STARVED_AFTER retries: report it as such.
                retries = u64::MAX;
            }
            let seconds = start.elapsed().as_secs_f64();
            let published = last.saturating_sub(first.unwrap_or(last));
            let writer_per_s = (job.mode != "idle").then(|| published as f64 / seconds);
            let (sorted, used) = contended(&per_op, job.mode != "idle");
            report(
                &sorted,
                ops,
                torn,
                retries,
                distinct,
                false,
                used,
                writer_per_s,
            );
        }
    }
}

fn write<const W: usize>(job: &Job) {
    contenders::with_writer::<W>(job.kind, &job.name, WriteBench(job));
    if let Kind::Ours(_) = job.kind {
        let _ = shm_core::remove(&job.name);
    }
}

/// The write case over a concrete writer side.
struct WriteBench<'a>(&'a Job);

impl<const W: usize> WithWriter<W> for WriteBench<'_> {
    fn run<S: WriteSide<W>>(self, side: S) {
        measure_writes(self.0, side);
    }
}

fn measure_writes<const W: usize, S: WriteSide<W>>(job: &Job, mut side: S) {
    let values = [boxed::<W>(1), boxed::<W>(2)];
    let mut i = 0;
    let (per_op, ops) = batches(job.budget, || {
        i ^= 1;
        side.publish(black_box(&values[i]));
        Op::Same
    });
    drop(side);
    let (sorted, used) = contended(&per_op, false);
    report(&sorted, ops, 0, 0, 0, false, used, None);
}

/// Parses a child's result line.
pub fn parse(line: &str) -> Option<Row> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    Some(Row {
        case: String::new(),
        contender: String::new(),
        bytes: 0,
        median_ns: f("median_ns"),
        p99_ns: f("p99_ns"),
        ops: u("ops"),
        torn: u("torn"),
        retries: u("retries"),
        distinct: u("distinct"),
        used: u("used"),
        samples: v["samples"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default(),
        cpu_ns: f("cpu_ns"),
        threads: u("threads"),
        writer_per_s: f("writer_per_s"),
    })
}
