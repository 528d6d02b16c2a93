//! Publishes simulated robot telemetry to a shared segment.
//!
//! ```text
//! cargo run --release -p examples --bin writer -- --name /demo-telemetry --seconds 30
//! ```
//! Creates the segment (or takes over an existing one whose writer has exited), publishes at
//! `--rate` values per second for `--seconds`, then removes the segment unless `--keep`.

use clap::Parser;

fn main() {
    let args = examples::writer::Args::parse();
    if let Err(e) = examples::writer::run(&args) {
        eprintln!("writer: {e}");
        std::process::exit(1);
    }
}
