//! Generates the `SharedState` impl and the compile-time proofs for a checked input.

use crate::ast::{Field, Input};
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
    let appendable = input.attrs.appendable.is_some();

    // Each field's layout is read by a function of its own, generic over two type parameters
    // named after the field and the struct: its body requires the field type to be
    // `SharedState` through a trait whose message prints those parameters, so an unmet bound
    // is reported once, at the field, naming it, even when an alias or a macro hides the type.
    // The trait lives in `shm_core`, so the generated code never names the `diagnostic`
    // namespace, which `#![no_implicit_prelude]` hides.
    let field_fns = fields
        .iter()
        .enumerate()
        .map(|(i, f)| field_layout_fn(input, i, f));
    let descriptors = fields.iter().enumerate().map(|(i, f)| {
        let fname = f.ident;
        let fname_str = fname.unraw().to_string();
        let layout = field_layout_call(input, i, f);
        let alias = match &f.attrs.alias {
            Some(lit) => quote!(#private::core::option::Option::Some(#lit)),
            None => quote!(#private::core::option::Option::None),
        };
        let deprecated = f.attrs.deprecated.is_some();
        quote! {
            #private::field(
                #fname_str,
                #private::core::mem::offset_of!(#ident, #fname),
                #layout,
                #alias,
                #deprecated,
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
        let gap = quote! {
            #end - (::shm_core::__private::core::mem::offset_of!(#ident, #fname)
                + ::shm_core::__private::field_size(|s: &#ident| &s.#fname))
        };
        quote_spanned! {span=>
            const _: () = ::shm_core::__private::#check::<
                #self_ty,
                { ::shm_core::__private::one_byte(#gap) },
                { ::shm_core::__private::several_bytes(#gap) },
            >();
        }
    });

    let unsafe_impl = quote_spanned!(Span::call_site()=> unsafe impl);
    let owner_alias = owner_alias();
    let allows = allows();
    quote! {
        #allows
        const _: () = {
            #[automatically_derived]
            impl #private::Sealed for #ident {}

            type #owner_alias = #ident;
            #(#field_fns)*

            // SAFETY: the derive checked that the struct is `repr(C)`, not generic and has only
            // named fields. LAYOUT reads every field's layout through a function whose body
            // requires, for every `Field` and `Owner` (they are its type parameters), a bound
            // that only `SharedState` types meet (`FieldIsSharedState` has `SharedState` as a
            // supertrait), so this impl compiles only when every field type is `SharedState`
            // (all bit patterns valid, no padding, no pointers); the compiler
            // proves below that no implicit padding lies between or after the fields. A
            // `repr(C)` struct of such fields with no padding is itself all-bit-patterns-valid
            // and padding-free. LAYOUT is built from `offset_of!`/`size_of`/`align_of` of the
            // struct itself.
            //
            // `Send` and `Sync` follow from the fields being `SharedState`; as where clauses
            // they keep a field that is not (a pointer behind an alias) from adding errors
            // about them to the one that names the field. `for<'__shm>` keeps the compiler
            // from rejecting a clause it can already see is false. `Sized` likewise keeps an
            // unsized field (a slice behind an alias) from adding errors at `size_of`.
            //
            // The tokens of this impl carry the macro's call-site span, never the user's: the
            // `unsafe_code` lint does not look into code an external macro generated, so the
            // derive works in crates that `#![forbid(unsafe_code)]`.
            #[automatically_derived]
            #unsafe_impl #private::SharedState for #ident
            where
                for<'__shm> #ident: #private::core::marker::Sized + #private::core::marker::Send + #private::core::marker::Sync,
            {
                const LAYOUT: &'static #private::Layout = &#private::struct_layout(
                    #private::core::mem::size_of::<#ident>(),
                    #private::core::mem::align_of::<#ident>(),
                    #name,
                    #stable_name,
                    &[#(#descriptors),*],
                    #appendable,
                );
            }

            #(#padding_checks)*
        };
    }
}

/// The lint attributes on everything the derive generates: the code names the struct and its
/// fields however the user marked them (`#[deprecated]`), and it is written for any lint level
/// the user's crate sets.
pub fn allows() -> TokenStream {
    quote! {
        #[allow(
            deprecated,
            non_local_definitions,
            non_camel_case_types,
            unused_qualifications,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
        )]
    }
}

/// The alias through which a field's function names the struct, whose own name may be shadowed
/// there by the type parameter named after it.
fn owner_alias() -> syn::Ident {
    format_ident!("__SharedStateOwner")
}

/// The name of the function [`field_layout_fn`] defines for the field at `index`.
fn field_layout_fn_ident(index: usize) -> syn::Ident {
    format_ident!("__shared_state_field_{index}")
}

/// The type parameter named after the struct in the function of `field`, unless the field has
/// the struct's name: the struct is then named through the alias (the compiler prints its path).
fn owner_param<'a>(input: &Input<'a>, field: &Field) -> Option<&'a syn::Ident> {
    (input.ident.unraw() != field.ident.unraw()).then_some(input.ident)
}

/// A call of the function [`field_layout_fn`] defines: the type arguments are unused.
fn field_layout_call(input: &Input, index: usize, field: &Field) -> TokenStream {
    let fn_ident = field_layout_fn_ident(index);
    match owner_param(input, field) {
        Some(_) => quote!(#fn_ident::<(), ()>()),
        None => quote!(#fn_ident::<()>()),
    }
}

/// `const fn __shared_state_field_N<field, Struct>() -> &'static Layout`: the layout of the
/// field at `index`, required to be `SharedState`. The bound is spanned on the field type, and
/// the type parameters are named after the field and the struct so that the error names them.
fn field_layout_fn(input: &Input, index: usize, field: &Field) -> TokenStream {
    let private = private();
    let owner = owner_alias();
    let fn_ident = field_layout_fn_ident(index);
    let fname = field.ident;
    let field_param = fname;
    let (owner_param, owner_arg) = match owner_param(input, field) {
        Some(p) => (Some(p), quote!(#p)),
        None => (None, quote!(#owner)),
    };
    // The closure is never run: its method call reports a `usize`, `isize`, slice or `str`
    // field with the message the syntax check gives when the type is written, in place of the
    // generic one (see `FieldType`). It comes first so that its error is the one kept, and every
    // token carries the span of the field type, where the generic error points, since the
    // compiler leaves out an error only when one that implies it has the same span.
    let refine = quote_spanned! {field.ty.span()=>
        let _ = || {
            #[allow(unused_imports)]
            use ::shm_core::__private::AnyFieldType as _;
            ::shm_core::__private::field_type::<#field_param, #owner_arg, #owner, _>(|s: &#owner| &s.#fname)
                .__shared_state_refuse();
        };
    };
    let layout = quote_spanned! {field.ty.span()=>
        #private::field_layout::<#field_param, #owner_arg, #owner, _>(|s: &#owner| &s.#fname)
    };
    quote! {
        const fn #fn_ident<#field_param, #owner_param>() -> &'static #private::Layout {
            #refine
            #layout
        }
    }
}
