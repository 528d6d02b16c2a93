//! `shm ls`, `inspect` and `check` against a segment a live writer process publishes,
//! their JSON parsed and checked field by field; error messages and exit codes.

mod common;

use common::*;
use serde_json::{json, Value};
use shm_core::SharedState;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

fn hash_hex() -> String {
    format!("{:#018x}", Sample::LAYOUT_HASH)
}

#[test]
fn ls_says_which_segments_are_mirrors_and_of_what() {
    let base = Name::new("mirror");
    let mirror = Name(format!("{}@hostx", &*base));
    let _writer = LiveWriter::start(&mirror, 0);
    let _local = LiveWriter::start(&base, 0);
    let out = shm(&["ls", "--json", "--prefix", &base]);
    assert_code(&out, 0);
    let list = json(&out);
    let entries = list.as_array().expect("an array");
    assert_eq!(entries.len(), 2, "{list}");
    let of = |name: &str| {
        entries
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["mirror_of"].clone())
    };
    assert_eq!(of(&base), Some(Value::Null));
    assert_eq!(
        of(&mirror),
        Some(json!(format!("hostx/{}", base.trim_start_matches('/'))))
    );
    let text = stdout(&shm(&["ls", "--prefix", &base]));
    assert!(
        text.lines().next().unwrap().ends_with("MIRROR OF"),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with(&*mirror)).unwrap();
    assert!(
        line.ends_with(&format!("hostx/{}", base.trim_start_matches('/'))),
        "{text}"
    );
}

