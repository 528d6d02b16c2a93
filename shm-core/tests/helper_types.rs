//! The helper types' validation: building values checks capacities, and reading bytes another
//! process wrote gives a value or a `ValueError`, never a panic or undefined behaviour.

use core::mem::{align_of, size_of};
use shm_core::{FixedStr, FixedVec, ShmBool, ValueError};
use zerocopy::{FromBytes, IntoBytes};

mod common;
use common::Rng;

// ---------------------------------------------------------------------------------------------
// FixedStr

#[test]
fn fixed_str_has_a_u32_length_then_the_bytes() {
    assert_eq!(size_of::<FixedStr<0>>(), 4);
    assert_eq!(size_of::<FixedStr<16>>(), 20);
    assert_eq!(size_of::<FixedStr<13>>(), 17);
    assert_eq!(align_of::<FixedStr<13>>(), 1);
    assert_eq!(FixedStr::<13>::CAPACITY, 13);

    // Building zeroes the unused tail, so equal strings have equal bytes.
    let s = FixedStr::<6>::try_from("ab").unwrap();
    let mut expected = 2u32.to_ne_bytes().to_vec();
    expected.extend(b"ab\0\0\0\0");
    assert_eq!(IntoBytes::as_bytes(&s), &expected[..]);
    assert_eq!(s.raw_len(), 2);
}

#[test]
fn fixed_str_invalid_utf8_is_an_error() {
    let s = FixedStr::<4>::from_raw_parts(2, [0xff, 0xfe, 0, 0]);
    assert_eq!(
        s.as_bytes(),
        Ok(&[0xff, 0xfe][..]),
        "the bytes are readable"
    );
    assert_eq!(s.as_str(), Err(ValueError::InvalidUtf8 { valid_up_to: 0 }));

    let s = FixedStr::<8>::from_raw_parts(4, *b"ab\xffcdefg");
    assert_eq!(s.as_str(), Err(ValueError::InvalidUtf8 { valid_up_to: 2 }));

    // A multi-byte character cut by the length: 'é' is 0xc3 0xa9.
    let s = FixedStr::<4>::from_raw_parts(2, *b"a\xc3\xa9\0");
    assert_eq!(s.as_str(), Err(ValueError::InvalidUtf8 { valid_up_to: 1 }));
    let s = FixedStr::<4>::from_raw_parts(3, *b"a\xc3\xa9\0");
    assert_eq!(s.as_str(), Ok("aé"));

    // Surrogates encoded in UTF-8 and overlong encodings are not UTF-8 either.
    let s = FixedStr::<3>::from_raw_parts(3, [0xed, 0xa0, 0x80]);
    assert_eq!(s.as_str(), Err(ValueError::InvalidUtf8 { valid_up_to: 0 }));
    let s = FixedStr::<2>::from_raw_parts(2, [0xc0, 0xaf]);
    assert_eq!(s.as_str(), Err(ValueError::InvalidUtf8 { valid_up_to: 0 }));

    // Invalid bytes past the length do not matter.
    let s = FixedStr::<4>::from_raw_parts(1, *b"a\xff\xff\xff");
    assert_eq!(s.as_str(), Ok("a"));
}

#[test]
fn fixed_str_length_over_capacity_is_an_error() {
    for len in [5, 6, 255, 1 << 16, u32::MAX - 1, u32::MAX] {
        let s = FixedStr::<4>::from_raw_parts(len, *b"abcd");
        let expected = ValueError::LengthOverCapacity {
            len: len.into(),
            capacity: 4,
        };
        assert_eq!(s.raw_len(), len);
        assert_eq!(s.as_bytes(), Err(expected));
        assert_eq!(s.as_str(), Err(expected));
        assert!(!s.is_empty());
    }
    let s = FixedStr::<0>::from_raw_parts(1, []);
    assert_eq!(
        s.as_str(),
        Err(ValueError::LengthOverCapacity {
            len: 1,
            capacity: 0
        })
    );
}

