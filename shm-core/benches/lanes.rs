//! Multi-producer queue throughput against its baselines, measured in the same run: lossless
//! delivery of 64-byte messages to one consumer (the bench thread), by
//!
//! - `spsc`: one producer thread and a single-producer queue (the baseline: one lane's cost);
//! - `lanes`: `P` producer threads, each with a lane of a `P`-lane queue;
//! - `mutex`: `P` producer threads sharing one single-producer queue behind a `Mutex` (what
//!   users do without lanes).
//!
//! Prints messages per second and the ratios to `spsc`. Producers and the consumer poll
//! (`try_send`/`try_recv`, yielding the CPU now and then).
//!
//! ```text
//! cargo bench -p shm-core --bench lanes            # SHM_BENCH_PRODUCERS=2 by default
//! ```

use shm_core::{Error, SharedState};
use std::sync::Mutex;
use std::time::Instant;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Msg {
    words: [u64; 8],
}

const PER_PRODUCER: u64 = 2_000_000;
const CAPACITY: usize = 1024;

fn name(tag: &str) -> String {
    format!("/shmbench-lanes-{tag}-{}", std::process::id())
}

fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins % 64 == 0 {
        std::thread::yield_now();
    } else {
        core::hint::spin_loop();
    }
}

/// Sends `n` messages through `send`, retrying while it reports `Full`.
fn produce(n: u64, mut send: impl FnMut(&Msg) -> Result<(), Error>) {
    let mut spins = 0;
    for i in 1..=n {
        let m = Msg { words: [i; 8] };
        loop {
            match send(&m) {
                Ok(()) => break,
                Err(Error::Full) => pause(&mut spins),
                Err(e) => panic!("send: {e}"),
            }
        }
    }
}

/// Takes `total` messages through `recv`; returns messages per second.
fn consume(total: u64, start: Instant, mut recv: impl FnMut() -> Option<Msg>) -> f64 {
    let mut spins = 0;
    let mut sum = 0u64;
    for _ in 0..total {
        loop {
            if let Some(m) = recv() {
                sum = sum.wrapping_add(m.words[0]);
                break;
            }
            pause(&mut spins);
        }
    }
    std::hint::black_box(sum);
    total as f64 / start.elapsed().as_secs_f64()
}

fn spsc() -> f64 {
    let n = name("spsc");
    let mut p = Msg::create_queue(&n, CAPACITY).unwrap();
    let mut c = Msg::open_consumer(&n).unwrap();
    let start = Instant::now();
    let rate = std::thread::scope(|s| {
        s.spawn(|| produce(PER_PRODUCER, |m| p.try_send(m)));
        consume(PER_PRODUCER, start, || c.try_recv().unwrap())
    });
    shm_core::remove(&n).unwrap();
    rate
}

fn lanes(producers: usize) -> f64 {
    let n = name("lanes");
    drop(Msg::create_lane_queue(&n, producers, CAPACITY).unwrap());
    let mut c = Msg::open_lane_consumer(&n).unwrap();
    let mut ps: Vec<_> = (0..producers)
        .map(|_| Msg::join_queue(&n).unwrap())
        .collect();
    let start = Instant::now();
    let rate = std::thread::scope(|s| {
        for p in &mut ps {
            s.spawn(|| produce(PER_PRODUCER, |m| p.try_send(m)));
        }
        consume(PER_PRODUCER * producers as u64, start, || {
            c.try_recv().unwrap()
        })
    });
    drop(ps);
    shm_core::remove_lanes(&n).unwrap();
    rate
}

fn mutex(producers: usize) -> f64 {
    let n = name("mutex");
    let p = Mutex::new(Msg::create_queue(&n, CAPACITY).unwrap());
    let mut c = Msg::open_consumer(&n).unwrap();
    let start = Instant::now();
    let rate = std::thread::scope(|s| {
        for _ in 0..producers {
            s.spawn(|| produce(PER_PRODUCER, |m| p.lock().unwrap().try_send(m)));
        }
        consume(PER_PRODUCER * producers as u64, start, || {
            c.try_recv().unwrap()
        })
    });
    shm_core::remove(&n).unwrap();
    rate
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let producers: usize = std::env::var("SHM_BENCH_PRODUCERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let base = spsc();
    let l = lanes(producers);
    let m = mutex(producers);
    println!("spsc (1 producer):        {:>8.2} M msg/s", base / 1e6);
    println!(
        "lanes ({producers} producers):     {:>8.2} M msg/s  ({:.2}x spsc)",
        l / 1e6,
        l / base
    );
    println!(
        "mutex ({producers} producers):     {:>8.2} M msg/s  ({:.2}x spsc)",
        m / 1e6,
        m / base
    );
}
