//! The worked example of `docs/segment-format.md` ("Test vector"): the descriptor bytes and the
//! layout hash printed in the document are the ones the code produces, and the hash is also
//! recomputed here from the documented hash stream, independently of the library.

use shm_core::LayoutBuf as Descriptor;
use shm_core::SharedState;
use std::path::Path;

/// The struct of the test vector.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "Point")]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// The lines of the document's test vector block after `prefix`, joined.
fn from_doc(prefix: &str) -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/segment-format.md"),
    )
    .unwrap();
    let start = doc
        .find("## Test vector")
        .expect("the spec has a test vector");
    let block = &doc[start..];
    let mut out = String::new();
    let mut inside = false;
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix(prefix) {
            inside = true;
            out.push_str(rest.trim());
        } else if inside && line.starts_with("    ") && !line.trim().contains(':') {
            out.push_str(line.trim());
        } else if inside {
            break;
        }
    }
    assert!(!out.is_empty(), "no `{prefix}` in the test vector");
    out.split_whitespace().collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// FNV-1a-64 over the hash stream, built by hand from the spec's description of it.
fn hash_by_hand() -> u64 {
    let mut s: Vec<u8> = Vec::new();
    let u64le = |s: &mut Vec<u8>, v: u64| s.extend_from_slice(&v.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes()); // the encoding version, LAYOUT_ENCODING_VERSION
    s.push(b'L'); // little-endian
    s.push(3); // struct
    u64le(&mut s, 8); // size
    u64le(&mut s, 4); // align
    s.push(1); // has a stable name
    u64le(&mut s, 5);
    s.extend_from_slice(b"Point");
    u64le(&mut s, 2); // field count
    for (name, offset) in [(b"x", 0u64), (b"y", 4)] {
        u64le(&mut s, 1);
        s.extend_from_slice(name);
        u64le(&mut s, offset);
        s.push(1); // primitive
        u64le(&mut s, 4);
        u64le(&mut s, 4);
        s.push(8); // i32
    }
    s.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn descriptor_bytes_in_the_spec_are_the_encoding() {
    let doc = unhex(&from_doc("descriptor:"));
    assert_eq!(doc, Descriptor::from(Point::LAYOUT).encode());
    assert_eq!(
        Descriptor::decode(&doc).unwrap(),
        Descriptor::from(Point::LAYOUT)
    );
}

#[test]
fn hash_in_the_spec_is_the_layout_hash() {
    let doc = u64::from_str_radix(from_doc("hash:").trim_start_matches("0x"), 16).unwrap();
    assert_eq!(doc, Point::LAYOUT_HASH, "{:#018x}", Point::LAYOUT_HASH);
    assert_eq!(hash_by_hand(), Point::LAYOUT_HASH);
}

/// The appendable struct of the second test vector ("Test vector of an appendable type").
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "Point", appendable)]
pub struct Point2 {
    pub x: i32,
    #[shm(alias = "y")]
    pub up: i32,
    #[deprecated]
    #[shm(deprecated)]
    pub z: i32,
}

/// The lines after `prefix` in the first block of the document's section `section`, joined.
fn from_section(section: &str, prefix: &str) -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/segment-format.md"),
    )
    .unwrap();
    let start = doc.find(section).expect("the spec has the section");
    let mut out = String::new();
    let mut inside = false;
    for line in doc[start..].lines() {
        if let Some(rest) = line.strip_prefix(prefix) {
            inside = true;
            out.push_str(rest.trim());
        } else if inside && line.starts_with("    ") && !line.trim().contains(':') {
            out.push_str(line.trim());
        } else if inside {
            break;
        }
    }
    assert!(!out.is_empty(), "no `{prefix}` in {section}");
    out.split_whitespace().collect()
}

/// The hash stream of `Point2`, by hand: kind 7, and no alias or deprecated marker in it.
fn appendable_hash_by_hand() -> u64 {
    let mut s: Vec<u8> = Vec::new();
    let u64le = |s: &mut Vec<u8>, v: u64| s.extend_from_slice(&v.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes());
    s.push(b'L');
    s.push(7); // appendable struct
    u64le(&mut s, 12);
    u64le(&mut s, 4);
    s.push(1);
    u64le(&mut s, 5);
    s.extend_from_slice(b"Point");
    u64le(&mut s, 3);
    for (name, offset) in [(&b"x"[..], 0u64), (b"up", 4), (b"z", 8)] {
        u64le(&mut s, name.len() as u64);
        s.extend_from_slice(name);
        u64le(&mut s, offset);
        s.push(1);
        u64le(&mut s, 4);
        u64le(&mut s, 4);
        s.push(8);
    }
    s.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn the_appendable_test_vector_is_the_encoding_and_the_hash() {
    const SECTION: &str = "## Test vector of an appendable type";
    let bytes = Descriptor::from(Point2::LAYOUT).encode();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        from_section(SECTION, "descriptor:"),
        hex,
        "the spec's descriptor bytes"
    );
    let hash = from_section(SECTION, "hash:");
    assert_eq!(hash, format!("{:#018x}", Point2::LAYOUT_HASH));
    assert_eq!(appendable_hash_by_hand(), Point2::LAYOUT_HASH);
    let decoded = Descriptor::decode(&unhex(&from_section(SECTION, "descriptor:"))).unwrap();
    assert_eq!(decoded.fields()[1].alias.as_deref(), Some("y"));
    assert!(decoded.fields()[2].deprecated);
}