#[test]
fn fixed_str_exact_capacity_fits_and_one_more_does_not() {
    let s = FixedStr::<4>::try_from("abcd").unwrap();
    assert_eq!(s.as_str(), Ok("abcd"));
    assert_eq!(s.raw_len(), 4);
    let s = FixedStr::<4>::from_raw_parts(4, *b"wxyz");
    assert_eq!(s.as_str(), Ok("wxyz"));

    let too_long = ValueError::CapacityExceeded {
        len: 5,
        capacity: 4,
    };
    assert_eq!(FixedStr::<4>::try_from("abcde"), Err(too_long));
    assert_eq!("abcde".parse::<FixedStr<4>>(), Err(too_long));
    assert_eq!("abcd".parse::<FixedStr<4>>().unwrap().as_str(), Ok("abcd"));
    // Capacity is in bytes, not characters: "éé" is four bytes, "ééé" six.
    assert_eq!(FixedStr::<4>::try_from("éé").unwrap().as_str(), Ok("éé"));
    assert_eq!(
        FixedStr::<4>::try_from("ééé"),
        Err(ValueError::CapacityExceeded {
            len: 6,
            capacity: 4
        })
    );
}

#[test]
fn fixed_str_truncates_on_a_char_boundary() {
    // 'é' is 2 bytes, '日' 3, '🦀' 4.
    assert_eq!(
        FixedStr::<5>::from_str_truncate("héllo").as_str(),
        Ok("héll")
    );
    assert_eq!(FixedStr::<2>::from_str_truncate("héllo").as_str(), Ok("h"));
    assert_eq!(FixedStr::<3>::from_str_truncate("héllo").as_str(), Ok("hé"));
    assert_eq!(
        FixedStr::<8>::from_str_truncate("日本語").as_str(),
        Ok("日本")
    );
    assert_eq!(
        FixedStr::<9>::from_str_truncate("日本語").as_str(),
        Ok("日本語")
    );
    assert_eq!(FixedStr::<3>::from_str_truncate("🦀").as_str(), Ok(""));
    assert_eq!(FixedStr::<7>::from_str_truncate("🦀🦀").as_str(), Ok("🦀"));
    assert_eq!(FixedStr::<0>::from_str_truncate("abc").as_str(), Ok(""));
    assert_eq!(
        FixedStr::<16>::from_str_truncate("fits").as_str(),
        Ok("fits")
    );
    // A combining sequence may be cut between its characters (each is a valid char).
    assert_eq!(
        FixedStr::<1>::from_str_truncate("e\u{301}").as_str(),
        Ok("e")
    );

    // Every capacity, every prefix: always valid UTF-8, the longest prefix that fits.
    let text = "aé日🦀b\u{301}";
    for_each_capacity(text);
}

fn for_each_capacity(text: &str) {
    fn check<const N: usize>(text: &str) {
        let s = FixedStr::<N>::from_str_truncate(text);
        let got = s.as_str().unwrap();
        assert!(text.starts_with(got));
        assert!(got.len() <= N);
        let next = text[got.len()..].chars().next();
        assert!(
            next.is_none_or(|c| got.len() + c.len_utf8() > N),
            "{got:?} is not the longest prefix of {text:?} that fits in {N}"
        );
    }
    check::<0>(text);
    check::<1>(text);
    check::<2>(text);
    check::<3>(text);
    check::<4>(text);
    check::<5>(text);
    check::<6>(text);
    check::<7>(text);
    check::<8>(text);
    check::<9>(text);
    check::<10>(text);
    check::<11>(text);
    check::<12>(text);
    check::<13>(text);
    check::<14>(text);
}

