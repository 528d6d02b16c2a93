//! `shm` on segments of `#[shm(appendable)]` types: `inspect` shows the flag and the fields'
//! markers (deprecated, alias), `check` and `export` accept such segments, and both
//! `inspect --expect` and `check --expect` apply the rule of "Compatibility" to the stored
//! layout and a program's JSON export: the two layouts and the verdict.

mod common;

use common::*;
use shm_core::SharedState;
use std::path::PathBuf;

mod v1 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        pub seq: u64,
        pub x: f64,
    }
}

mod v2 {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "PoseExt", appendable)]
    pub struct Ext {
        pub z: f64,
    }
    /// `seq` deprecated, `x` renamed `east` with an alias, `ext` appended.
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        #[deprecated = "use the version instead"]
        #[shm(deprecated)]
        pub seq: u64,
        #[shm(alias = "x")]
        pub east: f64,
        pub ext: Ext,
    }
}

mod retyped {
    use shm_core::SharedState;
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    pub struct Pose {
        pub seq: u64,
        pub x: i64,
        pub y: f64,
    }
}

/// A JSON export written to a temporary file, removed on drop.
struct Export(PathBuf);

impl Export {
    fn of<T: SharedState>(tag: &str) -> Export {
        let path =
            std::env::temp_dir().join(format!("shmtest-upgrade-{tag}-{}.json", std::process::id()));
        std::fs::write(&path, shm_core::export::json::<T>()).unwrap();
        Export(path)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[allow(deprecated)]
fn v2_value() -> v2::Pose {
    v2::Pose {
        seq: 7,
        east: 1.5,
        ext: v2::Ext { z: 2.5 },
    }
}

#[test]
fn inspect_check_and_export_show_an_appendable_layout_and_its_markers() {
    let name = Name::new("cli-appendable");
    let _w = v2::Pose::create(&name, &v2_value()).unwrap();

    let out = shm(&["inspect", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("24 bytes, align 8, #[shm(appendable)])"),
        "{text}"
    );
    let row = |field: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{field} ")))
            .unwrap_or_else(|| panic!("no row {field}: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        text.contains("FIELD  TYPE     OFFSET  SIZE  NOTES"),
        "{text}"
    );
    assert_eq!(row("seq"), "seq u64 0 8 deprecated");
    assert_eq!(row("east"), "east f64 8 8 alias of \"x\"");
    assert_eq!(row("ext"), "ext PoseExt 16 8 appendable");
    assert!(text.contains("east   = 1.5"), "{text}");

    let j = json(&shm(&["inspect", "--json", &name]));
    assert_eq!(j["appendable"], true, "{j}");
    assert_eq!(j["layout"][0]["notes"], "deprecated", "{j}");
    assert_eq!(j["layout"][1]["notes"], "alias of \"x\"", "{j}");
    assert_eq!(j["layout"][3].get("notes"), None, "{j}");
    assert_eq!(j["value"]["ext"]["z"], 2.5, "{j}");

    let out = shm(&["check", &name]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("decodes: struct Pose, 3 fields, #[shm(appendable)]"),
        "{}",
        stdout(&out)
    );

    let out = shm(&["export", &name]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), shm_core::export::json::<v2::Pose>());
    let out = shm(&["export", "--lang", "c", &name]);
    assert_code(&out, 0);
    assert_eq!(stdout(&out), shm_core::export::c_header::<v2::Pose>());
}

#[test]
fn inspect_and_check_apply_the_rule_to_an_expected_layout() {
    let old = Name::new("cli-v1");
    let new = Name::new("cli-v2");
    let _w1 = v1::Pose::create(&old, &v1::Pose { seq: 3, x: 0.5 }).unwrap();
    let _w2 = v2::Pose::create(&new, &v2_value()).unwrap();
    let (e1, e2, bad) = (
        Export::of::<v1::Pose>("v1"),
        Export::of::<v2::Pose>("v2"),
        Export::of::<retyped::Pose>("retyped"),
    );

    // A v2 program on the v1 segment: both layouts, and the verdict.
    let out = shm(&["inspect", &old, "--expect", e2.arg()]);
    assert_code(&out, 0);
    let text = stdout(&out);
    let (segment, expected) = text.split_once("EXPECTED LAYOUT").expect(&text);
    assert!(segment.contains("16 bytes"), "{text}");
    assert!(!segment.contains("ext"), "{text}");
    assert!(expected.contains(&format!("({})", e2.arg())), "{text}");
    assert!(
        expected.contains(&format!(
            "layout hash {:#018x}, 24 bytes",
            v2::Pose::LAYOUT_HASH
        )),
        "{text}"
    );
    assert!(expected.contains("ext.z  f64"), "{text}");
    assert!(
        expected.contains("verdict   compatible: SegmentOlder (the segment holds an earlier version; this program's bytes past 16 read as zero)"),
        "{text}"
    );

    let j = json(&shm(&["inspect", "--json", &old, "--expect", e2.arg()]));
    assert_eq!(j["expected"]["compat"], "SegmentOlder", "{j}");
    assert_eq!(j["expected"]["refused"], serde_json::Value::Null, "{j}");
    assert_eq!(j["expected"]["payload_size"], 24, "{j}");
    assert_eq!(j["expected"]["layout"][3]["path"], "ext.z", "{j}");

    // A v1 program on the v2 segment, and each on its own.
    let j = json(&shm(&["inspect", "--json", &new, "--expect", e1.arg()]));
    assert_eq!(j["expected"]["compat"], "SegmentNewer", "{j}");
    let j = json(&shm(&["inspect", "--json", &new, "--expect", e2.arg()]));
    assert_eq!(j["expected"]["compat"], "Exact", "{j}");

    // check: a compatible expected layout passes.
    let out = shm(&["check", &old, "--expect", e2.arg()]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("ok    expected layout    compatible: SegmentOlder"),
        "{}",
        stdout(&out)
    );
    let j = json(&shm(&["check", "--json", &new, "--expect", e1.arg()]));
    assert_eq!(j["status"], "healthy", "{j}");

    // A retyped field: refused with the rule's message, exit 4 from check.
    let why = match retyped::Pose::open(&old) {
        Err(shm_core::Error::LayoutMismatch {
            first_difference, ..
        }) => first_difference,
        other => panic!("the Rust reader did not refuse: {:?}", other.map(|_| ())),
    };
    assert!(why.contains("field `x` is `f64` at offset 8"), "{why}");
    let j = json(&shm(&["inspect", "--json", &old, "--expect", bad.arg()]));
    assert_eq!(j["expected"]["compat"], serde_json::Value::Null, "{j}");
    assert_eq!(j["expected"]["refused"], why.as_str(), "{j}");
    let out = shm(&["check", &old, "--expect", bad.arg()]);
    assert_code(&out, 4);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("FAIL  expected layout    refused: {why}")),
        "{text}"
    );
    assert!(
        text.ends_with("healthy, but a program of the expected layout may not open it\n"),
        "{text}"
    );
    let j = json(&shm(&["check", "--json", &old, "--expect", bad.arg()]));
    assert_eq!(j["status"], "unexpected_layout", "{j}");
    assert_eq!(j["exit_code"], 4, "{j}");

    // A file that is not an export is a usage error.
    let out = shm(&["check", &old, "--expect", "/nonexistent/layout.json"]);
    assert_code(&out, 64);
}
