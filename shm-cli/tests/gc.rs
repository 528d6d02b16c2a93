//! `shm gc`: removes exactly the segments whose writer is dead and that no process maps.

mod common;

use common::*;
use std::path::Path;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

fn names(list: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn gc_removes_dead_unmapped_segments_and_keeps_live_or_mapped_ones() {
    let dead = Name::new("gc");
    let live = Name::new("gc");
    let mapped = Name::new("gc");
    let prefix = format!("/shmtest-cli-gc-{}-", std::process::id());
    dead_writer_segment(&dead);
    dead_writer_segment(&mapped);
    let _writer = LiveWriter::start(&live, 0);
    // This process maps `mapped`; its writer is dead.
    let reader = shm_core::RawReader::open(&mapped).expect("open");
    assert!(!reader.writer_alive());

    let out = shm(&["gc", "--dry-run", "--json", "--prefix", &prefix]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["dry_run"], true);
    assert_eq!(names(&j["removed"]), [dead.to_string()]);
    let mut kept = vec![live.to_string(), mapped.to_string()];
    kept.sort();
    assert_eq!(names(&j["kept"]), kept);
    let reason_of = |name: &str| {
        j["kept"]
            .as_array()
            .expect("kept")
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(reason_of(&live).contains("alive"), "{}", reason_of(&live));
    assert!(
        reason_of(&mapped).contains(&format!("mapped by pid {}", std::process::id())),
        "{}",
        reason_of(&mapped)
    );
    for n in [&dead, &live, &mapped] {
        assert!(Path::new(&n.path()).exists(), "dry run removed {}", &**n);
    }
    // The human form says the same.
    let text = stdout(&shm(&["gc", "-n", "--prefix", &prefix]));
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line(&dead).starts_with("would remove"), "{text}");
    assert!(line(&live).starts_with("kept"), "{text}");
    assert!(line(&mapped).starts_with("kept"), "{text}");

    let out = shm(&["gc", "--json", "--prefix", &prefix]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["dry_run"], false);
    assert_eq!(names(&j["removed"]), [dead.to_string()]);
    assert_eq!(names(&j["kept"]), kept);
    assert!(!Path::new(&dead.path()).exists());
    assert!(Path::new(&live.path()).exists());
    assert!(Path::new(&mapped.path()).exists());

    // Unmapped now, and its writer still dead: the next run removes it.
    drop(reader);
    let j = json(&shm(&["gc", "--json", "--prefix", &prefix]));
    assert_eq!(names(&j["removed"]), [mapped.to_string()]);
    assert!(Path::new(&live.path()).exists());
}
