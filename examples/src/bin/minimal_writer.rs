//! The whole writer API in one screen: create a segment, publish, remove it.
//!
//! ```text
//! cargo run --release -p examples --bin minimal_writer &
//! cargo run --release -p examples --bin minimal_reader
//! ```
use examples::Pose;
use shm_core::{SharedState, ShmBool};
use std::time::Duration;

fn main() -> Result<(), shm_core::Error> {
    let name = "/minimal-pose";
    let start = Pose {
        tick: 0,
        x: 0.0,
        y: 0.0,
        heading: 0.0,
        moving: ShmBool::TRUE,
        _pad: [0; 3],
    };
    // `open_or_create` also takes over a segment a crashed writer left behind.
    let mut w = Pose::open_or_create(name, &start)?;
    for _ in 0..50 {
        w.update(|p| {
            p.tick += 1;
            p.x += 0.1;
            p.heading = (p.tick as f32 * 0.1).sin();
        });
        std::thread::sleep(Duration::from_millis(100)); // 10 updates a second
    }
    w.update(|p| p.moving = ShmBool::FALSE);
    println!("writer: published {} values", w.version());
    shm_core::remove(name) // readers that have it open keep reading the last value
}
