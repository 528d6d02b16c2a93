//! Fixed-capacity, pointer-free replacements for the types the derive refuses, each with
//! accessors that validate bytes a peer may have written.

mod fixed_str;
mod fixed_vec;
mod shm_bool;

pub use fixed_str::FixedStr;
pub use fixed_vec::FixedVec;
pub use shm_bool::ShmBool;

use core::fmt;

/// Bytes in a helper type that do not form a valid value.
///
/// Another process may write anything into shared memory; the helper types' accessors report
/// such bytes as this error instead of exhibiting undefined behaviour or panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueError {
    /// A stored length is larger than the capacity.
    LengthOverCapacity {
        /// The stored length.
        len: u64,
        /// The capacity.
        capacity: usize,
    },
    /// A value does not fit in the capacity (when building a value).
    CapacityExceeded {
        /// The length that was asked for.
        len: usize,
        /// The capacity.
        capacity: usize,
    },
    /// The bytes of a [`FixedStr`] are not UTF-8.
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// A [`ShmBool`] byte other than 0 or 1.
    InvalidBool(u8),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueError::LengthOverCapacity { len, capacity } => {
                write!(f, "stored length {len} exceeds the capacity of {capacity}")
            }
            ValueError::CapacityExceeded { len, capacity } => {
                write!(f, "length {len} does not fit in the capacity of {capacity}")
            }
            ValueError::InvalidUtf8 { valid_up_to } => {
                write!(
                    f,
                    "string bytes are not utf-8 (valid up to byte {valid_up_to})"
                )
            }
            ValueError::InvalidBool(b) => {
                write!(f, "boolean byte is {b}, expected 0 (false) or 1 (true)")
            }
        }
    }
}

impl std::error::Error for ValueError {}
