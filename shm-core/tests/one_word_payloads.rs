//! Payloads of 8 bytes or less: the writer keeps the latest value in the header's `inline`
//! word, and `Reader::read` loads it instead of copying a slot.

mod common;

use common::{peek, poke, Field, Name};
use shm_core::{Error, Options, SharedState};

#[test]
fn the_inline_word_holds_the_latest_value_zero_extended() {
    let name = Name::new("inline");
    let mut w = u16::create(&name, &0xbeef).unwrap();
    // Creation stores the initial value too (docs/segment-format.md, "Header").
    assert_eq!(peek(&name, Field::Inline), 0xbeef);
    let r = u16::open(&name).unwrap();
    for v in [1u16, 0xffff, 0x1234] {
        w.write(&v);
        assert_eq!(peek(&name, Field::Inline), u64::from(v));
        assert_eq!(r.read(), v);
        let mut into = 0;
        r.read_into(&mut into);
        assert_eq!(into, v);
    }
}

#[test]
fn larger_payloads_leave_the_inline_word_alone() {
    let name = Name::new("inline9");
    let mut w = <[u8; 9]>::create(&name, &[7; 9]).unwrap();
    w.write(&[8; 9]);
    assert_eq!(peek(&name, Field::Inline), 0);
}

/// A writer that dies in the middle of writing a one-slot segment leaves the slot half
/// written: the slot readers then have no value (`try_read` fails), but `read` still has the
/// last complete one, without a retry.
#[test]
fn a_half_written_slot_does_not_stop_a_one_word_read() {
    let name = Name::new("inline-torn");
    let mut w = Options::new().slots(1).create(&name, &5u64).unwrap();
    w.write(&6);
    let published = w.version();
    drop(w);
    // As a writer that died in the middle of writing version `published + 1`.
    poke(&name, Field::Slot0Seq, 2 * (published + 1) + 1);
    let r = u64::open(&name).unwrap();
    assert!(matches!(r.try_read(), Err(Error::WriterDied)));
    assert_eq!(r.read(), 6);
}