#[test]
fn fixed_str_new_is_empty() {
    let empty = FixedStr::<8>::new();
    assert!(empty.is_empty());
    assert_eq!(empty.as_str(), Ok(""));
    assert_eq!(empty.as_bytes(), Ok(&[][..]));
    assert_eq!(empty, FixedStr::default());
    assert_eq!(empty, FixedStr::try_from("").unwrap());
    assert_eq!(IntoBytes::as_bytes(&empty), &[0; 12]);
    assert!(!FixedStr::<8>::try_from("x").unwrap().is_empty());

    let zero = FixedStr::<0>::try_from("").unwrap();
    assert_eq!(zero.as_str(), Ok(""));
    assert_eq!(
        FixedStr::<0>::try_from("x"),
        Err(ValueError::CapacityExceeded {
            len: 1,
            capacity: 0
        })
    );
}

#[test]
fn fixed_str_equality_ignores_bytes_past_the_length() {
    let a = FixedStr::<4>::from_raw_parts(2, *b"abXY");
    let b = FixedStr::<4>::from_raw_parts(2, *b"abZW");
    assert_eq!(a, b);
    assert_eq!(a, FixedStr::try_from("ab").unwrap());
    assert_ne!(a, FixedStr::try_from("abX").unwrap());
    assert_ne!(a, FixedStr::try_from("ba").unwrap());
    assert_eq!(FixedStr::<4>::from_raw_parts(0, *b"junk"), FixedStr::new());

    // Invalid lengths: equal only when every byte is.
    let bad = FixedStr::<4>::from_raw_parts(9, *b"abcd");
    assert_eq!(bad, FixedStr::<4>::from_raw_parts(9, *b"abcd"));
    assert_ne!(bad, FixedStr::<4>::from_raw_parts(9, *b"abce"));
    assert_ne!(bad, FixedStr::<4>::from_raw_parts(10, *b"abcd"));
    assert_ne!(bad, FixedStr::<4>::try_from("abcd").unwrap());
}

#[test]
fn fixed_str_debug_shows_the_string_or_the_error() {
    assert_eq!(
        format!("{:?}", FixedStr::<8>::try_from("a\"b").unwrap()),
        r#""a\"b""#
    );
    assert_eq!(
        format!("{:?}", FixedStr::<4>::from_raw_parts(5, *b"abcd")),
        "FixedStr<4>(invalid: stored length 5 exceeds the capacity of 4)"
    );
    assert_eq!(
        format!("{:?}", FixedStr::<4>::from_raw_parts(2, *b"a\xff\0\0")),
        "FixedStr<4>(invalid: string bytes are not utf-8 (valid up to byte 1))"
    );
}

// ---------------------------------------------------------------------------------------------
// FixedVec

#[test]
fn fixed_vec_has_a_u64_length_then_the_elements() {
    assert_eq!(size_of::<FixedVec<u8, 3>>(), 11);
    assert_eq!(size_of::<FixedVec<u64, 3>>(), 32);
    assert_eq!(size_of::<FixedVec<u32, 0>>(), 8);
    assert_eq!(align_of::<FixedVec<u64, 3>>(), 8);
    assert_eq!(FixedVec::<u64, 3>::CAPACITY, 3);
}

#[test]
fn fixed_vec_length_over_capacity_is_an_error() {
    for len in [5, 6, 1 << 32, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        let mut v = FixedVec::<u32, 4>::from_raw_parts(len, [1, 2, 3, 4]);
        let expected = ValueError::LengthOverCapacity { len, capacity: 4 };
        assert_eq!(v.raw_len(), len);
        assert_eq!(v.as_slice(), Err(expected));
        assert_eq!(v.as_mut_slice(), Err(expected));
        // Pushing onto a corrupt vector hands the value back and changes nothing.
        assert_eq!(v.push(9), Err(9));
        assert_eq!(v.raw_len(), len);
    }
    let v = FixedVec::<u32, 0>::from_raw_parts(u64::MAX, []);
    assert_eq!(
        v.as_slice(),
        Err(ValueError::LengthOverCapacity {
            len: u64::MAX,
            capacity: 0
        })
    );
    // Exactly at capacity is fine.
    let v = FixedVec::<u32, 4>::from_raw_parts(4, [1, 2, 3, 4]);
    assert_eq!(v.as_slice(), Ok(&[1, 2, 3, 4][..]));
}

