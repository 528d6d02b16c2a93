//! The whole reader API in one screen: open a segment, wait for updates, read snapshots.
//!
//! Start `minimal_writer` first; this prints five updates and exits.
use examples::Pose;
use shm_core::SharedState;
use std::time::Duration;

fn main() -> Result<(), shm_core::Error> {
    // Checks the layout hash: a program with a different `Pose` is refused, naming the field.
    let r = Pose::open("/minimal-pose")?;
    let mut seen = r.version();
    for _ in 0..5 {
        // Sleeps on a futex until the writer publishes; no polling.
        seen = r.wait_for_update(seen, Duration::from_secs(2))?;
        let p: Pose = r.read(); // a consistent snapshot, never torn
        println!(
            "reader: version {seen}: tick {} at ({:.1}, {:.1})",
            p.tick, p.x, p.y
        );
    }
    println!("reader: writer alive: {}", r.info().writer().alive());
    Ok(())
}
