//! Awaits a shared-state segment and a stream at once, with `tokio::select!`.
//!
//! ```text
//! cargo run --release -p examples --bin async_select
//! ```
//! Creates a `Pose` segment and a stream of `u64` events (names unique to this process), and
//! starts a writer thread that publishes 20 poses and sends 20 events, a few milliseconds
//! apart. The main task waits for both with one `select!`: `Reader::changed` for a new pose,
//! `StreamReader::recv_async` for the next event. Both futures are cancellation-safe: the one
//! that loses a `select!` is dropped and loses nothing. It prints what it sees, exits when it
//! has seen the last pose and the last event, and removes both names.

use examples::Pose;
use shm_core::{Error, SharedState, ShmBool};
use std::time::Duration;

/// Poses published and events sent.
const COUNT: u64 = 20;

fn main() -> Result<(), Error> {
    let pid = std::process::id();
    let pose_name = format!("/async-select-pose-{pid}");
    let events_name = format!("/async-select-events-{pid}");
    let initial = Pose {
        tick: 0,
        x: 0.0,
        y: 0.0,
        heading: 0.0,
        moving: ShmBool::new(false),
        _pad: [0; 3],
    };
    let mut pose_writer = Pose::create(&pose_name, &initial)?;
    let mut events_writer = u64::create_stream(&events_name, 64)?;
    let pose = Pose::open(&pose_name)?;
    let mut events = u64::subscribe(&events_name)?;

    let writer = std::thread::spawn(move || {
        for i in 1..=COUNT {
            std::thread::sleep(Duration::from_millis(3));
            pose_writer.update(|p| {
                p.tick = i;
                p.x += 0.5;
                p.moving = ShmBool::new(true);
            });
            std::thread::sleep(Duration::from_millis(2));
            events_writer.send(&(100 + i));
        }
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let seen = runtime.block_on(async {
        let (mut version, mut last_tick, mut last_event) = (pose.version(), 0, 0);
        while last_tick < COUNT || last_event < 100 + COUNT {
            tokio::select! {
                changed = pose.changed(version), if last_tick < COUNT => {
                    version = changed?;
                    let p = pose.read();
                    last_tick = p.tick;
                    println!("pose tick={} x={:.1} (version {version})", p.tick, p.x);
                }
                event = events.recv_async(), if last_event < 100 + COUNT => {
                    match event {
                        Ok(e) => {
                            last_event = e;
                            println!("event {e}");
                        }
                        Err(Error::Lagged { missed }) => println!("lost {missed} events"),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok::<_, Error>((last_tick, last_event))
    });
    writer.join().expect("the writer thread");
    shm_core::remove(&pose_name)?;
    shm_core::remove(&events_name)?;
    let (tick, event) = seen?;
    println!("done: last pose tick {tick}, last event {event}");
    Ok(())
}