#[test]
fn fixed_vec_push_until_full() {
    let mut v = FixedVec::<u16, 3>::new();
    assert_eq!(v.as_slice(), Ok(&[][..]));
    assert_eq!(v.push(10), Ok(()));
    assert_eq!(v.push(20), Ok(()));
    assert_eq!(v.push(30), Ok(()));
    assert_eq!(v.push(40), Err(40), "full: the value comes back");
    assert_eq!(v.raw_len(), 3);
    assert_eq!(v.as_slice(), Ok(&[10, 20, 30][..]));

    let mut none = FixedVec::<u16, 0>::new();
    assert_eq!(none.push(1), Err(1));
    assert_eq!(none.as_slice(), Ok(&[][..]));
}

#[test]
fn fixed_vec_from_slice_checks_the_capacity() {
    assert_eq!(
        FixedVec::<u8, 2>::from_slice(&[1, 2, 3]),
        Err(ValueError::CapacityExceeded {
            len: 3,
            capacity: 2
        })
    );
    let v = FixedVec::<u8, 2>::from_slice(&[1, 2]).unwrap();
    assert_eq!(v.as_slice(), Ok(&[1, 2][..]));
    let v = FixedVec::<u8, 2>::from_slice(&[]).unwrap();
    assert_eq!(v.as_slice(), Ok(&[][..]));
    assert_eq!(
        FixedVec::<u8, 0>::from_slice(&[0]),
        Err(ValueError::CapacityExceeded {
            len: 1,
            capacity: 0
        })
    );
}

#[test]
fn fixed_vec_clear_and_mutate() {
    let mut v = FixedVec::<i32, 4>::from_slice(&[1, 2, 3]).unwrap();
    v.as_mut_slice().unwrap()[1] = -2;
    assert_eq!(v.as_slice(), Ok(&[1, -2, 3][..]));
    v.clear();
    assert_eq!(v.raw_len(), 0);
    assert_eq!(v.as_slice(), Ok(&[][..]));
    assert_eq!(v, FixedVec::new());
    // A corrupt vector is usable again after `clear`.
    let mut bad = FixedVec::<i32, 4>::from_raw_parts(u64::MAX, [7; 4]);
    bad.clear();
    assert_eq!(bad.push(5), Ok(()));
    assert_eq!(bad.as_slice(), Ok(&[5][..]));
}

#[test]
fn fixed_vec_equality_ignores_elements_past_the_length() {
    let a = FixedVec::<u8, 4>::from_raw_parts(2, [1, 2, 9, 9]);
    assert_eq!(a, FixedVec::from_raw_parts(2, [1, 2, 7, 7]));
    assert_eq!(a, FixedVec::from_slice(&[1, 2]).unwrap());
    assert_ne!(a, FixedVec::from_slice(&[1, 2, 9]).unwrap());
    let bad = FixedVec::<u8, 4>::from_raw_parts(5, [1, 2, 3, 4]);
    assert_eq!(bad, FixedVec::from_raw_parts(5, [1, 2, 3, 4]));
    assert_ne!(bad, FixedVec::from_raw_parts(5, [1, 2, 3, 5]));
    assert_ne!(bad, FixedVec::from_raw_parts(4, [1, 2, 3, 4]));
}

#[test]
fn fixed_vec_debug_shows_the_elements_or_the_error() {
    let v = FixedVec::<u8, 4>::from_slice(&[1, 2]).unwrap();
    assert_eq!(format!("{v:?}"), "[1, 2]");
    let bad = FixedVec::<u8, 4>::from_raw_parts(u64::MAX, [0; 4]);
    assert_eq!(
        format!("{bad:?}"),
        "FixedVec<_, 4>(invalid: stored length 18446744073709551615 exceeds the capacity of 4)"
    );
}

