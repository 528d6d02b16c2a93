#![warn(missing_docs)]
//! `#[derive(SharedState)]`: compile-time proof that a struct can live in shared memory.
//!
//! Use it through `shm_core`, which re-exports it next to the trait of the same name. The
//! derive checks in two layers: `valid` rejects, by syntax, everything it can recognise
//! (wrong `repr`, enums, generics, pointers, `String`, `bool`, ...) with one spanned error per
//! mistake, all at once; the generated code then makes the compiler prove the rest through
//! traits (each field is `SharedState`, no implicit padding), which sees through type aliases
//! and macros.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;

/// Derives `shm_core::SharedState`; see the documentation of the re-export in `shm_core`.
#[proc_macro_derive(SharedState, attributes(shm))]
pub fn derive_shared_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}
