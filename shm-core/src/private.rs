//! Items the derive's generated code refers to. Not public API: names and signatures may change
//! in any release.

pub use crate::layout::{Field, Kind, Layout};
pub use crate::shared_state::SharedState;
pub use core;

/// Implemented only by types that may implement [`SharedState`]: primitives, arrays, the helper
/// types and structs that derive it.
#[diagnostic::on_unimplemented(
    message = "`SharedState` cannot be implemented by hand for `{Self}`; remove this impl and add `#[derive(SharedState)]` to the struct",
    label = "hand-written `SharedState` impl",
    note = "only the derive proves that a type is safe to share between processes: `#[repr(C)]`, no padding, no pointers, every bit pattern valid"
)]
pub trait Sealed {}

/// Proof that `Self` has no implicit padding after one of its fields (`BYTES` must be 0).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has {BYTES} bytes of implicit padding after this field; add `_pad: [u8; {BYTES}]` after it",
    label = "followed by {BYTES} bytes of padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "or order the fields from largest to smallest alignment, which often leaves no gap"
)]
pub trait NoPaddingAfterField<const BYTES: usize> {}

impl<T: ?Sized> NoPaddingAfterField<0> for T {}

/// Proof that `Self` has no implicit padding after its last field (`BYTES` must be 0).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has {BYTES} bytes of implicit padding at its end; add `_pad: [u8; {BYTES}]` as the last field",
    label = "{BYTES} bytes of trailing padding",
    note = "padding bytes are uninitialized: copying them to another process is undefined behaviour and can leak this process's memory",
    note = "a struct's size is a multiple of its alignment (raised by `align(N)`), so fields that end short of it leave a gap"
)]
pub trait NoTrailingPadding<const BYTES: usize> {}

impl<T: ?Sized> NoTrailingPadding<0> for T {}

/// Fails to compile unless `T` has no padding after the field the call is spanned on.
pub const fn assert_no_padding_after_field<
    T: ?Sized + NoPaddingAfterField<BYTES>,
    const BYTES: usize,
>() {
}

/// Fails to compile unless `T` has no trailing padding.
pub const fn assert_no_trailing_padding<
    T: ?Sized + NoTrailingPadding<BYTES>,
    const BYTES: usize,
>() {
}

/// The size of the type a field projection `|s| &s.field` points to. The derive measures
/// fields this way rather than by repeating their type tokens, which a macro could expand
/// differently the second time.
pub const fn field_size<S, T>(_: fn(&S) -> &T) -> usize {
    core::mem::size_of::<T>()
}
