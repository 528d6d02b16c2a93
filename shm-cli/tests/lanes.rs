//! `shm ls`, `inspect`, `watch` and `gc` on a multi-producer stream: the directory lists its
//! lanes, each lane says which stream it belongs to, and `gc` keeps a directory whose lanes are
//! in use.

mod common;

use common::*;
use shm_core::SharedState;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

/// Removes the lanes of a multi-producer stream on drop (the directory is `Name`'s).
struct Lanes<'a>(&'a str, usize);

impl Drop for Lanes<'_> {
    fn drop(&mut self) {
        for k in 0..self.1 {
            let _ = shm_core::remove(&shm_core::stream::lanes::lane_name(self.0, k));
        }
    }
}

#[test]
fn ls_shows_which_lanes_belong_to_which_stream() {
    let name = Name::new("lanes");
    let _lanes = Lanes(&name, 3);
    let mut tx = Sample::create_lanes(&name, 3, 16).unwrap();
    for k in 1..=5 {
        tx.send(&Sample::at(k));
    }

    let out = shm(&["ls", "--json", "--prefix", &name]);
    assert_code(&out, 0);
    let entries = json(&out);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    let dir = &entries[0];
    assert_eq!(dir["name"], *name);
    assert_eq!(dir["kind"], "lanes");
    assert_eq!(dir["type"], "Sample");
    assert_eq!(dir["lanes"]["kind"], "stream");
    assert_eq!(dir["lanes"]["count"], 3);
    assert_eq!(dir["lanes"]["capacity"], 16);
    for (k, e) in entries[1..].iter().enumerate() {
        assert_eq!(e["name"], format!("{}.lane-{k}", &*name));
        assert_eq!(e["kind"], "stream");
        assert_eq!(e["lane_of"], *name);
        assert_eq!(e["lane"], k);
        assert_eq!(e["version"], if k == 0 { 5 } else { 0 }, "{e}");
    }
    let text = stdout(&shm(&["ls", "--prefix", &name]));
    assert!(text.contains("LANES"), "{text}");
    assert!(text.contains(&format!("lane 2 of {}", &*name)), "{text}");
    assert!(text.contains("3 stream lanes"), "{text}");

    let out = shm(&["inspect", "--json", &name]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["lane_kind"], "stream");
    let lanes = j["lanes"].as_array().unwrap();
    assert_eq!(lanes.len(), 3);
    assert_eq!(lanes[0]["version"], 5);
    assert_eq!(lanes[0]["writer_alive"], true);
    assert_eq!(lanes[1]["writer_alive"], false);
    let text = stdout(&shm(&["inspect", &name]));
    assert!(
        text.contains("multi-producer stream, 3 lanes of 16 messages of Sample"),
        "{text}"
    );

    // `check` knows a directory (kind 3) and finds it healthy, as it does each lane.
    let out = shm(&["check", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("multi-producer lanes directory"), "{text}");
    assert_code(
        &shm(&["check", &shm_core::stream::lanes::lane_name(&name, 0)]),
        0,
    );

    // The directory's creator handle is gone (it is not a writer), but lane 0 has a producer:
    // gc keeps the directory.
    let out = shm(&["gc", "--prefix", &name]);
    assert_code(&out, 0);
    assert!(
        std::path::Path::new(&name.path()).exists(),
        "gc removed a directory in use"
    );
    drop(tx);
}
