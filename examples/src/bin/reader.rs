//! Reads robot telemetry from a shared segment and reports read rate or update latency.
//!
//! ```text
//! cargo run --release -p examples --bin reader -- --name /demo-telemetry --mode rate
//! ```
//! `--mode rate` reads in a tight loop and reports reads per second and the cost of one read;
//! `--mode latency` sleeps until each update (futex) and reports how long after the writer's
//! publish it woke.

use clap::Parser;

fn main() {
    let args = examples::reader::Args::parse();
    if let Err(e) = examples::reader::run(&args) {
        eprintln!("{}: {e}", args.label);
        std::process::exit(1);
    }
}
