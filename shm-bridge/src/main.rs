//! `shm-bridge`: mirrors shared-state segments to other hosts over Zenoh. See `docs/bridge.md`.

use clap::Parser;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Mirrors shared-state segments and broadcast streams to other hosts over Zenoh, typed, with
/// the same layout check. Runs until SIGINT or SIGTERM, then removes its mirrors and exits 0.
#[derive(Parser, Debug)]
#[command(name = "shm-bridge", version)]
struct Args {
    /// This host's id in key expressions; a segment NAME imported from here is mirrored on
    /// the importing host as `/NAME@ID`.
    #[arg(long)]
    id: String,
    /// A Zenoh endpoint to listen on, `tcp/HOST:PORT` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// A Zenoh endpoint to connect to, `tcp/HOST:PORT` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Export the local segments whose names match, `/robot-*` (repeatable). Mirrors (names
    /// with `@`) are never exported.
    #[arg(long, value_name = "GLOB")]
    export: Vec<String>,
    /// Import the remote segments `ID/NAME` that match, `a/robot-*` (repeatable).
    #[arg(long, value_name = "GLOB")]
    import: Vec<String>,
    /// Exported streams matching this pattern are published with congestion control "drop":
    /// under congestion Zenoh drops messages, which far readers count in `Lagged`, instead of
    /// slowing the exporter (default: "block", lossless while the network keeps up).
    #[arg(long, value_name = "GLOB")]
    lossy: Vec<String>,
    /// A Zenoh configuration file (json5), passed through: routers, TLS, access control.
    /// `--listen` and `--connect` are applied on top of it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The first chunk of every key expression.
    #[arg(long, default_value = "shm")]
    prefix: String,
    /// How mirrors are named: `{name}` (the remote segment's name without its slash) and
    /// `{id}` (the remote host's id) are replaced. It must start with `/` and hold an `@`.
    #[arg(long, value_name = "RULE", default_value = shm_bridge::DEFAULT_MIRROR_NAME)]
    mirror_name: String,
    /// The largest mirror created, in bytes: a remote peer cannot make this host allocate
    /// more for one segment.
    #[arg(long, default_value_t = 256 << 20)]
    max_mirror_bytes: u64,
    /// After publishing a state, keep looking at the exported states' version words for this
    /// many microseconds before sleeping on their futexes: a writer publishing again within
    /// that time is seen without a wake-up, at the cost of a busy core meanwhile. 0 (the
    /// default) sleeps at once.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0)]
    spin_us: u64,
    /// Log errors only.
    #[arg(long, short)]
    quiet: bool,
}

fn main() {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(stop.clone()) {
        eprintln!("shm-bridge: cannot handle signals: {e}");
        std::process::exit(1);
    }
    let config = shm_bridge::Config {
        id: args.id,
        listen: args.listen,
        connect: args.connect,
        export: args.export,
        import: args.import,
        lossy: args.lossy,
        zenoh_config: args.config,
        prefix: args.prefix,
        mirror_name: args.mirror_name,
        max_mirror_bytes: args.max_mirror_bytes,
        spin: std::time::Duration::from_micros(args.spin_us),
        quiet: args.quiet,
    };
    if let Err(e) = shm_bridge::run(config, stop) {
        let mut msg = format!("shm-bridge: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        eprintln!("{msg}");
        std::process::exit(1);
    }
}

/// Sets `stop` on SIGINT and SIGTERM.
fn stop_on_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let stop = stop.clone();
        // SAFETY: the action only stores to an atomic, which is async-signal-safe; it neither
        // allocates nor locks.
        unsafe {
            signal_hook_registry::register(signal, move || stop.store(true, Ordering::Relaxed))?;
        }
    }
    Ok(())
}
