//! Syntactic checks: everything the derive can refuse by reading the tokens, each error spanned
//! on the offending token and saying what to use instead.
//!
//! These are early, friendly messages, not the soundness argument: a type alias or a macro can
//! hide any of these types from syntax, and the trait bounds emitted by `expand` refuse them
//! there too.

use crate::ast::{Input, Shape};
use crate::ctxt::Ctxt;
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{GenericArgument, GenericParam, PathArguments, Type};

/// Records in `cx` every syntactic reason `input` cannot derive `SharedState`.
pub fn check(cx: &mut Ctxt, input: &Input) {
    // Field errors come last in the output, but are found first: a lifetime parameter that
    // only exists for a refused field (`struct S<'a> { r: &'a u8 }`) is one mistake, reported
    // once, at the field.
    let mut field_errors = Ctxt::default();
    let mut explained_lifetimes = Vec::new();
    for field in input.fields() {
        if check_type(
            &mut field_errors,
            &field.ident.unraw().to_string(),
            field.ty,
            false,
        ) {
            refused_reference_lifetimes(field.ty, &mut explained_lifetimes);
        }
    }
    check_shape(cx, input);
    check_generics(cx, input, &explained_lifetimes);
    check_repr(cx, input);
    check_upgrade_attrs(cx, input);
    if let Err(e) = field_errors.check() {
        cx.push(e);
    }
}

/// Field markers of rolling upgrades: only on appendable structs, an alias that names no other
/// field, and `#[shm(deprecated)]` together with Rust's `#[deprecated]` (which a derive cannot
/// add to the field itself).
fn check_upgrade_attrs(cx: &mut Ctxt, input: &Input) {
    let appendable = input.attrs.appendable.is_some();
    for field in input.fields() {
        let name = field.ident.unraw().to_string();
        if let Some(alias) = &field.attrs.alias {
            let old = alias.value();
            if !appendable {
                cx.error_spanned_by(
                    alias,
                    format!("`#[shm(alias)]` on field `{name}` only matters to an appendable type; add `#[shm(appendable)]` to the struct"),
                );
            } else if old == name {
                cx.error_spanned_by(alias, format!("`#[shm(alias = {old:?})]` is the field's own name; an alias is the name the field had before it was renamed"));
            } else if input.fields().iter().any(|f| f.ident.unraw() == old) {
                cx.error_spanned_by(alias, format!("`#[shm(alias = {old:?})]` on field `{name}` names another field of this struct; an alias is the name this field had before it was renamed"));
            }
        }
        if let Some(span) = field.attrs.deprecated {
            if !appendable {
                cx.push(syn::Error::new(span, format!("`#[shm(deprecated)]` on field `{name}` only matters to an appendable type; add `#[shm(appendable)]` to the struct, or use Rust's `#[deprecated]` alone")));
            } else if !field.attrs.rust_deprecated {
                cx.push(syn::Error::new(span, format!("field `{name}` is `#[shm(deprecated)]` but not `#[deprecated]`; add `#[deprecated]` to the field as well, so that code still using it is warned")));
            }
        }
    }
}

fn check_shape(cx: &mut Ctxt, input: &Input) {
    let name = input.ident;
    match &input.shape {
        Shape::Named(_) => {}
        Shape::Enum(token) => {
            let tag = match &input.attrs.repr.int {
                Some(int) => format!("a `{int}` field"),
                None => "an integer field (`u8`, `u32`)".to_string(),
            };
            cx.error_spanned_by(
                token,
                format!("`SharedState` cannot be derived for enum `{name}`: another process may write any discriminant, and one that names no variant is undefined behaviour; use a `#[repr(C)]` struct with {tag} and named constants for the variants"),
            );
        }
        Shape::Union(token) => cx.error_spanned_by(
            token,
            format!("`SharedState` cannot be derived for union `{name}`: nothing records which field is live, so no other language can read it safely; use a struct with a tag field, or a byte array"),
        ),
        Shape::Tuple(fields) => cx.error_spanned_by(
            fields,
            format!("`SharedState` cannot be derived for tuple struct `{name}`: exports to C and Python name every field; use named fields, e.g. `struct {name} {{ value: u64 }}`"),
        ),
        Shape::Empty => cx.error_spanned_by(
            name,
            format!("`SharedState` cannot be derived for `{name}`, which has no fields: there is nothing to share; add at least one field"),
        ),
    }
}

