use super::ValueError;
use crate::__private::Sealed;
use crate::layout::{Kind, Layout};
use crate::SharedState;
use core::fmt;

/// Up to `N` values of `T`, stored inline: an 8-byte native-endian `u64` length followed by
/// `[T; N]`.
///
/// `Vec` owns heap memory no other process can see; `FixedVec` holds its elements in the value.
/// `T` must be [`SharedState`] with an alignment of at most 8 (checked at compile time), so the
/// type has no padding. Building one zeroes unused elements. Reading validates: a stored length
/// over `N` (a hostile or buggy peer) gives [`ValueError::LengthOverCapacity`], never undefined
/// behaviour or a panic.
///
/// ```
/// use shm_core::FixedVec;
/// let mut v = FixedVec::<f64, 4>::new();
/// v.push(1.5).unwrap();
/// assert_eq!(v.as_slice(), Ok(&[1.5][..]));
/// assert!(FixedVec::<u8, 2>::from_slice(&[1, 2, 3]).is_err());
/// ```
#[derive(Clone, Copy)]
#[repr(C)]
pub struct FixedVec<T, const N: usize> {
    len: [u8; 8],
    items: [T; N],
}

impl<T: SharedState, const N: usize> FixedVec<T, N> {
    /// The capacity in elements.
    pub const CAPACITY: usize = N;

    const ALIGN_AT_MOST_8: () = assert!(
        core::mem::align_of::<T>() <= 8,
        "FixedVec elements must have an alignment of at most 8, or the length field leaves padding"
    );

    /// The empty vector; unused elements are zero bytes.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::ALIGN_AT_MOST_8;
        // SAFETY: `FixedVec<T, N>` is a `[u8; 8]` and a `[T; N]` with `T: SharedState`, and every
        // bit pattern of a `SharedState` type is a valid value, so all-zero bytes are one.
        unsafe { core::mem::zeroed() }
    }

    /// Copies `items`, or fails with [`ValueError::CapacityExceeded`] if there are more than `N`.
    pub fn from_slice(items: &[T]) -> Result<Self, ValueError> {
        if items.len() > N {
            return Err(ValueError::CapacityExceeded {
                len: items.len(),
                capacity: N,
            });
        }
        let mut out = Self::new();
        out.items[..items.len()].copy_from_slice(items);
        out.len = (items.len() as u64).to_ne_bytes();
        Ok(out)
    }

    /// Appends `value`, or gives it back when the vector is full (or its length is invalid).
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let len = self.raw_len();
        if len >= N as u64 {
            return Err(value);
        }
        self.items[len as usize] = value;
        self.len = (len + 1).to_ne_bytes();
        Ok(())
    }

    /// Empties the vector and zeroes its elements.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The stored length, unchecked: it may exceed `N` if a peer wrote garbage.
    pub fn raw_len(&self) -> u64 {
        u64::from_ne_bytes(self.len)
    }

    /// The elements, or [`ValueError::LengthOverCapacity`] if the stored length exceeds `N`.
    pub fn as_slice(&self) -> Result<&[T], ValueError> {
        let len = self.raw_len();
        usize::try_from(len)
            .ok()
            .and_then(|l| self.items.get(..l))
            .ok_or(ValueError::LengthOverCapacity { len, capacity: N })
    }

    /// The elements, mutably, or an error as for [`as_slice`](Self::as_slice).
    pub fn as_mut_slice(&mut self) -> Result<&mut [T], ValueError> {
        let len = self.raw_len();
        usize::try_from(len)
            .ok()
            .and_then(|l| self.items.get_mut(..l))
            .ok_or(ValueError::LengthOverCapacity { len, capacity: N })
    }

    /// A value with exactly these raw parts, valid or not (for tests and tools).
    pub fn from_raw_parts(len: u64, items: [T; N]) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::ALIGN_AT_MOST_8;
        FixedVec {
            len: len.to_ne_bytes(),
            items,
        }
    }
}

impl<T: SharedState, const N: usize> Default for FixedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Equal when the logical contents are equal; elements past the length are ignored.
impl<T: SharedState + PartialEq, const N: usize> PartialEq for FixedVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_slice(), other.as_slice()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.len == other.len && self.items == other.items,
        }
    }
}

impl<T: SharedState + fmt::Debug, const N: usize> fmt::Debug for FixedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_slice() {
            Ok(s) => f.debug_list().entries(s).finish(),
            Err(e) => write!(f, "FixedVec<_, {N}>(invalid: {e})"),
        }
    }
}

impl<T: SharedState, const N: usize> Sealed for FixedVec<T, N> {}

// SAFETY: `repr(C)` of `[u8; 8]` then `[T; N]`. With `align_of::<T>() <= 8` (a compile-time
// assertion evaluated below, in `LAYOUT`) the array starts at offset 8 without padding, and the
// total `8 + N * size_of::<T>()` is a multiple of the alignment, so there is no trailing padding
// either. `T: SharedState` makes every bit pattern of the elements valid; the length is
// validated by the accessors. No pointers.
unsafe impl<T: SharedState, const N: usize> SharedState for FixedVec<T, N> {
    const LAYOUT: &'static Layout = &Layout {
        size: {
            #[allow(clippy::let_unit_value)]
            let () = Self::ALIGN_AT_MOST_8;
            core::mem::size_of::<Self>()
        },
        align: core::mem::align_of::<Self>(),
        kind: Kind::FixedVec {
            capacity: N,
            element: T::LAYOUT,
        },
    };
}
