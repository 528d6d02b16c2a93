//! Parses the attributes the derive reads: `#[repr(...)]` and `#[shm(...)]`.

use crate::ctxt::Ctxt;
use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, LitStr};

/// The `shm` attribute's name.
pub const SHM: &str = "shm";
/// `#[shm(name = "...")]`.
pub const NAME: &str = "name";
/// `#[shm(appendable)]`, on the struct.
pub const APPENDABLE: &str = "appendable";
/// `#[shm(alias = "...")]`, on a field.
pub const ALIAS: &str = "alias";
/// `#[shm(deprecated)]`, on a field.
pub const DEPRECATED: &str = "deprecated";

/// What `#[repr(...)]` says, as far as the derive cares.
#[derive(Default)]
pub struct Repr {
    /// `repr(C)` is present.
    pub c: Option<Span>,
    /// `align(N)` is present: its span (trailing padding is reported there).
    pub align: Option<Span>,
    /// A representation other than `C` and `align(N)` was refused; its error already says to
    /// use `#[repr(C)]`, so a missing `C` is not reported again.
    pub refused: bool,
    /// An integer representation (`u8`, `u32`, ...), which only enums take: the enum error
    /// names it as the tag field's type.
    pub int: Option<String>,
    /// The representations already refused: two `#[repr]` attributes that both say `packed`
    /// are one mistake.
    reported: Vec<String>,
}

/// Parsed attributes of the input type.
#[derive(Default)]
pub struct Attrs {
    /// The representation.
    pub repr: Repr,
    /// `#[shm(name = "...")]`.
    pub name: Option<LitStr>,
    /// `#[shm(appendable)]`: its span.
    pub appendable: Option<Span>,
}

/// Parsed `#[shm]` attributes of a field, and whether it has Rust's `#[deprecated]`.
#[derive(Default)]
pub struct FieldAttrs {
    /// `#[shm(alias = "...")]`.
    pub alias: Option<LitStr>,
    /// `#[shm(deprecated)]`: its span.
    pub deprecated: Option<Span>,
    /// Rust's own `#[deprecated]` is on the field.
    pub rust_deprecated: bool,
}

/// Reads `#[repr]` and `#[shm]` from `attrs`, recording every mistake in `cx`.
pub fn parse(cx: &mut Ctxt, attrs: &[Attribute]) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs {
        if attr.path().is_ident("repr") {
            parse_repr(cx, attr, &mut out.repr);
        } else if attr.path().is_ident(SHM) {
            parse_shm(cx, attr, &mut out);
        }
    }
    out
}

