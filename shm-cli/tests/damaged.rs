//! Damaged segments and foreign files: what `check`, `inspect` and `ls` say, and their exit
//! codes. Damage is done at the offsets docs/segment-format.md gives.

mod common;

use common::*;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

/// Header offsets from docs/segment-format.md.
const SLOT_COUNT: u64 = 36;
const DESCRIPTOR_OFFSET: u64 = 56;
const PUBLISHED: u64 = 128;

fn u64_at(name: &str, offset: u64) -> u64 {
    u64::from_ne_bytes(peek(name, offset, 8).try_into().expect("8 bytes"))
}

/// The check named `check` in `shm check --json` output.
fn check<'a>(j: &'a serde_json::Value, check: &str) -> &'a serde_json::Value {
    j["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == check)
        .unwrap_or_else(|| panic!("no {check:?} check in {j}"))
}

#[test]
fn a_flipped_descriptor_byte_is_damage_check_and_inspect_exit_1() {
    let name = Name::new("flip");
    dead_writer_segment(&name);
    let healthy = shm(&["check", &name]);
    assert_code(&healthy, 0);
    // Flip a bit of the descriptor's first byte, the root's kind tag (3, struct): 0x83 is no
    // kind at all.
    let at = u64_at(&name, DESCRIPTOR_OFFSET);
    let byte = peek(&name, at, 1)[0];
    assert_eq!(byte, 3);
    poke(&name, at, &[byte ^ 0x80]);

    let out = shm(&["check", "--json", &name]);
    assert_code(&out, 1);
    let j = json(&out);
    assert_eq!(j["status"], "damaged");
    assert_eq!(j["exit_code"], 1);
    assert_eq!(check(&j, "magic")["ok"], true);
    assert_eq!(check(&j, "geometry")["ok"], true);
    let d = check(&j, "descriptor");
    assert_eq!(d["ok"], false);
    assert!(
        d["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("does not decode"),
        "{d}"
    );

    let out = shm(&["inspect", &name]);
    assert_code(&out, 1);
    assert!(stderr(&out).starts_with("shm: segment"), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn a_changed_slot_count_fails_the_geometry_check() {
    let name = Name::new("slots");
    dead_writer_segment(&name);
    poke(&name, SLOT_COUNT, &3u32.to_ne_bytes());
    let out = shm(&["check", "--json", &name]);
    assert_code(&out, 1);
    let j = json(&out);
    assert_eq!(check(&j, "slot count")["ok"], true);
    let g = check(&j, "geometry");
    assert_eq!(g["ok"], false);
    assert!(
        g["detail"].as_str().unwrap_or_default().contains("3 slots"),
        "{g}"
    );
    let text = stdout(&shm(&["check", &name]));
    assert!(
        text.lines().any(|l| l.starts_with("FAIL  geometry")),
        "{text}"
    );

    let out = shm(&["inspect", "--json", &name]);
    assert_code(&out, 1);
    assert!(out.stdout.is_empty());

    // ls lists it, as damaged, with the reason.
    let j = json(&shm(&["ls", "--json", "--prefix", &name]));
    assert_eq!(j[0]["name"], *name);
    assert_eq!(j[0]["status"], "damaged");
    assert!(
        j[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("corrupt"),
        "{j}"
    );
}

#[test]
fn a_wrong_published_slot_sequence_fails_the_slot_checks() {
    let name = Name::new("seq");
    dead_writer_segment(&name);
    // Version 1 is published, in slot 1: its sequence must be 4. Make it 6.
    assert_eq!(u64_at(&name, PUBLISHED), 1);
    let header = 256;
    let stride = u64_at(&name, 48);
    poke(&name, header + stride, &6u64.to_ne_bytes());
    let j = json(&shm(&["check", "--json", &name]));
    assert_eq!(check(&j, "published slot")["ok"], false);
    assert_eq!(check(&j, "slot sequences")["ok"], false);
    // An odd sequence in the next slot (version 2's) is a write in progress (or a writer that
    // died in it).
    poke(&name, header + stride, &4u64.to_ne_bytes());
    let slots = u64_at(&name, 32) >> 32; // slot_count, the u32 at 36 (little-endian host)
    poke(&name, header + stride * (2 % slots), &5u64.to_ne_bytes());
    let out = shm(&["check", "--json", &name]);
    assert_code(&out, 0);
    let seqs = check(&json(&out), "slot sequences").clone();
    assert!(
        seqs["detail"].as_str().unwrap_or_default().contains("odd"),
        "{seqs}"
    );
}

#[test]
fn a_field_name_flip_fails_the_hash_check() {
    let name = Name::new("hash");
    dead_writer_segment(&name);
    let start = u64_at(&name, DESCRIPTOR_OFFSET);
    let len = u64_at(&name, 64);
    let descriptor = peek(&name, start, len as usize);
    // The first field's name, "big", follows the struct header.
    let at = descriptor
        .windows(3)
        .position(|w| w == b"big")
        .expect("field name in the descriptor") as u64;
    poke(&name, start + at, b"bug");
    let out = shm(&["check", "--json", &name]);
    assert_code(&out, 1);
    let j = json(&out);
    assert_eq!(check(&j, "descriptor")["ok"], true);
    let h = check(&j, "layout hash");
    assert_eq!(h["ok"], false, "{h}");
    let out = shm(&["inspect", &name]);
    assert_code(&out, 1);
}

#[test]
fn a_foreign_file_is_not_ours_exit_2_and_hidden_from_ls() {
    let name = Name::new("foreign");
    let mut bytes = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(name.path(), &bytes).expect("write a foreign file");
    let out = shm(&["check", &name]);
    assert_code(&out, 2);
    assert!(stdout(&out).contains("FAIL  magic"), "{}", stdout(&out));
    let out = shm(&["inspect", &name]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("is not a segment of this format"),
        "{}",
        stderr(&out)
    );
    let out = shm(&["rm", &name]);
    assert_code(&out, 2);
    assert!(std::path::Path::new(&name.path()).exists());

    let j = json(&shm(&["ls", "--json", "--prefix", &name]));
    assert_eq!(j, serde_json::json!([]));
    let j = json(&shm(&["ls", "--json", "--all", "--prefix", &name]));
    assert_eq!(j[0]["status"], "foreign");

    // A file too small for a header is not ours either.
    std::fs::write(name.path(), b"tiny").expect("write");
    let out = shm(&["check", &name]);
    assert_code(&out, 2);
    let out = shm(&["rm", "--force", &name]);
    assert_code(&out, 0);
}

#[test]
fn a_fifo_in_dev_shm_does_not_hang_check_or_ls() {
    let name = Name::new("fifo");
    let path = std::ffi::CString::new(name.path()).expect("no NUL");
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    let out = shm(&["check", &name]);
    assert_code(&out, 4);
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    let j = json(&shm(&["ls", "--json", "--all", "--prefix", &name]));
    assert_eq!(j, serde_json::json!([]));
}

#[test]
fn invalid_helper_values_are_shown_as_invalid_not_a_crash() {
    use shm_core::SharedState;
    let name = Name::new("invalid");
    dead_writer_segment(&name);
    // Version 1 is published, in slot 1; its payload starts 64 bytes into the slot.
    let stride = u64_at(&name, 48);
    let payload = 256 + stride + 64;
    let field = |n: &str| {
        Sample::LAYOUT
            .fields()
            .iter()
            .find(|f| f.name == n)
            .map(|f| f.offset as u64)
            .expect("field")
    };
    poke(&name, payload + field("label"), &200u32.to_ne_bytes());
    poke(&name, payload + field("armed"), &[7]);
    poke(&name, payload + field("readings"), &9u64.to_ne_bytes());
    let out = shm(&["inspect", "--json", &name]);
    assert_code(&out, 0);
    let v = &json(&out)["value"];
    assert_eq!(
        v["label"]["invalid"],
        "stored length 200 exceeds the capacity of 12"
    );
    assert_eq!(
        v["armed"]["invalid"],
        "boolean byte is 7, expected 0 (false) or 1 (true)"
    );
    assert_eq!(
        v["readings"]["invalid"],
        "stored length 9 exceeds the capacity of 4"
    );
    assert_eq!(v["tick"], 1);

    // Not UTF-8.
    poke(&name, payload + field("label"), &2u32.to_ne_bytes());
    poke(&name, payload + field("label") + 4, &[0xff, 0xfe]);
    let out = shm(&["inspect", &name]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("invalid(string bytes are not utf-8 (valid up to byte 0))"),
        "{text}"
    );
    assert!(
        text.contains("invalid(boolean byte is 7, expected 0 (false) or 1 (true))"),
        "{text}"
    );
}
