//! The descriptor stored in segments: it round-trips, hashes like the compiled-in layout, and
//! decoding hostile bytes gives an error, never a panic.

mod common;

use common::Rng;
use shm_core::LayoutBuf;
use shm_core::{FixedStr, FixedVec, SharedState, ShmBool};

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Joint {
    angle: f32,
    torque: f32,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C, align(16))]
#[shm(name = "Arm")]
struct Arm {
    joints: [Joint; 6],
    grid: [[u16; 3]; 2],
    name: FixedStr<12>,
    history: FixedVec<Joint, 2>,
    ok: ShmBool,
    _pad: [u8; 27],
}

fn check<T: SharedState>() {
    let d = LayoutBuf::from(T::LAYOUT);
    assert_eq!(d.layout_hash(), T::LAYOUT_HASH, "{}", T::LAYOUT);
    let bytes = d.encode();
    assert_eq!(LayoutBuf::decode(&bytes).as_ref(), Ok(&d));
    // Every strict prefix is refused, and so is trailing data.
    for cut in 0..bytes.len() {
        assert!(LayoutBuf::decode(&bytes[..cut]).is_err(), "prefix {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(LayoutBuf::decode(&longer).is_err());
}

#[test]
fn round_trips_and_hashes_like_the_layout() {
    check::<u8>();
    check::<i128>();
    check::<f64>();
    check::<[f32; 7]>();
    check::<[[u64; 2]; 3]>();
    check::<FixedStr<5>>();
    check::<FixedVec<u32, 4>>();
    check::<ShmBool>();
    check::<Joint>();
    check::<Arm>();
    check::<[Arm; 2]>();
}

#[test]
fn hostile_bytes_never_panic() {
    let good = LayoutBuf::from(Arm::LAYOUT).encode();
    let mut rng = Rng(7);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let mut b = good.clone();
        // Flip a few bytes, or splice in a large count.
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            let i = rng.below(b.len() as u64 - 4) as usize;
            b[i..i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        if LayoutBuf::decode(&b).is_ok() {
            decoded += 1;
        }
    }
    // Some mutations (a changed size or offset) still decode: they are well-formed descriptors
    // of a different type, and the hash comparison refuses them.
    assert!(decoded > 0);
    for len in 0..64 {
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = LayoutBuf::decode(&junk);
    }
    // Deep nesting is refused, not a stack overflow.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.push(2u8);
        deep.extend_from_slice(&[0; 16]);
        deep.extend_from_slice(&1u64.to_le_bytes());
    }
    assert!(LayoutBuf::decode(&deep).is_err());
}
