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
    assert_eq!(w.epoch(), 2);
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
