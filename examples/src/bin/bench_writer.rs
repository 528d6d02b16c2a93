//! The writer side of `python/bench.py`: publishes the demo's `Telemetry` with every field
//! derived from one counter, so that a reader can tell a torn value from a whole one.
//!
//! ```text
//! bench_writer state NAME      # a shared-state segment, published back to back
//! bench_writer mmap PATH       # a plain file mapping, written back to back, no synchronisation
//! bench_writer stream NAME N   # a stream of capacity N: N messages per line read on stdin
//! ```
//! Each mode prints `ready` once it has something to read, runs until its standard input
//! closes (at most ten minutes), then removes what it created.

use examples::Telemetry;
use shm_core::{FixedStr, SharedState, ShmBool};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest run: a benchmark that lost its parent does not publish forever.
const MAX_RUN: Duration = Duration::from_secs(600);

/// The value whose every field derives from `n` (what `bench.py` checks).
fn value(n: u64) -> Telemetry {
    Telemetry {
        tick: n,
        stamp_ns: n,
        pos: [n as f64; 3],
        vel: [-(n as f64); 3],
        battery: (n % 1024) as f32,
        status: n as u32,
        mode: FixedStr::try_from(format!("mode-{}", n % 1_000_000).as_str()).expect("fits"),
        armed: if n % 2 == 1 {
            ShmBool::TRUE
        } else {
            ShmBool::FALSE
        },
    }
}

/// Set once standard input closes.
fn stop_on_eof() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        flag.store(true, Ordering::Relaxed);
    });
    stop
}

fn ready() {
    println!("ready");
    std::io::stdout().flush().expect("stdout");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let start = Instant::now();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["state", name] => {
            let mut w = Telemetry::create(name, &value(0))?;
            let stop = stop_on_eof();
            ready();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
                n += 1;
                w.write(&value(n));
            }
            drop(w);
            shm_core::remove(name)?;
        }
        ["mmap", path] => {
            let words = 12;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            file.set_len(size_of::<Telemetry>() as u64)?;
            // SAFETY: a shared, writable mapping of the file's whole length, checked below.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    size_of::<Telemetry>(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                )
            };
            if map == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error().into());
            }
            // The mapping is page-aligned and `words` words long; other processes write it
            // too, so it is only touched through atomics: each word whole, the value not.
            // SAFETY: `map` is `size_of::<Telemetry>()` bytes, 8-byte aligned, mapped until the
            // munmap below; `AtomicU64` has the layout of `u64`.
            let cells = unsafe { std::slice::from_raw_parts(map.cast::<AtomicU64>(), words) };
            let stop = stop_on_eof();
            ready();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < MAX_RUN {
                n += 1;
                // SAFETY: `Telemetry` is 96 bytes with no padding (the derive proves it), so
                // every byte is initialized and it is 12 words.
                let v: [u64; 12] = unsafe { std::mem::transmute(value(n)) };
                for (cell, word) in cells.iter().zip(v) {
                    cell.store(word, Ordering::Relaxed);
                }
            }
            // SAFETY: unmaps the mapping made above, no longer used.
            unsafe { libc::munmap(map, size_of::<Telemetry>()) };
            std::fs::remove_file(path)?;
        }
        ["stream", name, capacity] => {
            let capacity: usize = capacity.parse()?;
            let mut tx = Telemetry::create_stream(name, capacity)?;
            ready();
            let mut n = 0;
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                line?;
                if start.elapsed() >= MAX_RUN {
                    break;
                }
                for _ in 0..capacity {
                    n += 1;
                    tx.send(&value(n));
                }
                println!("sent {n}");
                std::io::stdout().flush()?;
            }
            drop(tx);
            shm_core::remove(name)?;
        }
        _ => {
            eprintln!("usage: bench_writer state NAME | mmap PATH | stream NAME CAPACITY");
            std::process::exit(2);
        }
    }
    Ok(())
}