fn check_generics(cx: &mut Ctxt, input: &Input, explained_lifetimes: &[String]) {
    for param in &input.original.generics.params {
        match param {
            GenericParam::Lifetime(l)
                if explained_lifetimes.contains(&l.lifetime.ident.to_string()) => {}
            GenericParam::Lifetime(l) => cx.error_spanned_by(
                l,
                format!("`SharedState` types cannot have lifetime parameters: `{}` means `{}` borrows memory of this process, which another process cannot see; store the data itself", l.lifetime, input.ident),
            ),
            GenericParam::Type(t) => cx.error_spanned_by(
                t,
                format!("`SharedState` types cannot be generic: the layout hash must be one constant for one concrete layout; replace `{}` with a concrete type, or define one struct per instantiation", t.ident),
            ),
            GenericParam::Const(c) => cx.error_spanned_by(
                c,
                format!("`SharedState` types cannot be generic: the layout hash must be one constant for one concrete layout; replace `{}` with a concrete value", c.ident),
            ),
        }
    }
    if let Some(w) = &input.original.generics.where_clause {
        if input.original.generics.params.is_empty() {
            cx.error_spanned_by(
                w,
                "`SharedState` types cannot have a where clause; remove it",
            );
        }
    }
}

fn check_repr(cx: &mut Ctxt, input: &Input) {
    if !matches!(input.shape, Shape::Named(_) | Shape::Empty) {
        return; // the shape error says enough
    }
    if input.attrs.repr.c.is_none() && !input.attrs.repr.refused {
        cx.error_spanned_by(
            input.ident,
            format!("`{}` needs `#[repr(C)]` to derive `SharedState`: without it the compiler may reorder fields, and another program could disagree on the layout; add `#[repr(C)]` above the struct", input.ident),
        );
    }
}

/// Why a field type is refused, when the derive refuses it by the name of its last path
/// segment, and what to use instead. `inner` is the type's first generic argument, if any;
/// the text follows "field `x` is a `T`, ".
fn refusal(name: &str, inner: Option<&str>) -> Option<String> {
    let the_inner = match inner {
        Some(t) => format!("the `{t}`"),
        None => "the value".to_string(),
    };
    Some(match name {
        "String" => "which owns heap memory another process cannot see; use `shm_core::FixedStr<N>`".into(),
        "str" => "which is unsized; use `shm_core::FixedStr<N>`".into(),
        "Vec" | "VecDeque" => "which owns heap memory another process cannot see; use `shm_core::FixedVec<T, N>` or an array `[T; N]`".into(),
        "Box" => format!("which points into this process's heap, meaningless in another process; store {the_inner} itself"),
        "Rc" | "Arc" | "Weak" => format!("a reference-counted pointer into this process's heap, meaningless in another process; store {the_inner} itself"),
        "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "LinkedList" | "BinaryHeap" => {
            "which owns heap memory and pointers another process cannot see; use an array `[T; N]` or `shm_core::FixedVec<T, N>`".into()
        }
        "Cell" | "RefCell" | "UnsafeCell" | "OnceCell" | "Mutex" | "RwLock" => format!(
            "whose interior mutability shared memory cannot honour across processes; store {the_inner} itself: the writer publishes whole values with `write`/`update` and readers get consistent snapshots"
        ),
        "AtomicBool" | "AtomicU8" | "AtomicU16" | "AtomicU32" | "AtomicU64" | "AtomicUsize"
        | "AtomicI8" | "AtomicI16" | "AtomicI32" | "AtomicI64" | "AtomicIsize" => format!(
            "which is not needed: readers always get a consistent snapshot of the whole value; use `{}`",
            plain_type(&name["Atomic".len()..])
        ),
        "AtomicPtr" | "NonNull" => "a pointer into this process's memory, meaningless in another process; store an offset or an index instead".into(),
        "Option" => "whose discriminant a peer could set to an invalid value, and whose layout other languages do not know; use the value plus a `shm_core::ShmBool` flag, or a sentinel value".into(),
        "usize" => "whose size differs between 32-bit and 64-bit processes; use `u64`".into(),
        "isize" => "whose size differs between 32-bit and 64-bit processes; use `i64`".into(),
        "bool" => "for which any byte other than 0 and 1 is undefined behaviour, and a peer may write any byte; use `shm_core::ShmBool`".into(),
        "char" => "for which most `u32` values are undefined behaviour, and a peer may write any value; use `u32` (and `char::from_u32`) or `shm_core::FixedStr<4>`".into(),
        "NonZero" => format!(
            "for which zero is undefined behaviour, and a peer may write zero; use {}",
            inner.map_or("the plain integer type".to_string(), |t| format!("`{t}`"))
        ),
        _ if name.starts_with("NonZero") && plain_type(&name["NonZero".len()..]) != "?" => format!(
            "for which zero is undefined behaviour, and a peer may write zero; use `{}`",
            plain_type(&name["NonZero".len()..])
        ),
        "PhantomData" | "PhantomPinned" => "a zero-sized marker that has no place in a shared layout; remove the field".into(),
        _ => return None,
    })
}