// ---------------------------------------------------------------------------------------------
// ShmBool

#[test]
fn shm_bool_zero_is_false_and_one_is_true() {
    assert_eq!(size_of::<ShmBool>(), 1);
    assert_eq!(ShmBool::from_byte(0).get(), Ok(false));
    assert_eq!(ShmBool::from_byte(1).get(), Ok(true));
    assert_eq!(ShmBool::FALSE.to_byte(), 0);
    assert_eq!(ShmBool::TRUE.to_byte(), 1);
    assert_eq!(ShmBool::new(true), ShmBool::TRUE);
    assert_eq!(ShmBool::from(false), ShmBool::FALSE);
    assert_eq!(ShmBool::default(), ShmBool::FALSE);
    assert_eq!(bool::try_from(ShmBool::TRUE), Ok(true));
    let mut b = ShmBool::from_byte(200);
    b.set(true);
    assert_eq!(b.to_byte(), 1);
    b.set(false);
    assert_eq!(b.to_byte(), 0);
    assert_eq!(format!("{:?}", ShmBool::TRUE), "true");
    assert_eq!(format!("{:?}", ShmBool::FALSE), "false");
}

/// Documented meaning: only 0 and 1 are booleans; any other byte is invalid (an error), not
/// "truthy", and is not equal to `TRUE`.
#[test]
fn shm_bool_every_other_byte_is_invalid() {
    for byte in 2..=u8::MAX {
        let b = ShmBool::from_byte(byte);
        assert_eq!(b.get(), Err(ValueError::InvalidBool(byte)));
        assert_eq!(bool::try_from(b), Err(ValueError::InvalidBool(byte)));
        assert_eq!(b.to_byte(), byte, "the raw byte is kept as written");
        assert_ne!(b, ShmBool::TRUE);
        assert_ne!(b, ShmBool::FALSE);
        assert_eq!(
            ValueError::InvalidBool(byte).to_string(),
            format!("boolean byte is {byte}, expected 0 (false) or 1 (true)")
        );
    }
}

#[test]
fn shm_bool_debug_shows_invalid_bytes() {
    assert_eq!(
        format!("{:?}", ShmBool::from_byte(2)),
        "ShmBool(invalid 0x02)"
    );
    assert_eq!(
        format!("{:?}", ShmBool::from_byte(0x80)),
        "ShmBool(invalid 0x80)"
    );
    assert_eq!(
        format!("{:?}", ShmBool::from_byte(255)),
        "ShmBool(invalid 0xff)"
    );
}

