//! Items the derive's generated code refers to. Not public API: names and signatures may change
//! in any release.

pub use crate::layout::{Field, Kind, Layout};
pub use crate::shared_state::SharedState;
pub use core;

/// Implemented only by types that may implement [`SharedState`]: primitives, arrays, the helper
/// types and structs that derive it.
#[diagnostic::on_unimplemented(
    message = "`SharedState` cannot be implemented by hand for `{Self}`",
    label = "hand-written `SharedState` impl",
    note = "add `#[derive(SharedState)]` to the struct: only the derive proves that a type is safe to share between processes"
)]
pub trait Sealed {}

/// `Padding<N>` stands for `N` bytes of implicit padding; only `Padding<0>` is [`NoPadding`].
pub struct Padding<const BYTES: usize>;

/// Proof that a struct has no implicit padding at one place.
#[diagnostic::on_unimplemented(
    message = "implicit padding: `{Self}` bytes here hold no field",
    label = "followed by implicit padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and leaks memory contents",
    note = "add an explicit field such as `_pad: [u8; N]` here (N = the byte count above), or reorder fields from largest to smallest alignment"
)]
pub trait NoPadding {}

impl NoPadding for Padding<0> {}

/// Fails to compile unless `P` is [`NoPadding`].
pub const fn assert_no_padding<P: NoPadding>() {}

/// Fails to compile unless `T` is [`SharedState`]; the derive calls it with each field's span.
pub const fn assert_field<T: SharedState>() {}
