//! Generates the `SharedState` impl and the compile-time proofs for a checked input.

use crate::ast::Input;
use crate::ctxt::Ctxt;
use crate::{fallback, valid};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
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
    let name = ident.to_string();
    let stable_name = match &input.attrs.name {
        Some(lit) => quote!(#private::core::option::Option::Some(#lit)),
        None => quote!(#private::core::option::Option::None),
    };
    let fields = input.fields();

    // Each field's layout is reached through `<T as SharedState>::LAYOUT`, spanned on the
    // field type: that is the trait bound that refuses a non-shareable field (one error per
    // field, at the field), even when an alias or a macro hides the type.
    let descriptors = fields.iter().map(|f| {
        let fname = f.ident;
        let fname_str = fname.to_string();
        let ty = f.ty;
        let layout =
            quote_spanned!(ty.span()=> <#ty as ::shm_core::__private::SharedState>::LAYOUT);
        quote! {
            #private::Field {
                name: #fname_str,
                offset: #private::core::mem::offset_of!(#ident, #fname),
                layout: #layout,
            }
        }
    });

    // Padding proofs: the gap after each field up to the next field (or, for the last field,
    // up to the end of the struct) must be zero bytes. Each proof is spanned on its field; the
    // trailing one on `align(N)` when the struct has one, since that is what usually adds it.
    let padding_checks = fields.iter().enumerate().map(|(i, f)| {
        let fname = f.ident;
        let ty = f.ty;
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
        let self_ty = syn::Ident::new(&name, span);
        quote_spanned! {span=>
            const _: () = ::shm_core::__private::#check::<#self_ty, {
                #end - (::shm_core::__private::core::mem::offset_of!(#ident, #fname)
                    + ::shm_core::__private::core::mem::size_of::<#ty>())
            }>();
        }
    });

    let unsafe_impl = quote_spanned!(Span::call_site()=> unsafe impl);
    quote! {
        #[automatically_derived]
        #[allow(non_local_definitions)]
        const _: () = {
            impl #private::Sealed for #ident {}

            // SAFETY: the derive checked that the struct is `repr(C)`, not generic and has only
            // named fields; the compiler proves below that every field type is `SharedState`
            // (all bit patterns valid, no padding, no pointers) and that no implicit padding
            // lies between or after the fields. A `repr(C)` struct of such fields with no
            // padding is itself all-bit-patterns-valid and padding-free. LAYOUT is built from
            // `offset_of!`/`size_of`/`align_of` of the struct itself.
            #unsafe_impl #private::SharedState for #ident {
                const LAYOUT: &'static #private::Layout = &#private::Layout {
                    size: #private::core::mem::size_of::<#ident>(),
                    align: #private::core::mem::align_of::<#ident>(),
                    kind: #private::Kind::Struct {
                        name: #name,
                        stable_name: #stable_name,
                        fields: &[#(#descriptors),*],
                    },
                };
            }

            #(#padding_checks)*
        };
    }
}
