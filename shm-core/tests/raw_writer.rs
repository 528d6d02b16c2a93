//! The untyped writer: a program that has a type's exported layout but not the Rust type
//! creates and writes segments that typed readers accept, and takes over typed ones.
#![allow(missing_docs)]

mod common;

use common::Name;
use shm_core::{Error, LayoutBuf, Options, SharedState};
use zerocopy::IntoBytes;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Sample {
    pub seq: u64,
    pub values: [f32; 4],
}

fn bytes(s: &Sample) -> Vec<u8> {
    let mut out = s.seq.as_bytes().to_vec();
    out.extend_from_slice(s.values.as_bytes());
    out
}

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        values: [seq as f32, 1.0, 2.0, 3.0],
    }
}

#[test]
fn a_segment_created_from_a_layout_is_read_by_the_typed_reader() {
    let name = Name::new("rawwriter");
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let mut w = Options::new()
        .create_raw(&name, &layout, &bytes(&sample(0)))
        .unwrap();
    assert!(w.created());
    assert_eq!(w.layout(), &layout);
    let r = Sample::open(&name).unwrap();
    assert_eq!(r.read(), sample(0));
    for seq in 1..=50 {
        w.write(&bytes(&sample(seq)));
        assert_eq!(r.read(), sample(seq));
        assert_eq!(r.version(), seq);
    }
    let mut current = vec![0u8; w.payload_size()];
    w.get(&mut current).unwrap();
    assert_eq!(current, bytes(&sample(50)));
    assert_eq!(w.reader().unwrap().layout(), &layout);
}

#[test]
fn an_untyped_writer_takes_over_a_typed_segment_and_checks_its_layout() {
    let name = Name::new("rawtakeover");
    let typed = Sample::create(&name, &sample(7)).unwrap();
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let busy = Options::new().open_raw_writer(&name, &layout).unwrap_err();
    assert!(matches!(busy, Error::WriterBusy { .. }), "{busy}");
    drop(typed);
    let mut w = Options::new().open_raw_writer(&name, &layout).unwrap();
    assert_eq!(w.info().writer().epoch(), 2);
    let mut current = vec![0u8; w.payload_size()];
    w.get(&mut current).unwrap();
    assert_eq!(current, bytes(&sample(7)));
    w.write(&bytes(&sample(8)));
    assert_eq!(Sample::open(&name).unwrap().read(), sample(8));
    drop(w);
    // Another layout is refused, naming the field.
    let other = LayoutBuf::from(<[u64; 3]>::LAYOUT);
    let e = Options::new().open_raw_writer(&name, &other).unwrap_err();
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e}");
}

#[test]
fn a_mirror_writer_records_the_epoch_it_repeats_never_below_its_predecessors() {
    let name = Name::new("rawepoch");
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let mut w = Options::new()
        .create_raw(&name, &layout, &bytes(&sample(0)))
        .unwrap();
    let r = Sample::open(&name).unwrap();
    // The header's epoch as a load, beside `info()` (which also asks about the lease).
    let raw = shm_core::RawReader::open(&name).unwrap();
    // A creator: 1 at least.
    assert!(!w.set_epoch(0));
    assert!(w.set_epoch(5));
    assert_eq!(r.info().writer().epoch(), 5);
    assert_eq!(raw.writer_epoch(), 5);
    // Never below what this writer recorded, never the maximum.
    assert!(!w.set_epoch(4));
    assert!(!w.set_epoch(u64::MAX));
    assert!(w.set_epoch(7));
    assert_eq!(r.info().writer().epoch(), 7);
    drop(w);
    // A takeover records one more, then may record its predecessor's epoch again (the same
    // remote writer carried on), not a lower one.
    let mut w = Options::new().open_raw_writer(&name, &layout).unwrap();
    assert_eq!(r.info().writer().epoch(), 8);
    assert_eq!(raw.writer_epoch(), 8);
    assert!(!w.set_epoch(6));
    assert_eq!(r.info().writer().epoch(), 8);
    assert!(w.set_epoch(7));
    assert_eq!(r.info().writer().epoch(), 7);
    assert_eq!(raw.writer_epoch(), 7);
    w.write(&bytes(&sample(1)));
    assert_eq!(r.read(), sample(1));
    drop(w);
    // The next takeover counts on from the recorded epoch.
    let w = Options::new().open_raw_writer(&name, &layout).unwrap();
    assert_eq!(w.info().writer().epoch(), 8);
}

