//! Writes the C/C++ header, the Python module and the JSON descriptor of the demo's
//! `Telemetry` type.
//!
//! ```text
//! cargo run -p examples --bin export -- [DIR]     # default DIR: target/shm-export
//! ```
//! Writes `DIR/telemetry.h`, `DIR/telemetry.py` and `DIR/telemetry.json`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/shm-export".to_string());
    if let Err(e) = shm_core::export::write_all::<examples::Telemetry>(&dir, "telemetry") {
        eprintln!("export: cannot write to {dir}: {e}");
        std::process::exit(1);
    }
    println!("wrote {dir}/telemetry.h, {dir}/telemetry.py and {dir}/telemetry.json");
}
