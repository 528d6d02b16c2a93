//! What to emit next to the errors when the input is refused.
//!
//! Emitting the impl anyway (with an empty layout) keeps the user's uses of the type, such as
//! `T::LAYOUT_HASH` or `T::create(..)`, from adding "trait not implemented" errors on top of the
//! real one. The crate does not compile either way, so the empty layout is never used.

use crate::ast::Input;
use proc_macro2::TokenStream;
use quote::quote;

/// The stub impl for a refused input, or nothing when no impl could be written (generics).
pub fn expand(input: &Input) -> TokenStream {
    if !input.original.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = input.ident;
    // The supertraits are where clauses, so that a refused field that is not `Copy`, `Send` or
    // `Sync` (a `String`, a pointer, a `Cell`) does not add errors about those traits to the
    // one that names the field; `for<'__shm>` keeps the compiler from rejecting a clause it can
    // already see is false.
    let allows = crate::expand::allows();
    quote! {
        #allows
        const _: () = {
            #[automatically_derived]
            impl ::shm_core::__private::Sealed for #ident {}
            // SAFETY: never compiled into a program: this impl is only emitted together with a
            // `compile_error!`, so that the real error is not buried under cascading ones.
            #[automatically_derived]
            unsafe impl ::shm_core::__private::SharedState for #ident
            where
                for<'__shm> #ident: ::shm_core::__private::core::marker::Copy
                    + ::shm_core::__private::core::marker::Send
                    + ::shm_core::__private::core::marker::Sync,
            {
                const LAYOUT: &'static ::shm_core::__private::Layout =
                    &::shm_core::__private::UNCHECKED_LAYOUT;
            }
        };
    }
}
