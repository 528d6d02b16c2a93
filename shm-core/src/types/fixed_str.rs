use super::ValueError;
use crate::__private::Sealed;
use crate::layout::{Kind, Layout};
use crate::SharedState;
use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A UTF-8 string of at most `N` bytes, stored inline: a 4-byte native-endian `u32` length
/// followed by `N` bytes.
///
/// `String` owns heap memory no other process can see; `FixedStr` holds its bytes in the value.
/// Its alignment is 1 and it has no padding, whatever `N` is. Building one zeroes the unused
/// tail, so equal strings have equal bytes. Reading validates: a length over `N` or bytes that
/// are not UTF-8 (a hostile or buggy peer) give a [`ValueError`], never undefined behaviour.
///
/// ```
/// use shm_core::FixedStr;
/// let s = FixedStr::<16>::try_from("ready").unwrap();
/// assert_eq!(s.as_str(), Ok("ready"));
/// assert_eq!("ready".parse::<FixedStr<16>>(), Ok(s));
/// assert!(FixedStr::<4>::try_from("too long").is_err());
/// ```
#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct FixedStr<const N: usize> {
    len: [u8; 4],
    bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    /// The capacity in bytes.
    pub const CAPACITY: usize = N;

    const FITS_U32: () = assert!(
        N <= u32::MAX as usize,
        "FixedStr capacity must fit in a u32"
    );

    /// The empty string.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS_U32;
        FixedStr {
            len: [0; 4],
            bytes: [0; N],
        }
    }

    /// Copies `s`, or fails with [`ValueError::CapacityExceeded`] if it is longer than `N` bytes.
    /// Reached through `TryFrom<&str>` and `FromStr` (`"ready".parse::<FixedStr<16>>()`).
    fn copy_of(s: &str) -> Result<Self, ValueError> {
        if s.len() > N {
            return Err(ValueError::CapacityExceeded {
                len: s.len(),
                capacity: N,
            });
        }
        let mut out = Self::new();
        out.bytes[..s.len()].copy_from_slice(s.as_bytes());
        out.len = (s.len() as u32).to_ne_bytes();
        Ok(out)
    }

    /// Copies the longest prefix of `s` that fits in `N` bytes and ends on a character boundary.
    pub fn from_str_truncate(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        match Self::copy_of(&s[..end]) {
            Ok(v) => v,
            Err(_) => unreachable!("prefix of at most N bytes fits"),
        }
    }

    /// The stored length, unchecked: it may exceed `N` if a peer wrote garbage.
    pub fn raw_len(&self) -> u32 {
        u32::from_ne_bytes(self.len)
    }

    /// The string's bytes, or [`ValueError::LengthOverCapacity`] if the stored length exceeds `N`.
    pub fn as_bytes(&self) -> Result<&[u8], ValueError> {
        let len = self.raw_len();
        self.bytes
            .get(..len as usize)
            .ok_or(ValueError::LengthOverCapacity {
                len: len.into(),
                capacity: N,
            })
    }

    /// The string, or an error if the stored length exceeds `N` or the bytes are not UTF-8.
    pub fn as_str(&self) -> Result<&str, ValueError> {
        core::str::from_utf8(self.as_bytes()?).map_err(|e| ValueError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
        })
    }

    /// Whether the string is empty (a stored length of zero).
    pub fn is_empty(&self) -> bool {
        self.raw_len() == 0
    }

    /// A value with exactly these raw parts, valid or not (for tests and tools).
    pub const fn from_raw_parts(len: u32, bytes: [u8; N]) -> Self {
        FixedStr {
            len: len.to_ne_bytes(),
            bytes,
        }
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Copies the string, or fails with [`ValueError::CapacityExceeded`] if it is longer than `N`
/// bytes.
impl<const N: usize> TryFrom<&str> for FixedStr<N> {
    type Error = ValueError;
    fn try_from(s: &str) -> Result<Self, ValueError> {
        Self::copy_of(s)
    }
}

/// Parses by copying, the same as `FixedStr::try_from(s)`.
impl<const N: usize> core::str::FromStr for FixedStr<N> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Self::copy_of(s)
    }
}

/// Equal when the logical contents are equal; bytes past the length are ignored.
impl<const N: usize> PartialEq for FixedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_bytes(), other.as_bytes()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.len == other.len && self.bytes == other.bytes,
        }
    }
}

impl<const N: usize> Eq for FixedStr<N> {}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(e) => write!(f, "FixedStr<{N}>(invalid: {e})"),
        }
    }
}

impl<const N: usize> Sealed for FixedStr<N> {}

// SAFETY: `repr(C)` of `[u8; 4]` and `[u8; N]`: alignment 1, so no padding; every byte pattern is
// a valid value (the length and UTF-8 are checked by the accessors, not assumed); no pointers.
// zerocopy's derives above check padding and bit validity.
unsafe impl<const N: usize> SharedState for FixedStr<N> {
    const LAYOUT: &'static Layout = &Layout {
        size: core::mem::size_of::<Self>(),
        align: core::mem::align_of::<Self>(),
        kind: Kind::FixedStr { capacity: N },
    };
}
