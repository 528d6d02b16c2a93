//! Generates the `SharedState` impl and the compile-time proofs for a checked input.

use crate::ast::Input;
use crate::ctxt::Ctxt;
use crate::{fallback, valid};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::DeriveInput;

/// Checks `node` and expands it, or returns every error found plus a fallback impl.
pub fn derive(node: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let input = Input::from_syn(&mut cx, node);
    valid::check(&mut cx, &input);
    match cx.check() {
        Ok(()) => expand(&input),
        Err(errors) => {
            let mut out = errors.to_compile_error();
            out.extend(fallback::expand(&input));
            out
        }
    }
}

/// Path of the runtime crate's hidden module, as generated code names it.
fn private() -> TokenStream {
    quote!(::shm_core::__private)
}

fn expand(input: &Input) -> TokenStream {
    let private = private();
    let ident = input.ident;
    let name = ident.unraw().to_string();
    let stable_name = match &input.attrs.name {
        Some(lit) => quote!(#private::core::option::Option::Some(#lit)),
        None => quote!(#private::core::option::Option::None),
    };
    let fields = input.fields();

    // Each field's layout is reached through a trait of its own, implemented for every
    // `SharedState` type and spanned on the field type: that bound refuses a field whose type
    // is not `SharedState`, once, at the field, with a message that names it, even when an
    // alias or a macro hides the type.
    let field_traits = fields.iter().map(|f| field_trait(&name, f.ident));
    // The field's type is taken from the struct itself, through a projection `|s| &s.field`,
    // never by repeating the field's type tokens: a macro in type position could expand to
    // another type the second time.
    let descriptors = fields.iter().map(|f| {
        let fname = f.ident;
        let fname_str = fname.unraw().to_string();
        let layout_fn = field_layout_fn_ident(&name, fname);
        let layout = quote_spanned!(f.ty.span()=> #layout_fn(|s: &#ident| &s.#fname));
        quote! {
            #private::field(
                #fname_str,
                #private::core::mem::offset_of!(#ident, #fname),
                #layout,
            )
        }
    });

    // Padding proofs: the gap after each field up to the next field (or, for the last field,
    // up to the end of the struct) must be zero bytes. Each proof is spanned on its field; the
    // trailing one on `align(N)` when the struct has one, since that is what usually adds it.
    let padding_checks = fields.iter().enumerate().map(|(i, f)| {
        let fname = f.ident;
        let (end, span, check) = match fields.get(i + 1) {
            Some(next) => {
                let next = next.ident;
                (
                    quote!(::shm_core::__private::core::mem::offset_of!(#ident, #next)),
                    f.original.span(),
                    quote!(assert_no_padding_after_field),
                )
            }
            None => (
                quote!(::shm_core::__private::core::mem::size_of::<#ident>()),
                input.attrs.repr.align.unwrap_or_else(|| ident.span()),
                quote!(assert_no_trailing_padding),
            ),
        };
        // The compiler reports an unmet bound at the type argument, so that is what carries
        // the span.
        let mut self_ty = ident.clone();
        self_ty.set_span(span);
        quote_spanned! {span=>
            const _: () = ::shm_core::__private::#check::<#self_ty, {
                #end - (::shm_core::__private::core::mem::offset_of!(#ident, #fname)
                    + ::shm_core::__private::field_size(|s: &#ident| &s.#fname))
            }>();
        }
    });

    let unsafe_impl = quote_spanned!(Span::call_site()=> unsafe impl);
    quote! {
        #[automatically_derived]
        #[allow(non_local_definitions)]
        const _: () = {
            impl #private::Sealed for #ident {}

            #(#field_traits)*

            // SAFETY: the derive checked that the struct is `repr(C)`, not generic and has only
            // named fields. LAYOUT names every field's layout through a trait implemented only
            // for `SharedState` types, so this impl compiles only when every field type is
            // `SharedState` (all bit patterns valid, no padding, no pointers); the compiler
            // proves below that no implicit padding lies between or after the fields. A
            // `repr(C)` struct of such fields with no padding is itself all-bit-patterns-valid
            // and padding-free. LAYOUT is built from `offset_of!`/`size_of`/`align_of` of the
            // struct itself.
            //
            // `Send` and `Sync` follow from the fields being `SharedState`; as where clauses
            // they keep a field that is not (a pointer behind an alias) from adding errors
            // about them to the one that names the field. `for<'__shm>` keeps the compiler
            // from rejecting a clause it can already see is false.
            #unsafe_impl #private::SharedState for #ident
            where
                for<'__shm> #ident: #private::core::marker::Send + #private::core::marker::Sync,
            {
                const LAYOUT: &'static #private::Layout = &#private::struct_layout(
                    #private::core::mem::size_of::<#ident>(),
                    #private::core::mem::align_of::<#ident>(),
                    #name,
                    #stable_name,
                    &[#(#descriptors),*],
                );
            }

            #(#padding_checks)*
        };
    }
}

/// The name of the function [`field_trait`] defines to read the field's layout.
fn field_layout_fn_ident(owner: &str, field: &syn::Ident) -> syn::Ident {
    format_ident!("__{owner}_{}_layout", field.unraw())
}

/// The name of the trait [`field_trait`] defines: unique in the crate (unless two modules
/// have structs of the same name) so that the compiler prints it without a path.
fn field_trait_ident(owner: &str, field: &syn::Ident) -> syn::Ident {
    format_ident!("{owner}_{}_is_SharedState", field.unraw())
}

/// A trait that gives the layout of field `field` of struct `owner` for every `SharedState`
/// type, and otherwise fails with a message that names the field.
fn field_trait(owner: &str, field: &syn::Ident) -> TokenStream {
    let private = private();
    let trait_ident = field_trait_ident(owner, field);
    let layout_fn = field_layout_fn_ident(owner, field);
    let field = field.unraw().to_string();
    let message = format!(
        "field `{field}` of `{owner}` has type `{{Self}}`, which cannot be placed in shared memory; use a fixed-width type, a `shm_core` helper type, or a struct that derives `SharedState`"
    );
    let label = "`{Self}` does not implement `SharedState`";
    let note = "shareable types are fixed-width integers (`u8`..`u128`, `i8`..`i128`; `u64` rather than `usize`), `f32`, `f64`, arrays `[T; N]` of shareable types, `shm_core::FixedStr<N>` for strings, `shm_core::FixedVec<T, N>` for vectors, `shm_core::ShmBool` for booleans, and `#[repr(C)]` structs that `#[derive(SharedState)]`";
    quote! {
        #[allow(non_camel_case_types)]
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        trait #trait_ident {
            const LAYOUT: &'static #private::Layout;
        }
        #[allow(unknown_or_malformed_diagnostic_attributes)]
        #[diagnostic::do_not_recommend]
        impl<T: #private::SharedState> #trait_ident for T {
            const LAYOUT: &'static #private::Layout = <T as #private::SharedState>::LAYOUT;
        }
        /// The layout of the type a field projection `|s| &s.field` points to.
        #[allow(non_snake_case)]
        const fn #layout_fn<S, T: #trait_ident>(_: fn(&S) -> &T) -> &'static #private::Layout {
            <T as #trait_ident>::LAYOUT
        }
    }
}