#[test]
fn shm_bool_from_every_byte_through_zerocopy() {
    for byte in 0..=u8::MAX {
        let b = ShmBool::read_from_bytes(&[byte]).unwrap();
        assert_eq!(b.to_byte(), byte);
        assert_eq!(IntoBytes::as_bytes(&b), &[byte]);
        let expected = match byte {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(ValueError::InvalidBool(other)),
        };
        assert_eq!(b.get(), expected);
    }
    assert!(ShmBool::read_from_bytes(&[]).is_err());
    assert!(ShmBool::read_from_bytes(&[0, 0]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hostile bytes: whatever another process wrote, reading gives a value or an error.

const ROUNDS: usize = 20_000;

/// Text fragments to write as string bytes, so that valid UTF-8 (and UTF-8 cut mid-character)
/// is as common as garbage.
const FRAGMENTS: &[&str] = &["a", "Z", " ", "é", "日", "🦀", "\0", "\u{301}", "ok"];

/// A length for a field of capacity `cap`: often small, sometimes at or just past the
/// capacity, sometimes extreme, sometimes anything.
fn hostile_len(rng: &mut Rng, cap: u64, max: u64) -> u64 {
    match rng.below(6) {
        0 | 1 => rng.below(cap + 1),
        2 => cap + rng.below(3),
        3 => [0, max, max - 1, max / 2 + 1][rng.below(4) as usize],
        _ => rng.next() & max,
    }
}

#[derive(Default)]
struct Seen {
    ok: usize,
    over_capacity: usize,
    bad_utf8: usize,
}

fn check_str<const N: usize>(s: &FixedStr<N>, seen: &mut Seen) {
    let raw = s.raw_len();
    let over = ValueError::LengthOverCapacity {
        len: raw.into(),
        capacity: N,
    };
    assert_eq!(s.is_empty(), raw == 0);
    match s.as_bytes() {
        Ok(bytes) => assert_eq!(bytes.len() as u64, u64::from(raw)),
        Err(e) => {
            assert!(raw as usize > N);
            assert_eq!(e, over);
        }
    }
    match s.as_str() {
        Ok(text) => {
            seen.ok += 1;
            assert_eq!(Ok(text.as_bytes()), s.as_bytes());
            // A valid string survives a round trip through the safe constructor.
            assert_eq!(FixedStr::<N>::try_from(text).as_ref(), Ok(s));
        }
        Err(ValueError::InvalidUtf8 { valid_up_to }) => {
            seen.bad_utf8 += 1;
            let bytes = s.as_bytes().unwrap();
            assert!(core::str::from_utf8(bytes).is_err());
            assert!(core::str::from_utf8(&bytes[..valid_up_to]).is_ok());
        }
        Err(e) => {
            seen.over_capacity += 1;
            assert_eq!(e, over);
        }
    }
    let copy = *s;
    assert!(copy == *s, "equality is reflexive, even for invalid values");
    let _ = format!("{s:?}");
}

fn hostile_str<const N: usize>(seed: u64) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let mut buf = vec![0u8; size_of::<FixedStr<N>>()];
    for _ in 0..ROUNDS {
        rng.fill(&mut buf);
        if rng.below(2) == 0 {
            // Text instead of noise.
            let mut at = 4;
            while at < buf.len() {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len() as u64) as usize].as_bytes();
                let n = f.len().min(buf.len() - at);
                buf[at..at + n].copy_from_slice(&f[..n]);
                at += n;
            }
        }
        if rng.below(4) != 0 {
            let len = hostile_len(&mut rng, N as u64, u32::MAX.into()) as u32;
            buf[..4].copy_from_slice(&len.to_ne_bytes());
        }
        let s = FixedStr::<N>::read_from_bytes(&buf).unwrap();
        check_str(&s, &mut seen);
        // In place, as a reader of a mapping would see it: no copy, the same answers.
        let r = FixedStr::<N>::ref_from_bytes(&buf).unwrap();
        assert_eq!(r.as_str(), s.as_str());
    }
    // Wrong sizes are refused, not read past.
    assert!(FixedStr::<N>::read_from_bytes(&buf[1..]).is_err());
    assert!(FixedStr::<N>::ref_from_bytes(&buf[1..]).is_err());
    seen
}

#[test]
fn hostile_bytes_as_fixed_str() {
    for seen in [
        hostile_str::<0>(0x9e37_79b9_7f4a_7c15),
        hostile_str::<1>(0xdead_beef_cafe_f00d),
        hostile_str::<7>(0x0123_4567_89ab_cdef),
        hostile_str::<16>(0x2545_f491_4f6c_dd1d),
        hostile_str::<64>(0x5851_f42d_4c95_7f2d),
    ] {
        // The generator reaches every outcome, so every branch above ran.
        assert!(seen.ok > 0 && seen.over_capacity > 0);
        assert_eq!(seen.ok + seen.over_capacity + seen.bad_utf8, ROUNDS);
    }
    assert!(hostile_str::<16>(7).bad_utf8 > 0);
}

