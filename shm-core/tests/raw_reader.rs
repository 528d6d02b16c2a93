//! The untyped reader: any segment opens without its Rust type, describes itself by the layout
//! it stores, and reads the same consistent bytes a typed reader does.
#![allow(missing_docs)]

mod common;

use common::{poke, poke_bytes, Field, Name};
use shm_core::layout::KindBuf;
use shm_core::{Error, FixedStr, LayoutBuf, Options, RawReader, SharedState, ShmBool};
use std::time::Duration;
use zerocopy::IntoBytes;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose")]
pub struct Pose {
    pub tick: u64,
    pub pos: [f64; 3],
    pub label: FixedStr<11>,
    pub armed: ShmBool,
}

fn pose(tick: u64) -> Pose {
    Pose {
        tick,
        pos: [1.0, 2.0, tick as f64],
        label: FixedStr::try_from("base").unwrap(),
        armed: ShmBool::TRUE,
    }
}

/// The payload bytes of a value, as the segment holds them.
fn bytes_of(p: &Pose) -> Vec<u8> {
    let mut out = p.tick.as_bytes().to_vec();
    out.extend_from_slice(p.pos.as_bytes());
    out.extend_from_slice(IntoBytes::as_bytes(&p.label));
    out.extend_from_slice(IntoBytes::as_bytes(&p.armed));
    out
}

#[test]
fn an_untyped_reader_sees_the_stored_layout_and_header_facts() {
    let name = Name::new("raw-facts");
    let mut w = Options::new().slots(3).create(&name, &pose(0)).unwrap();
    w.write(&pose(1));
    let r = RawReader::open(&name).unwrap();
    assert_eq!(r.layout(), &LayoutBuf::from(Pose::LAYOUT));
    assert_eq!(r.layout().struct_name(), Some("Pose"));
    assert_eq!(r.info().layout_hash(), Pose::LAYOUT_HASH);
    assert_eq!(r.layout().layout_hash(), Pose::LAYOUT_HASH);
    assert_eq!(r.payload_size(), core::mem::size_of::<Pose>());
    assert_eq!(r.info().slots(), 3);
    assert_eq!(r.version(), 1);
    assert_eq!(r.info().writer().pid(), std::process::id());
    assert_eq!(r.info().creator_pid(), std::process::id());
    assert_eq!(r.info().writer().epoch(), 1);
    assert!(r.info().writer().alive());
    let names: Vec<_> = r
        .layout()
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["tick", "pos", "label", "armed"]);
    assert!(matches!(
        r.layout().fields()[2].layout.kind,
        KindBuf::FixedStr { capacity: 11 }
    ));
    // A typed reader of the same segment stores the same layout.
    assert_eq!(Pose::open(&name).unwrap().stored_layout(), r.layout());
}

#[test]
fn untyped_reads_are_the_bytes_of_the_typed_value() {
    let name = Name::new("raw-bytes");
    let mut w = Pose::create(&name, &pose(0)).unwrap();
    let r = RawReader::open(&name).unwrap();
    let mut buf = vec![0u8; r.payload_size()];
    for tick in 1..=100 {
        w.write(&pose(tick));
        let version = r.read_timeout(&mut buf, Duration::from_secs(1)).unwrap();
        assert_eq!(version, tick);
        assert_eq!(buf, bytes_of(&pose(tick)));
        assert_eq!(r.try_read(&mut buf).unwrap(), tick);
    }
    let waited = r.wait_for_update(100, Duration::from_millis(10));
    assert!(matches!(waited, Err(Error::Timeout)), "{waited:?}");
}

#[test]
#[should_panic(expected = "the buffer must be exactly the payload size")]
fn a_buffer_of_the_wrong_size_is_a_programming_error() {
    let name = Name::new("raw-len");
    let _w = Pose::create(&name, &pose(0)).unwrap();
    let r = RawReader::open(&name).unwrap();
    let mut short = vec![0u8; r.payload_size() - 1];
    let _ = r.try_read(&mut short);
}

/// The stored layout is only trusted when its own hash is the stored hash: tools decode
/// segments by it, so a damaged description must be refused, not believed.
#[test]
fn a_stored_layout_that_does_not_match_the_stored_hash_is_corrupt() {
    let name = Name::new("raw-desc");
    drop(Pose::create(&name, &pose(0)).unwrap());
    // The descriptor follows the header and the slots (docs/segment-format.md).
    let slots = RawReader::open(&name).unwrap().info().slots() as u64;
    let stride = (64 + core::mem::size_of::<Pose>().div_ceil(8) * 8).next_multiple_of(64);
    let g_desc = 256 + slots * stride as u64;
    // Rename a field in the stored layout: turn the `t` of `tick` into `T`. The stored hash no
    // longer matches the description.
    let encoded = LayoutBuf::from(Pose::LAYOUT).encode();
    let at = encoded.windows(4).position(|w| w == b"tick").unwrap() as u64;
    poke_bytes(&name, g_desc + at, b"T");
    for e in [
        RawReader::open(&name).unwrap_err(),
        Pose::open(&name).unwrap_err(),
    ] {
        assert!(
            matches!(e, Error::Corrupt { what } if what.contains("stored layout")),
            "{e}"
        );
    }
}

#[test]
fn an_untyped_reader_refuses_a_damaged_header() {
    let name = Name::new("raw-header");
    drop(Pose::create(&name, &pose(0)).unwrap());
    poke(&name, Field::PayloadAlign, 3);
    let e = RawReader::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}
