//! The untyped stream writer: messages sent as bytes reach typed readers, numbers skipped with
//! `send_numbered` are exact losses for readers, and a stream created after message `n` tells
//! nobody about the numbers before it.

mod common;

use common::Name;
use shm_core::{Error, LayoutBuf, Options, SharedState};
use std::time::Duration;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Sample {
    seq: u64,
    value: f64,
}

fn bytes(s: &Sample) -> Vec<u8> {
    let mut out = s.seq.to_ne_bytes().to_vec();
    out.extend_from_slice(&s.value.to_ne_bytes());
    out
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn raw_messages_reach_typed_readers_with_the_numbers_given() {
    let name = Name::new("rawsw");
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let mut tx = Options::new()
        .create_raw_stream(&name, &layout, 8, 100)
        .unwrap();
    assert_eq!(tx.sent(), 100);
    // Subscribed before the first message: not told about messages 1..=100.
    let mut rx = Sample::subscribe(&name).unwrap();
    let mut oldest = Sample::subscribe_from_oldest(&name).unwrap();
    assert_eq!(rx.try_recv().unwrap(), None);

    tx.send(&bytes(&Sample {
        seq: 101,
        value: 1.0,
    }));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().seq, 101);
    // Three numbers skipped: three messages lost, exactly.
    assert!(tx.send_numbered(
        105,
        &bytes(&Sample {
            seq: 105,
            value: 5.0
        })
    ));
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(Error::Lagged { missed: 3 })
    ));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().seq, 105);
    // Going back is refused and sends nothing.
    assert!(!tx.send_numbered(105, &bytes(&Sample { seq: 0, value: 0.0 })));
    assert!(!tx.send_numbered(7, &bytes(&Sample { seq: 0, value: 0.0 })));
    assert_eq!(tx.sent(), 105);
    assert_eq!(rx.try_recv().unwrap(), None);
    // A from-oldest subscriber from before the first message starts at the oldest number the
    // ring could hold (93): it is told those 8 numbers were lost, then sees 101, the gap, 105.
    assert!(matches!(
        oldest.recv_timeout(WAIT),
        Err(Error::Lagged { missed: 8 })
    ));
    assert_eq!(oldest.recv_timeout(WAIT).unwrap().seq, 101);
    assert!(matches!(
        oldest.recv_timeout(WAIT),
        Err(Error::Lagged { missed: 3 })
    ));
    assert_eq!(oldest.recv_timeout(WAIT).unwrap().seq, 105);

    // A takeover continues the numbering with a new epoch; the lease is exclusive.
    assert!(matches!(
        Options::new().open_raw_stream_writer(&name, &layout),
        Err(Error::WriterBusy { .. })
    ));
    drop(tx);
    let mut tx = Options::new()
        .open_raw_stream_writer(&name, &layout)
        .unwrap();
    assert_eq!(
        (tx.sent(), tx.info().writer().epoch(), tx.created()),
        (105, 2, false)
    );
    tx.send(&bytes(&Sample {
        seq: 106,
        value: 6.0,
    }));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().seq, 106);
}

#[test]
fn a_mirror_stream_writer_records_the_epoch_it_repeats_never_below_its_predecessors() {
    let name = Name::new("rawsw-epoch");
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let mut tx = Options::new()
        .create_raw_stream(&name, &layout, 4, 0)
        .unwrap();
    let mut rx = Sample::subscribe(&name).unwrap();
    let raw = shm_core::RawStreamReader::subscribe(&name).unwrap();
    assert!(!tx.set_epoch(0));
    assert!(tx.set_epoch(3));
    assert_eq!(rx.info().writer().epoch(), 3);
    assert_eq!(raw.writer_epoch(), 3);
    assert!(!tx.set_epoch(2));
    assert!(!tx.set_epoch(u64::MAX));
    drop(tx);
    let mut tx = Options::new()
        .open_raw_stream_writer(&name, &layout)
        .unwrap();
    assert_eq!(rx.info().writer().epoch(), 4);
    assert_eq!(raw.writer_epoch(), 4);
    assert!(!tx.set_epoch(2));
    assert!(tx.set_epoch(3));
    assert_eq!(rx.info().writer().epoch(), 3);
    tx.send(&bytes(&Sample { seq: 1, value: 1.0 }));
    assert_eq!(rx.recv_timeout(WAIT).unwrap().seq, 1);
}

#[test]
fn raw_stream_writers_check_the_layout() {
    let name = Name::new("rawsw-layout");
    let layout = LayoutBuf::from(Sample::LAYOUT);
    let _tx = Options::new()
        .create_raw_stream(&name, &layout, 4, 0)
        .unwrap();
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    struct Other {
        seq: u64,
        other: f64,
    }
    assert!(matches!(
        Options::new().open_raw_stream_writer(&name, &LayoutBuf::from(Other::LAYOUT)),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(matches!(
        Options::new().create_raw_stream(&Name::new("rawsw-cap"), &layout, 0, 0),
        Err(Error::InvalidLayout { .. })
    ));
}
