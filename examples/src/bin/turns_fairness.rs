//! Fairness of turn-taking writers: four writer processes loop on `turn()` until their turns
//! add up to a total, then the turns each got are printed, with the spread between them and
//! how often a turn went to another writer than the one before.
//!
//! ```text
//! cargo run --release -p examples --bin turns_fairness [-- --turns 400000 --writers 4]
//! ```
use clap::Parser;
use shm_core::{Options, SharedState};
use std::process::Command;
use std::time::{Duration, Instant};

/// Most writers the payload has room for.
const MAX_WRITERS: usize = 16;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Turns {
    /// Turns taken, by all writers.
    total: u64,
    /// The writer whose turn was last.
    last: u64,
    /// Turns each writer took.
    done: [u64; MAX_WRITERS],
    /// Turns each writer took right after another writer's turn.
    handoffs: [u64; MAX_WRITERS],
}

#[derive(Parser)]
struct Args {
    /// Turns all writers take together.
    #[arg(long, default_value_t = 400_000)]
    turns: u64,
    /// Writer processes (at most 16).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Internal: run as writer number N of segment NAME.
    #[arg(long, num_args = 2, value_names = ["N", "NAME"], hide = true)]
    child: Option<Vec<String>>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(child) = &args.child {
        return writer(child[0].parse()?, &child[1], args.turns);
    }
    assert!((1..=MAX_WRITERS).contains(&args.writers));
    let name = format!("/shm-bench-turns-{}", std::process::id());
    let zero = Turns {
        total: 0,
        last: u64::MAX,
        done: [0; MAX_WRITERS],
        handoffs: [0; MAX_WRITERS],
    };
    let creator = Options::new().shared_writers(true).create(&name, &zero)?;
    let start = Instant::now();
    let children: Vec<_> = (0..args.writers)
        .map(|k| {
            Command::new(std::env::current_exe().expect("this program"))
                .args(["--turns", &args.turns.to_string(), "--child"])
                .args([k.to_string(), name.clone()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        assert!(c.wait()?.success(), "a writer failed");
    }
    let elapsed = start.elapsed();
    let end = creator.get()?;
    drop(creator);
    shm_core::remove(&name)?;

    let done = &end.done[..args.writers];
    let mean = end.total as f64 / args.writers as f64;
    let (min, max) = (*done.iter().min().unwrap(), *done.iter().max().unwrap());
    let sd =
        (done.iter().map(|&d| (d as f64 - mean).powi(2)).sum::<f64>() / args.writers as f64).sqrt();
    println!(
        "{} writer processes, {} turns in {:.2} s ({:.0} turns/s)",
        args.writers,
        end.total,
        elapsed.as_secs_f64(),
        end.total as f64 / elapsed.as_secs_f64()
    );
    for (k, (&d, &h)) in done.iter().zip(&end.handoffs).enumerate() {
        println!(
            "writer {k}: {d:>8} turns ({:5.1}% of all), {:5.1}% of them right after another writer's",
            100.0 * d as f64 / end.total as f64,
            100.0 * h as f64 / d.max(1) as f64
        );
    }
    println!(
        "spread: min {min}, max {max}, max/min {:.2}, standard deviation {:.1}% of the mean",
        max as f64 / min.max(1) as f64,
        100.0 * sd / mean
    );
    Ok(())
}

/// Takes turns until all writers' turns add up to `turns`.
fn writer(k: usize, name: &str, turns: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut w = Options::new()
        .shared_writers(true)
        .open_writer::<Turns>(name)?;
    // Bounded: every turn raises `total` by one until it reaches `turns`.
    loop {
        let mut t = w.turn(Duration::from_secs(10))?;
        if t.total >= turns {
            t.discard();
            return Ok(());
        }
        t.total += 1;
        t.done[k] += 1;
        if t.last != k as u64 {
            t.handoffs[k] += 1;
        }
        t.last = k as u64;
    }
}
