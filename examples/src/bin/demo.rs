//! The demo: one writer process and two reader processes share a telemetry struct.
//!
//! ```text
//! cargo run --release -p examples --bin demo
//! ```
//! Creates a segment, starts a writer (which takes the segment over) and two readers as
//! separate processes, relays what they print (live values, read rate, update latency), and
//! exits by itself after about 8 seconds. The segment's name is removed as soon as all three
//! processes have it mapped (as `/proc/PID/maps` shows), so nothing is left in /dev/shm, even if
//! the demo is interrupted.
//!
//! With `--keep-name` the name stays while the demo runs, so that another terminal can watch the
//! segment live (`shm watch NAME`, printed at the start); it is removed when the demo ends, also
//! on Ctrl-C.

use clap::Parser;
use examples::{reader, writer, Telemetry};
use shm_core::SharedState;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Run a writer and two readers on a shared telemetry struct.
#[derive(Parser)]
struct Args {
    /// How long the readers run, in seconds.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Values the writer publishes per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Keep the segment's name while the demo runs, so that `shm watch NAME` can show it live
    /// from another terminal; it is removed when the demo ends, also on Ctrl-C.
    #[arg(long)]
    keep_name: bool,
    /// Internal: run as one of the demo's child processes.
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: the segment name, for child processes.
    #[arg(long, hide = true)]
    name: Option<String>,
}

fn main() {
    let args = Args::parse();
    let result = match (args.role.as_deref(), args.name.clone()) {
        (Some("writer"), Some(name)) => writer::run(&writer::Args {
            name,
            rate: args.rate,
            seconds: args.seconds + 1.5,
            slots: 2,
            keep: true,
            take_over: true,
        }),
        (Some(label), Some(name)) => reader::run(&reader::Args {
            name,
            mode: if label == "reader-1" {
                reader::Mode::Rate
            } else {
                reader::Mode::Latency
            },
            seconds: args.seconds,
            label: label.to_string(),
        }),
        _ => demo(&args),
    };
    if let Err(e) = result {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

/// Set by the SIGINT handler that `--keep-name` installs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes Ctrl-C set [`INTERRUPTED`], so that the demo can remove the segment's name before it
/// exits.
fn install_sigint_handler() -> std::io::Result<()> {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes are valid (an empty mask,
    // no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: `action` is a valid, initialized `sigaction` whose handler only performs an atomic
    // store (async-signal-safe); a null old-action pointer is allowed.
    if unsafe { libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn spawn(args: &Args, role: &str, name: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--role", role, "--name", name])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

fn demo(args: &Args) -> shm_core::Result<()> {
    let name = format!("/shm-demo-{}", std::process::id());
    println!(
        "demo: `Telemetry` is {} bytes, layout hash {:#018x}; segment {name:?}",
        Telemetry::LAYOUT.size,
        Telemetry::LAYOUT_HASH
    );
    println!(
        "demo: 1 writer process ({} updates/s), reader-1 measures read rate, reader-2 update latency",
        args.rate
    );
    if args.keep_name {
        install_sigint_handler().map_err(|e| shm_core::Error::Io {
            action: "installing a Ctrl-C handler for",
            name: name.clone(),
            source: e,
        })?;
        println!("demo: the segment's name stays until the demo ends; watch it live with:");
        println!("demo:     shm watch {name}");
        println!("demo:   (from this workspace: cargo run -p shm-cli -- watch {name})");
    }
    // The demo creates the segment; the writer process takes it over (a new epoch). The demo
    // keeps a reader of its own to see that happen.
    let created = Telemetry::create(&name, &Telemetry::initial())?;
    let watch = Telemetry::open(&name);
    drop(created);
    let result = watch.and_then(|watch| run_children(args, &name, &watch));
    let _ = shm_core::remove(&name);
    let ok = result?;
    if INTERRUPTED.load(Ordering::Relaxed) {
        println!("demo: interrupted; segment name removed");
        std::process::exit(130);
    }
    let left = std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'));
    println!(
        "demo: done; {} in /dev/shm",
        if left.exists() {
            "the segment is STILL"
        } else {
            "nothing left"
        }
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Starts the writer, then the readers once it has taken over, relays what they print, removes
/// the segment's name once every child has it mapped, and returns whether all succeeded.
fn run_children(
    args: &Args,
    name: &str,
    watch: &shm_core::Reader<Telemetry>,
) -> shm_core::Result<bool> {
    let io = |e: std::io::Error| shm_core::Error::Io {
        action: "starting a child process for",
        name: name.to_string(),
        source: e,
    };
    let (tx, rx) = mpsc::channel::<Option<String>>();
    let mut children = Vec::new();
    for role in ["writer", "reader-1", "reader-2"] {
        let mut child = spawn(args, role, name).map_err(io)?;
        let out = child.stdout.take().expect("piped stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Some(line));
            }
            let _ = tx.send(None);
        });
        children.push(child);
        if role == "writer" {
            // Readers start once the writer has taken the segment over.
            let deadline = Instant::now() + Duration::from_secs(10);
            while watch.info().writer().epoch() < 2 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    drop(tx);

    let mut removed = false;
    let mut finished = 0;
    while finished < children.len() {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            // Ctrl-C: stop the children (a terminal's Ctrl-C has reached them too) and return,
            // so that the caller removes the name.
            for c in &mut children {
                let _ = c.kill();
            }
            break;
        }
        if !removed && !args.keep_name && children.iter().all(|c| maps_segment(c.id(), name)) {
            // Everyone has it mapped: the name can go. Nothing is left behind from here on.
            shm_core::remove(name)?;
            removed = true;
            println!("demo: all processes attached; segment name removed (mappings stay valid)");
        }
    }
    let mut ok = true;
    for mut c in children {
        ok &= c.wait().map(|s| s.success()).unwrap_or(false);
    }
    Ok(ok)
}

/// Whether process `pid` has the shared-memory segment `name` mapped (from `/proc/PID/maps`,
/// where a POSIX shared-memory object appears as `/dev/shm/NAME`).
fn maps_segment(pid: u32, name: &str) -> bool {
    let path = format!("/dev/shm{name}");
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|maps| maps.lines().any(|l| l.ends_with(&path)))
        .unwrap_or(false)
}
