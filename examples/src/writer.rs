//! The writer program: publishes simulated robot telemetry to a shared segment.

use crate::Telemetry;
use clap::Parser;
use shm_core::{Options, SharedState};
use std::time::{Duration, Instant};

/// Publish simulated robot telemetry to a shared segment.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Segment name (POSIX shared memory, starts with `/`).
    #[arg(long, default_value = "/demo-telemetry")]
    pub name: String,
    /// Values published per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// How long to run.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Number of slots when creating the segment.
    #[arg(long, default_value_t = 2)]
    pub slots: usize,
    /// Leave the segment in place when done.
    #[arg(long)]
    pub keep: bool,
    /// Take over an existing segment instead of creating one.
    #[arg(long)]
    pub take_over: bool,
}

/// Runs with `args` until done.
pub fn run(args: &Args) -> shm_core::Result<()> {
    let mut w = if args.take_over {
        Telemetry::open_writer(&args.name)?
    } else {
        Options::new()
            .slots(args.slots)
            .open_or_create(&args.name, &Telemetry::initial())?
    };
    println!(
        "writer: {} {:?} (epoch {}, layout hash {:#018x}); publishing for {} s",
        if w.created() { "created" } else { "took over" },
        args.name,
        w.info().writer().epoch(),
        Telemetry::LAYOUT_HASH,
        args.seconds
    );
    let period = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut next = start;
    let mut last_report = start;
    while Instant::now() < end {
        w.update(Telemetry::step);
        if let Some(p) = period {
            next += p;
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let t = w.get()?;
            println!(
                "writer: tick {:>9}  pos ({:+.2}, {:+.2}, {:+.2})  {}",
                t.tick,
                t.pos[0],
                t.pos[1],
                t.pos[2],
                t.mode.as_str().unwrap_or("?")
            );
        }
    }
    let published = w.version();
    println!(
        "writer: published {published} values in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if !args.keep {
        shm_core::remove(w.info().name())?;
    }
    Ok(())
}
