//! The built-in `Telemetry` type the example programs share, and small helpers.
#![warn(missing_docs)]

pub mod reader;
pub mod upgrade;
pub mod writer;

use shm_core::{FixedStr, SharedState, ShmBool};

/// A 2-D pose, the type `minimal_writer` and `minimal_reader` share: a crate both programs
/// depend on defines it once.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Pose {
    /// Publish counter.
    pub tick: u64,
    /// Position, metres.
    pub x: f64,
    /// Position, metres.
    pub y: f64,
    /// Heading, radians.
    pub heading: f32,
    /// Whether the robot is moving.
    pub moving: ShmBool,
    /// Explicit padding: the derive refuses implicit padding bytes.
    pub _pad: [u8; 3],
}

/// A robot's telemetry: what one process publishes and others watch.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Telemetry")]
pub struct Telemetry {
    /// Publish counter kept by the writer.
    pub tick: u64,
    /// When the writer published this value: `CLOCK_MONOTONIC` nanoseconds, comparable across
    /// processes on one host.
    pub stamp_ns: u64,
    /// Position, metres.
    pub pos: [f64; 3],
    /// Velocity, metres per second.
    pub vel: [f64; 3],
    /// Battery charge, 0 to 1.
    pub battery: f32,
    /// Status code.
    pub status: u32,
    /// Operating mode, as text.
    pub mode: FixedStr<19>,
    /// Whether the motors are armed.
    pub armed: ShmBool,
}

impl Telemetry {
    /// The value a segment starts with.
    pub fn initial() -> Self {
        Telemetry {
            tick: 0,
            stamp_ns: now_ns(),
            pos: [0.0; 3],
            vel: [0.0; 3],
            battery: 1.0,
            status: 0,
            mode: FixedStr::try_from("idle").expect("fits"),
            armed: ShmBool::FALSE,
        }
    }

    /// The next value of a simulated robot driving in a circle.
    pub fn step(&mut self) {
        self.tick += 1;
        let t = self.tick as f64 * 1e-3;
        self.pos = [t.cos() * 2.0, t.sin() * 2.0, 0.5];
        self.vel = [-t.sin() * 2.0, t.cos() * 2.0, 0.0];
        self.battery = (1.0 - self.tick as f32 * 1e-6).max(0.0);
        self.status = if self.tick % 5000 < 4000 { 0 } else { 1 };
        self.mode = FixedStr::try_from(if self.status == 0 {
            "driving"
        } else {
            "turning"
        })
        .expect("fits");
        self.armed = ShmBool::TRUE;
        self.stamp_ns = now_ns();
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the host.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; CLOCK_MONOTONIC is always supported.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sorted latency samples, summarized.
pub fn percentiles(samples: &mut [u64]) -> Option<(u64, u64, u64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    Some((at(0.5), at(0.99), *samples.last().expect("non-empty")))
}