#[test]
fn ls_json_lists_the_segment_with_its_header_facts() {
    let name = Name::new("ls");
    let writer = LiveWriter::start(&name, 0);
    let out = shm(&["ls", "--json", "--prefix", &name]);
    assert_code(&out, 0);
    let list = json(&out);
    let entries = list.as_array().expect("an array");
    assert_eq!(entries.len(), 1, "{list}");
    let e = &entries[0];
    assert_eq!(e["name"], *name);
    assert_eq!(e["status"], "ok");
    assert_eq!(e["reason"], Value::Null);
    assert_eq!(e["type"], "Sample");
    assert_eq!(e["layout_hash"], hash_hex());
    assert_eq!(e["payload_size"], std::mem::size_of::<Sample>());
    assert_eq!(e["slots"], 2);
    assert_eq!(e["version"], 1);
    assert_eq!(e["writer_pid"], writer.pid());
    assert_eq!(e["writer_alive"], true);
    assert_eq!(e["creator_pid"], writer.pid());
    assert_eq!(e["epoch"], 1);

    // The human table shows the same segment on one aligned line.
    let out = shm(&["ls", "--prefix", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with(&*name))
        .unwrap_or_else(|| panic!("no line for the segment:\n{text}"));
    assert!(line.contains("Sample") && line.contains(&format!("{} alive", writer.pid())));
    assert!(text.starts_with("NAME"), "{text}");
}

#[test]
fn inspect_json_decodes_every_field_of_the_current_value() {
    let name = Name::new("inspect");
    let writer = LiveWriter::start(&name, 0);
    // Without the leading slash, too.
    let out = shm(&["inspect", "--json", "--raw", name.trim_start_matches('/')]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["name"], *name);
    assert_eq!(j["type"], "Sample");
    assert_eq!(j["layout_hash"], hash_hex());
    assert_eq!(j["writer_pid"], writer.pid());
    assert_eq!(j["writer_alive"], true);
    assert_eq!(j["value_version"], 1);
    assert_eq!(j["payload_align"], std::mem::align_of::<Sample>());

    let expected = Sample::at(1);
    let v = &j["value"];
    assert_eq!(v["big"], (u128::MAX - 1).to_string());
    assert_eq!(v["tick"], 1);
    assert_eq!(v["pose"], json!({"x": 0.5, "y": -1.25}));
    assert_eq!(v["temps"], json!([1.0, 2.0, 3.0]));
    assert_eq!(v["label"], "tick-1");
    assert_eq!(v["readings"], json!([10, 11]));
    assert_eq!(v["ratio"], 0.5);
    assert_eq!(v["level"], -1);
    assert_eq!(v["armed"], true);
    assert_eq!(v["_pad"], json!(vec![0; 15]));
    assert_eq!(expected.readings.as_slice().map(<[u32]>::len), Ok(2));

    // The layout table agrees with the Rust type's own layout.
    let rows = j["layout"].as_array().expect("layout rows");
    for f in Sample::LAYOUT.fields() {
        let row = rows
            .iter()
            .find(|r| r["path"] == f.name)
            .unwrap_or_else(|| panic!("no row for {}", f.name));
        assert_eq!(row["offset"], f.offset, "{}", f.name);
        assert_eq!(row["size"], f.layout.size, "{}", f.name);
    }
    let pose_y = rows.iter().find(|r| r["path"] == "pose.y").expect("pose.y");
    assert_eq!(pose_y["type"], "f64");
    assert_eq!(pose_y["offset"], std::mem::offset_of!(Sample, pose) + 8);
    let label = rows.iter().find(|r| r["path"] == "label").expect("label");
    assert_eq!(label["type"], "FixedStr<12>");

    // --raw: the payload bytes, which hold the value.
    let raw = j["raw"].as_str().expect("raw hex");
    assert_eq!(raw.len(), std::mem::size_of::<Sample>() * 2);
    let tick_at = std::mem::offset_of!(Sample, tick) * 2;
    assert_eq!(&raw[tick_at..tick_at + 16], "0100000000000000");

    // The human form shows the values by path.
    let out = shm(&["inspect", "--raw", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for needle in [
        "pose.x",
        "= 0.5",
        "label",
        "\"tick-1\"",
        "readings",
        "[10, 11]",
        "armed",
        "= true",
        "FIELD",
        "OFFSET",
        "PAYLOAD BYTES",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn check_reports_every_check_ok_on_a_healthy_segment() {
    let name = Name::new("check-ok");
    let _writer = LiveWriter::start(&name, 1);
    let out = shm(&["check", "--json", &name]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["status"], "healthy");
    assert_eq!(j["exit_code"], 0);
    let checks = j["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    for expected in [
        "magic",
        "format version",
        "state",
        "slot count",
        "geometry",
        "file size",
        "descriptor",
        "layout hash",
        "payload size",
        "payload align",
        "published slot",
        "slot sequences",
        "writer",
    ] {
        assert!(
            names.contains(&expected),
            "no {expected:?} check in {names:?}"
        );
    }
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    let text = stdout(&shm(&["check", &name]));
    assert!(
        text.lines()
            .all(|l| l.starts_with("ok") || l.contains("healthy")),
        "{text}"
    );
}

#[test]
fn check_finds_no_damage_while_a_writer_publishes_as_fast_as_it_can() {
    for slots in [1, 2, 3] {
        let name = Name::new("check-busy");
        let _writer = LiveWriter::fast(&name, slots);
        for _ in 0..20 {
            let out = shm(&["check", "--json", &name]);
            assert_code(&out, 0);
            let j = json(&out);
            assert_eq!(j["status"], "healthy", "{slots} slots: {j}");
        }
        // And the value read belongs to its version, however fast they change (with one slot,
        // a read may see the value being published next: docs/segment-format.md, "Reading").
        let j = json(&shm(&["inspect", "--json", &name]));
        let v = j["value_version"].as_u64().expect("version");
        let tick = j["value"]["tick"].as_u64().expect("tick");
        if slots == 1 {
            assert!(tick == v || tick == v + 1, "version {v}, tick {tick}");
        } else {
            assert_eq!(tick, v, "{slots} slots");
        }
    }
}

#[test]
fn a_missing_segment_is_one_line_on_stderr_and_exit_code_2() {
    let name = Name::new("missing");
    for cmd in ["inspect", "check", "watch", "export"] {
        let out = shm(&[cmd, &name]);
        assert_code(&out, 2);
        assert_eq!(
            stderr(&out),
            format!("shm: no segment named \"{}\"\n", &*name),
            "{cmd}"
        );
        assert!(out.stdout.is_empty() || cmd == "check");
    }
    let out = shm(&["rm", &name]);
    assert_code(&out, 2);
    let out = shm(&["rm", "--force", &name]);
    assert_code(&out, 0);
    let out = shm(&["inspect", "/a/b"]);
    assert_code(&out, 64);
    let out = shm(&["inspect"]);
    assert_code(&out, 64);
}

#[test]
fn rm_removes_named_segments() {
    let a = Name::new("rm");
    let b = Name::new("rm");
    dead_writer_segment(&a);
    dead_writer_segment(&b);
    let out = shm(&["rm", &a, b.trim_start_matches('/')]);
    assert_code(&out, 0);
    assert!(!std::path::Path::new(&a.path()).exists());
    assert!(!std::path::Path::new(&b.path()).exists());
    assert_eq!(stdout(&out), format!("removed {}\nremoved {}\n", &*a, &*b));
}

#[test]
fn completions_and_help_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = shm(&["completions", shell]);
        assert_code(&out, 0);
        let text = stdout(&out);
        assert!(
            text.contains("inspect") && text.contains("dry-run"),
            "{shell}"
        );
    }
    let out = shm(&["watch", "--help"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("--count"));
    assert!(stdout(&out).contains("skipped"));
}
