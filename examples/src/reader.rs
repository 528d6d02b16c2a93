//! The reader program: reads telemetry and reports read rate or update latency.

use crate::{now_ns, percentiles, Telemetry};
use clap::{Parser, ValueEnum};
use shm_core::SharedState;
use std::time::{Duration, Instant};

/// What the reader measures.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    /// Tight read loop: reads per second and nanoseconds per read.
    Rate,
    /// Block until each update: wake-up latency after the writer publishes.
    Latency,
}

/// Read robot telemetry from a shared segment.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Segment name.
    #[arg(long, default_value = "/demo-telemetry")]
    pub name: String,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Rate)]
    pub mode: Mode,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Label printed before every line.
    #[arg(long, default_value = "reader")]
    pub label: String,
}

fn show(t: &Telemetry) -> String {
    format!(
        "tick {:>9}  pos ({:+.2}, {:+.2}, {:+.2})  battery {:>5.1}%  {:<7} armed={:?}",
        t.tick,
        t.pos[0],
        t.pos[1],
        t.pos[2],
        t.battery * 100.0,
        t.mode.as_str().unwrap_or("<invalid>"),
        t.armed
    )
}

/// Runs with `args` until done.
pub fn run(args: &Args) -> shm_core::Result<()> {
    let r = Telemetry::open(&args.name)?;
    let info = r.info();
    println!(
        "{}: opened {:?} ({} slots, writer pid {}, alive: {})",
        args.label,
        info.name(),
        info.slots(),
        info.writer().pid(),
        info.writer().alive()
    );
    let end = Instant::now() + Duration::from_secs_f64(args.seconds);
    let report_every = Duration::from_millis(1000);
    match args.mode {
        Mode::Rate => {
            let (mut total, mut total_time) = (0u64, Duration::ZERO);
            while Instant::now() < end {
                let window = Instant::now();
                let mut reads = 0u64;
                let mut last = r.read();
                while window.elapsed() < report_every {
                    for _ in 0..1024 {
                        last = std::hint::black_box(r.read());
                    }
                    reads += 1024;
                }
                let took = window.elapsed();
                total += reads;
                total_time += took;
                println!(
                    "{}: {}  | {:>6.1} M reads/s, {:>5.1} ns/read",
                    args.label,
                    show(&last),
                    reads as f64 / took.as_secs_f64() / 1e6,
                    took.as_nanos() as f64 / reads as f64
                );
            }
            println!(
                "{}: summary: {total} consistent reads, {:.1} ns per read",
                args.label,
                total_time.as_nanos() as f64 / total.max(1) as f64
            );
        }
        Mode::Latency => {
            let mut all = Vec::new();
            while Instant::now() < end {
                let window = Instant::now();
                let mut samples = Vec::new();
                let mut last = r.read();
                while window.elapsed() < report_every && Instant::now() < end {
                    match r.wait_for_update(r.version(), Duration::from_millis(200)) {
                        Ok(_) => {
                            last = r.read();
                            samples.push(now_ns().saturating_sub(last.stamp_ns));
                        }
                        Err(shm_core::Error::Timeout) if !r.info().writer().alive() => {
                            println!("{}: the writer is gone", args.label);
                            return Ok(());
                        }
                        Err(shm_core::Error::Timeout) => {}
                        Err(e) => return Err(e),
                    }
                }
                all.extend_from_slice(&samples);
                let n = samples.len();
                match percentiles(&mut samples) {
                    Some((p50, p99, _)) => println!(
                        "{}: {}  | {n:>5} updates, wake latency p50 {:>5.1} us, p99 {:>6.1} us",
                        args.label,
                        show(&last),
                        p50 as f64 / 1e3,
                        p99 as f64 / 1e3
                    ),
                    None => println!("{}: {}  | no updates", args.label, show(&last)),
                }
            }
            if let Some((p50, p99, max)) = percentiles(&mut all) {
                println!(
                    "{}: summary: {} updates, wake latency p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                    args.label,
                    all.len(),
                    p50 as f64 / 1e3,
                    p99 as f64 / 1e3,
                    max as f64 / 1e3
                );
            }
        }
    }
    Ok(())
}