/// The shareable integer type for a suffix of `AtomicU64`/`NonZeroU64`-style names: `U64` ->
/// `u64`, `Usize` -> `u64`, `Bool` -> `shm_core::ShmBool`; `?` for anything else.
fn plain_type(suffix: &str) -> &'static str {
    match suffix {
        "U8" => "u8",
        "U16" => "u16",
        "U32" => "u32",
        "U64" | "Usize" => "u64",
        "U128" => "u128",
        "I8" => "i8",
        "I16" => "i16",
        "I32" => "i32",
        "I64" | "Isize" => "i64",
        "I128" => "i128",
        "Bool" => "shm_core::ShmBool",
        _ => "?",
    }
}

/// "a" or "an" before a type as written (`core::cell::UnsafeCell<u8>`), as its first word is
/// read aloud.
fn article(ty: &str) -> &'static str {
    let word: String = ty
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match word.as_str() {
        "usize" | "u8" | "u16" | "u32" | "u64" | "u128" | "OnceCell" => "a",
        "Rc" | "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "f32" | "f64" => "an",
        _ if word.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) => "an",
        _ => "a",
    }
}

/// A type as the user would write it: `&'static u8` rather than `& 'static u8`.
fn pretty(tokens: &impl ToTokens) -> String {
    let mut s = tokens.to_token_stream().to_string();
    for (from, to) in [
        ("& '", "&'"),
        ("& mut ", "&mut "),
        ("& ", "&"),
        ("* const ", "*const "),
        ("* mut ", "*mut "),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        (" :: ", "::"),
        (":: ", "::"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// Whether `ty` (or the type behind a reference or smart pointer) is a trait object.
fn points_to_trait_object(ty: &Type) -> bool {
    match ty {
        Type::TraitObject(_) => true,
        Type::Reference(r) => points_to_trait_object(&r.elem),
        Type::Ptr(p) => points_to_trait_object(&p.elem),
        Type::Paren(p) => points_to_trait_object(&p.elem),
        Type::Group(g) => points_to_trait_object(&g.elem),
        Type::Path(p) => match p.path.segments.last() {
            Some(last) if matches!(last.ident.to_string().as_str(), "Box" | "Rc" | "Arc") => {
                first_type_argument(&last.arguments).is_some_and(points_to_trait_object)
            }
            _ => false,
        },
        _ => false,
    }
}

fn first_type_argument(args: &PathArguments) -> Option<&Type> {
    match args {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|arg| match arg {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// Checks one field type, recursing into arrays and generic arguments; `field` names the field
/// and `nested` says whether `ty` is the field's type itself or a part of it. Returns whether
/// an error was recorded.
fn check_type(cx: &mut Ctxt, field: &str, ty: &Type, nested: bool) -> bool {
    let is = if nested { "holds" } else { "is" };
    if points_to_trait_object(ty) {
        cx.error_spanned_by(
            ty,
            format!(
                "field `{field}` {is} a trait object (`{}`): its data and vtable pointers are addresses in this process that mean nothing in another; store an integer tag and the data itself, and dispatch on the tag in each process",
                pretty(ty)
            ),
        );
        return true;
    }
    match ty {
        Type::Reference(r) => cx.error_spanned_by(
            ty,
            format!(
                "field `{field}` {is} {} (`{}`), an address in this process that means nothing in another; store the value itself, or an offset or an index",
                if r.mutability.is_some() { "a mutable reference" } else { "a reference" },
                pretty(ty)
            ),
        ),
        Type::Ptr(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` {is} a raw pointer (`{}`), an address in this process that means nothing in another; store an offset or an index instead", pretty(ty)),
        ),
        Type::BareFn(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` {is} a function pointer (`{}`), an address in this program that means nothing in another; store an integer tag and dispatch on it in each process", pretty(ty)),
        ),
        Type::ImplTrait(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` has an `impl Trait` type; use a concrete type"),
        ),
        Type::Slice(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` {is} a slice (`{}`), which is unsized; use an array `[T; N]` or `shm_core::FixedVec<T, N>`", pretty(ty)),
        ),
        Type::Tuple(t) if t.elems.is_empty() => cx.error_spanned_by(
            ty,
            format!("field `{field}` {is} `()`, which holds nothing; remove the field"),
        ),
        Type::Tuple(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` {is} a tuple (`{}`), whose layout Rust does not specify; use an array or a `#[repr(C)]` struct that derives `SharedState`", pretty(ty)),
        ),
        Type::Never(_) => cx.error_spanned_by(ty, format!("field `{field}` has type `!`; remove the field")),
        Type::Array(a) => return check_type(cx, field, &a.elem, true),
        Type::Paren(p) => return check_type(cx, field, &p.elem, nested),
        Type::Group(g) => return check_type(cx, field, &g.elem, nested),
        Type::Path(p) => {
            // In `<T as Trait>::Assoc`, `T` is not stored: the trait checks see what the
            // projection resolves to.
            let mut refused = false;
            let Some(last) = p.path.segments.last() else { return refused };
            let name = last.ident.to_string();
            let inner = first_type_argument(&last.arguments).map(pretty);
            if let Some(why) = refusal(&name, inner.as_deref()) {
                cx.error_spanned_by(
                    ty,
                    format!("field `{field}` {is} {} `{}`, {why}", article(&pretty(ty)), pretty(ty)),
                );
                return true;
            }
            if let PathArguments::AngleBracketed(args) = &last.arguments {
                for arg in &args.args {
                    if let GenericArgument::Type(inner) = arg {
                        refused |= check_type(cx, field, inner, true);
                    }
                }
            }
            return refused;
        }
        // Macros, inferred types and anything newer are left to the trait checks.
        _ => return false,
    }
    true
}

/// The lifetimes of the references in `ty` (through arrays and parentheses), whose refusal
/// already says that the field borrows memory of this process: `'a` for `&'a u8`. A lifetime
/// used only elsewhere (`PhantomData<&'a ()>`) is reported at the parameter too.
fn refused_reference_lifetimes(ty: &Type, out: &mut Vec<String>) {
    match ty {
        Type::Reference(_) => lifetimes_in(ty.to_token_stream(), out),
        Type::Array(a) => refused_reference_lifetimes(&a.elem, out),
        Type::Paren(p) => refused_reference_lifetimes(&p.elem, out),
        Type::Group(g) => refused_reference_lifetimes(&g.elem, out),
        _ => {}
    }
}

/// The lifetimes named in `tokens`, e.g. `a` for `&'a u8`.
fn lifetimes_in(tokens: TokenStream, out: &mut Vec<String>) {
    let mut after_quote = false;
    for tt in tokens {
        match tt {
            TokenTree::Punct(p) if p.as_char() == '\'' => {
                after_quote = true;
                continue;
            }
            TokenTree::Ident(i) if after_quote => out.push(i.to_string()),
            TokenTree::Group(g) => lifetimes_in(g.stream(), out),
            _ => {}
        }
        after_quote = false;
    }
}