#[test]
fn hostile_bytes_as_shm_bools() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut buf = [0u8; 64];
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..ROUNDS / 10 {
        rng.fill(&mut buf);
        for b in buf.iter_mut() {
            // Bias towards 0 and 1.
            if rng.below(2) == 0 {
                *b &= 1;
            }
        }
        let bools = <[ShmBool; 64]>::read_from_bytes(&buf).unwrap();
        for (b, &byte) in bools.iter().zip(&buf) {
            match b.get() {
                Ok(v) => {
                    valid += 1;
                    assert_eq!(u8::from(v), byte);
                }
                Err(e) => {
                    invalid += 1;
                    assert_eq!(e, ValueError::InvalidBool(byte));
                    assert!(byte > 1);
                }
            }
            let _ = format!("{b:?}");
        }
    }
    assert!(valid > 0 && invalid > 0);
}

/// Builds a `FixedVec` with a hostile length and hostile elements, and reads it every way.
fn hostile_vec<T, const N: usize>(
    seed: u64,
    element: impl Fn(&mut Rng) -> T,
    check_element: impl Fn(&T),
) -> (usize, usize)
where
    T: shm_core::SharedState + core::fmt::Debug,
{
    let mut rng = Rng(seed);
    let (mut ok, mut over) = (0, 0);
    for _ in 0..ROUNDS {
        let len = hostile_len(&mut rng, N as u64, u64::MAX);
        let items: [T; N] = core::array::from_fn(|_| element(&mut rng));
        let mut v = FixedVec::<T, N>::from_raw_parts(len, items);
        assert_eq!(v.raw_len(), len);
        match v.as_slice() {
            Ok(elements) => {
                ok += 1;
                assert_eq!(elements.len() as u64, len);
                elements.iter().for_each(&check_element);
                assert!(v.as_mut_slice().is_ok());
            }
            Err(e) => {
                over += 1;
                assert!(len > N as u64);
                assert_eq!(e, ValueError::LengthOverCapacity { len, capacity: N });
                assert_eq!(v.as_mut_slice().err(), Some(e));
            }
        }
        let _ = format!("{v:?}");
        let filler = element(&mut rng);
        match v.push(filler) {
            Ok(()) => {
                assert!(len < N as u64);
                assert_eq!(v.raw_len(), len + 1);
            }
            Err(_) => {
                assert!(len >= N as u64);
                assert_eq!(v.raw_len(), len, "a refused push changes nothing");
            }
        }
    }
    (ok, over)
}

#[test]
fn hostile_fixed_vec_lengths_and_elements() {
    let results = [
        hostile_vec::<u32, 8>(0xa076_1d64_78bd_642f, |r| r.next() as u32, |_| {}),
        hostile_vec::<u8, 0>(0xe703_7ed1_a0b4_28db, |r| r.next() as u8, |_| {}),
        hostile_vec::<f64, 3>(0x8ebc_6af0_9c88_c6e3, |r| f64::from_bits(r.next()), |_| {}),
        hostile_vec::<ShmBool, 5>(
            0x5899_65cc_7537_4cc3,
            |r| ShmBool::from_byte(r.next() as u8 & 3),
            |b| {
                let _ = b.get();
            },
        ),
        hostile_vec::<FixedStr<3>, 4>(
            0x1d8e_4e27_c47d_124f,
            |r| {
                let len = r.below(6) as u32;
                let bytes = (r.next() as u32 & 0x00e0_ffff).to_le_bytes();
                FixedStr::from_raw_parts(len, [bytes[0], bytes[1], bytes[2]])
            },
            |s| {
                let mut seen = Seen::default();
                check_str(s, &mut seen);
            },
        ),
        hostile_vec::<[u16; 3], 2>(
            0x9e6c_63d0_676a_9a99,
            |r| {
                let x = r.next();
                [x as u16, (x >> 16) as u16, (x >> 32) as u16]
            },
            |_| {},
        ),
    ];
    for (ok, over) in results {
        assert!(ok > 0 && over > 0, "ok {ok}, over capacity {over}");
    }
}
