use super::ValueError;
use crate::__private::Sealed;
use crate::layout::{Kind, Layout};
use crate::SharedState;
use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A boolean stored as one byte: `0` is false, `1` is true, every other byte is invalid.
///
/// `bool` cannot live in shared memory: a peer may write a byte other than 0 or 1, and reading
/// such a byte as `bool` is undefined behaviour. `ShmBool` stores the raw byte, and
/// [`get`](Self::get) reports other bytes as [`ValueError::InvalidBool`] rather than guessing:
/// a corrupted flag is a fault to surface, not a value to read as "true".
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(transparent)]
pub struct ShmBool(u8);

impl ShmBool {
    /// False.
    pub const FALSE: ShmBool = ShmBool(0);
    /// True.
    pub const TRUE: ShmBool = ShmBool(1);

    /// Stores `value`.
    pub const fn new(value: bool) -> Self {
        ShmBool(value as u8)
    }

    /// The boolean, or [`ValueError::InvalidBool`] when the byte is neither 0 nor 1.
    pub const fn get(self) -> Result<bool, ValueError> {
        match self.0 {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(ValueError::InvalidBool(b)),
        }
    }

    /// Replaces the value with `value`.
    pub fn set(&mut self, value: bool) {
        self.0 = value as u8;
    }

    /// The raw byte as stored.
    pub const fn to_byte(self) -> u8 {
        self.0
    }

    /// A `ShmBool` holding `byte` as is, valid or not (for tests and tools).
    pub const fn from_byte(byte: u8) -> Self {
        ShmBool(byte)
    }
}

impl From<bool> for ShmBool {
    fn from(value: bool) -> Self {
        ShmBool::new(value)
    }
}

impl TryFrom<ShmBool> for bool {
    type Error = ValueError;
    fn try_from(value: ShmBool) -> Result<bool, ValueError> {
        value.get()
    }
}

impl fmt::Debug for ShmBool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Ok(b) => fmt::Debug::fmt(&b, f),
            Err(_) => write!(f, "ShmBool(invalid {:#04x})", self.0),
        }
    }
}

impl Sealed for ShmBool {}

// SAFETY: `ShmBool` is `repr(transparent)` over `u8`: one byte, no padding, every byte value is
// a valid `ShmBool` (validity is checked by `get`, not by the type), no pointers. zerocopy's
// derives above check the first two.
unsafe impl SharedState for ShmBool {
    const LAYOUT: &'static Layout = &Layout {
        size: 1,
        align: 1,
        kind: Kind::Bool,
    };
}