#[test]
fn layouts_that_cannot_describe_a_payload_are_refused() {
    let name = Name::new("rawbad");
    let good = LayoutBuf::from(Sample::LAYOUT);
    let mut zero = good.clone();
    zero.size = 0;
    let mut odd_align = good.clone();
    odd_align.align = 3;
    for (layout, initial) in [
        (zero, vec![]),
        (odd_align, bytes(&sample(0))),
        (good, vec![0u8; 3]),
    ] {
        let e = Options::new()
            .create_raw(&name, &layout, &initial)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidLayout { .. }), "{e}");
    }
    assert!(matches!(
        shm_core::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[derive(SharedState, Clone, Copy)]
#[repr(C, align(16))]
pub struct Everything {
    pub wide: u128,
    pub name: shm_core::FixedStr<13>,
    pub flag: shm_core::ShmBool,
    pub _pad: [u8; 6],
    pub items: shm_core::FixedVec<Sample, 3>,
    pub grid: [[u16; 3]; 2],
    pub _tail: [u8; 12],
}

/// Every layout the derive makes is consistent; hand-built ones that could not describe real
/// bytes are refused, before a segment that every opener would refuse is created.
#[test]
fn layout_consistency_checks_refuse_what_no_type_could_be() {
    use shm_core::layout::{FieldBuf, KindBuf};
    for l in [
        Sample::LAYOUT,
        Everything::LAYOUT,
        <[Everything; 2]>::LAYOUT,
        u128::LAYOUT,
    ] {
        assert_eq!(LayoutBuf::from(l).check(), Ok(()), "{l}");
    }
    let good = LayoutBuf::from(Sample::LAYOUT);
    let mut overlapping = good.clone();
    if let KindBuf::Struct { fields, .. } = &mut overlapping.kind {
        fields[1].offset = 4;
    }
    let mut outside = good.clone();
    if let KindBuf::Struct { fields, .. } = &mut outside.kind {
        fields.push(FieldBuf {
            name: "extra".to_string(),
            offset: 24,
            layout: LayoutBuf::from(u64::LAYOUT),
            alias: None,
            deprecated: false,
        });
    }
    let mut short_array = LayoutBuf::from(<[u32; 4]>::LAYOUT);
    short_array.size = 12;
    // Nested deeper than any opener decodes (32 levels).
    let mut deep = LayoutBuf::from(u8::LAYOUT);
    for _ in 0..40 {
        deep = LayoutBuf {
            size: 1,
            align: 1,
            kind: KindBuf::Array {
                len: 1,
                element: Box::new(deep),
            },
        };
    }
    let name = Name::new("rawcheck");
    for bad in [overlapping, outside, short_array, deep] {
        let e = Options::new()
            .create_raw(&name, &bad, &vec![0u8; bad.size as usize])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidLayout { .. }), "{e}");
    }
    assert!(matches!(
        shm_core::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

/// A forged header whose hash is the opener's over a payload of another size: the stored layout
/// gives it away, so the opener's type never meets slots it does not fit.
#[test]
fn a_forged_hash_over_another_payload_size_is_refused_before_any_read() {
    let name = Name::new("rawforge");
    drop(<[u64; 2]>::create(&name, &[1, 2]).unwrap());
    common::poke(&name, common::Field::LayoutHash, <[u64; 4]>::LAYOUT_HASH);
    let e = <[u64; 4]>::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    let e = <[u64; 4]>::open_writer(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}