fn parse_repr(cx: &mut Ctxt, attr: &Attribute, repr: &mut Repr) {
    let result = attr.parse_nested_meta(|meta| {
        let path = &meta.path;
        let Some(ident) = path.get_ident() else {
            cx.error_spanned_by(path, "unrecognized `repr`; use `#[repr(C)]`");
            repr.refused = true;
            return Ok(());
        };
        if ident != "C" && ident != "align" {
            repr.refused = true;
            if repr.reported.contains(&ident.to_string()) {
                skip_arguments(&meta)?;
                return Ok(());
            }
            repr.reported.push(ident.to_string());
        }
        match ident.to_string().as_str() {
            "C" => repr.c = Some(ident.span()),
            "align" => {
                // Accept `align(N)`: its value is the compiler's business.
                let content;
                syn::parenthesized!(content in meta.input);
                let _: syn::LitInt = content.parse()?;
                repr.align = Some(ident.span());
            }
            "packed" => {
                skip_arguments(&meta)?;
                cx.error_spanned_by(
                    ident,
                    "`repr(packed)` is not supported: packed fields are unaligned, so they cannot be copied with atomic word accesses or borrowed; use `#[repr(C)]` without `packed`, and add explicit `_pad: [u8; N]` fields where padding would go",
                );
            }
            "transparent" => cx.error_spanned_by(
                ident,
                "`repr(transparent)` is not supported: its layout is that of one inner field, not a struct other languages can declare; use `#[repr(C)]`",
            ),
            "Rust" => cx.error_spanned_by(
                ident,
                "`repr(Rust)` lets the compiler reorder fields, so two programs may disagree on the layout; use `#[repr(C)]`",
            ),
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
            | "i128" | "isize" => {
                repr.int = Some(ident.to_string());
                cx.error_spanned_by(
                    ident,
                    format!("`repr({ident})` is an enum representation, not a struct layout; use `#[repr(C)]`"),
                );
            }
            "simd" => cx.error_spanned_by(ident, "`repr(simd)` is not supported; use `#[repr(C)]` with an array field"),
            _ => cx.error_spanned_by(ident, format!("unrecognized `repr({ident})`; use `#[repr(C)]`")),
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.push(e);
    }
}

/// Consumes the parenthesized arguments of a `repr` entry, if any (`packed(2)`).
fn skip_arguments(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        let _: proc_macro2::TokenStream = content.parse()?;
    }
    Ok(())
}

fn parse_shm(cx: &mut Ctxt, attr: &Attribute, out: &mut Attrs) {
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident(APPENDABLE) {
            no_value(&meta, "`#[shm(appendable)]` takes no value; write `#[shm(appendable)]`")?;
            if out.appendable.is_some() {
                cx.error_spanned_by(&meta.path, "duplicate `#[shm(appendable)]`; keep one");
            }
            out.appendable = Some(meta.path.span());
            Ok(())
        } else if meta.path.is_ident(ALIAS) || meta.path.is_ident(DEPRECATED) {
            let key = meta.path.to_token_stream().to_string();
            Err(meta.error(format!(
                "`#[shm({key})]` goes on a field of an appendable struct, not on the struct"
            )))
        } else if meta.path.is_ident(NAME) {
            let lit: LitStr = meta.value()?.parse()?;
            let value = lit.value();
            if out.name.is_some() {
                cx.error_spanned_by(&lit, "duplicate `#[shm(name)]`; keep one");
            } else if !is_identifier(&value) {
                let fix = match to_identifier(&value) {
                    Some(fixed) => format!(", e.g. `#[shm(name = {fixed:?})]`"),
                    None => String::new(),
                };
                cx.error_spanned_by(
                    &lit,
                    format!("`#[shm(name = {value:?})]` is not an identifier, but it becomes the type's name in C and Python exports; use ASCII letters, digits and `_`, not starting with a digit{fix}"),
                );
            } else {
                out.name = Some(lit);
            }
            Ok(())
        } else {
            let key = meta.path.to_token_stream().to_string().replace(' ', "");
            Err(meta.error(format!(
                "unknown `shm` attribute `{key}`; a struct takes `#[shm(name = \"StableName\")]` and `#[shm(appendable)]`"
            )))
        }
    });
    if let Err(e) = result {
        cx.push(e);
    }
}

/// Refuses a value (`= ...` or `(...)`) after a flag such as `appendable`.
fn no_value(meta: &syn::meta::ParseNestedMeta, message: &str) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(meta.error(message));
    }
    Ok(())
}

/// Reads a field's `#[shm]` attributes and notes Rust's `#[deprecated]`, recording every
/// mistake in `cx`.
pub fn parse_field(cx: &mut Ctxt, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs {
        if attr.path().is_ident("deprecated") {
            out.rust_deprecated = true;
        }
        if !attr.path().is_ident(SHM) {
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(ALIAS) {
                let lit: LitStr = meta.value()?.parse()?;
                if out.alias.is_some() {
                    cx.error_spanned_by(&lit, "duplicate `#[shm(alias)]`; a field has one earlier name");
                } else if !is_identifier(&lit.value()) {
                    cx.error_spanned_by(
                        &lit,
                        format!("`#[shm(alias = {:?})]` is not an identifier; it names the field as an earlier version of the type spelled it", lit.value()),
                    );
                } else {
                    out.alias = Some(lit);
                }
                Ok(())
            } else if meta.path.is_ident(DEPRECATED) {
                no_value(&meta, "`#[shm(deprecated)]` takes no value; put a note in Rust's `#[deprecated(note = \"...\")]`")?;
                if out.deprecated.is_some() {
                    cx.error_spanned_by(&meta.path, "duplicate `#[shm(deprecated)]`; keep one");
                }
                out.deprecated = Some(meta.path.span());
                Ok(())
            } else if meta.path.is_ident(APPENDABLE) || meta.path.is_ident(NAME) {
                let key = meta.path.to_token_stream().to_string();
                Err(meta.error(format!("`#[shm({key})]` goes on the struct, not on a field")))
            } else {
                let key = meta.path.to_token_stream().to_string().replace(' ', "");
                Err(meta.error(format!(
                    "unknown `shm` attribute `{key}` on a field; a field takes `#[shm(alias = \"old_name\")]` and `#[shm(deprecated)]`"
                )))
            }
        });
        if let Err(e) = result {
            cx.push(e);
        }
    }
    out
}

/// `s` with every character that cannot appear in an identifier replaced by `_`, and a `_`
/// prepended if it starts with a digit; `None` if nothing identifier-like is left.
fn to_identifier(s: &str) -> Option<String> {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out.chars()
        .any(|c| c.is_ascii_alphanumeric())
        .then_some(out)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
