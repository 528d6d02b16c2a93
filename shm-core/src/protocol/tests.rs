//! The protocol on real atomics: the bulk copy path and the portable word path give the same
//! bytes, for every payload length around the bulk threshold.

use super::copy::BULK_MIN;
use super::{complete, read_slot, write_slot, Word};
use crate::payload::{FromBytes, ToBytes};
use core::sync::atomic::{AtomicU64, Ordering};

/// An atomic word that keeps the portable copy of [`Word`] (word by word), as loom's does.
struct Portable(AtomicU64);

impl Word for Portable {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order)
    }
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        self.0.swap(value, order)
    }
    fn fence(order: Ordering) {
        core::sync::atomic::fence(order)
    }
}

/// Writes `value` into a slot of `W` words and reads it back through the byte sink and source.
fn round_trip<W: Word>(make: impl Fn() -> W, value: &[u8]) -> Vec<u8> {
    let words = value.len().div_ceil(8);
    let seq = make();
    let slot: Vec<W> = (0..words + 1).map(|_| make()).collect();
    // SAFETY: `value` is `value.len()` readable bytes, borrowed for the call.
    let mut source = unsafe { FromBytes::new(value.as_ptr(), value.len()) };
    write_slot(&seq, &slot[..words], 7, &mut source);
    assert_eq!(
        slot[words].load(Ordering::Relaxed),
        0,
        "wrote past the payload"
    );
    let mut out = vec![0xeeu8; value.len() + 8];
    // SAFETY: `out` has `value.len() + 8` writable bytes, borrowed for the call.
    let mut sink = unsafe { ToBytes::new(out.as_mut_ptr(), value.len()) };
    assert_eq!(
        read_slot(&seq, &slot[..words], Some(complete(7)), &mut sink),
        Some(complete(7))
    );
    assert!(
        out[value.len()..].iter().all(|&b| b == 0xee),
        "read past the payload"
    );
    out.truncate(value.len());
    out
}

#[test]
fn bulk_and_portable_paths_copy_the_same_bytes() {
    for len in (1..=BULK_MIN * 2 + 9).chain([4096, 4099, 65536, 65541]) {
        let value: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
        let bulk = round_trip(|| AtomicU64::new(0), &value);
        let portable = round_trip(|| Portable(AtomicU64::new(0)), &value);
        assert_eq!(bulk, value, "bulk path, {len} bytes");
        assert_eq!(portable, value, "portable path, {len} bytes");
    }
}
