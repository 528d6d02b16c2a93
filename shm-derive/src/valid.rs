//! Syntactic checks: everything the derive can refuse by reading the tokens, each error spanned
//! on the offending token and saying what to use instead.
//!
//! These are early, friendly messages, not the soundness argument: a type alias or a macro can
//! hide any of these types from syntax, and the trait bounds emitted by `expand` refuse them
//! there too.

use crate::ast::{Input, Shape};
use crate::ctxt::Ctxt;
use quote::ToTokens;
use syn::{GenericArgument, GenericParam, PathArguments, Type};

/// Records in `cx` every syntactic reason `input` cannot derive `SharedState`.
pub fn check(cx: &mut Ctxt, input: &Input) {
    check_shape(cx, input);
    check_generics(cx, input);
    check_repr(cx, input);
    for field in input.fields() {
        check_type(cx, &field.ident.to_string(), field.ty);
    }
}

fn check_shape(cx: &mut Ctxt, input: &Input) {
    let name = input.ident;
    match &input.shape {
        Shape::Named(_) => {}
        Shape::Enum(token) => cx.error_spanned_by(
            token,
            format!("`SharedState` cannot be derived for enum `{name}`: another process may write any discriminant, and one that names no variant is undefined behaviour; use a struct with an integer tag field and named constants"),
        ),
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

fn check_generics(cx: &mut Ctxt, input: &Input) {
    for param in &input.original.generics.params {
        match param {
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
            cx.error_spanned_by(w, "`SharedState` types cannot have a where clause");
        }
    }
}

fn check_repr(cx: &mut Ctxt, input: &Input) {
    if !matches!(input.shape, Shape::Named(_) | Shape::Empty) {
        return; // the shape error says enough
    }
    if input.attrs.repr.c.is_none() {
        cx.error_spanned_by(
            input.ident,
            format!("`{}` needs `#[repr(C)]` to derive `SharedState`: without it the compiler may reorder fields, and another program could disagree on the layout; add `#[repr(C)]` above the struct", input.ident),
        );
    }
}

/// What a field type is, when it is one the derive refuses by name.
fn refusal(ident: &str) -> Option<&'static str> {
    Some(match ident {
        "String" => "owns heap memory another process cannot see; use `shm_core::FixedStr<N>`",
        "str" => "is unsized string data; use `shm_core::FixedStr<N>`",
        "Vec" | "VecDeque" => "owns heap memory another process cannot see; use `shm_core::FixedVec<T, N>` or an array `[T; N]`",
        "Box" => "is a pointer to this process's heap, meaningless in another process; store the value itself",
        "Rc" | "Arc" | "Weak" => "is a reference-counted pointer to this process's heap, meaningless in another process; store the value itself",
        "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "LinkedList" | "BinaryHeap" => {
            "owns heap memory and pointers another process cannot see; use fixed-size arrays or `shm_core::FixedVec<T, N>`"
        }
        "Cell" | "RefCell" | "UnsafeCell" | "OnceCell" | "Mutex" | "RwLock" => {
            "has interior mutability, which shared memory cannot honour across processes; use the plain type: the writer publishes whole values with `write`/`update` and readers get consistent snapshots"
        }
        "AtomicBool" | "AtomicU8" | "AtomicU16" | "AtomicU32" | "AtomicU64" | "AtomicUsize"
        | "AtomicI8" | "AtomicI16" | "AtomicI32" | "AtomicI64" | "AtomicIsize" | "AtomicPtr" => {
            "is an atomic, which a `SharedState` struct does not need: every read is already a consistent snapshot (seqlock); use the plain integer type"
        }
        "Option" => "has a discriminant that a peer could set to an invalid value, and no layout other languages know; use a value plus a `shm_core::ShmBool` flag, or a sentinel value",
        "usize" | "isize" => "has a size that differs between 32-bit and 64-bit processes; use `u64`/`i64` (or `u32`/`i32`)",
        "bool" => "makes every byte other than 0 and 1 undefined behaviour, and a peer may write any byte; use `shm_core::ShmBool`",
        "char" => "makes most `u32` values undefined behaviour, and a peer may write any value; use `u32` (and `char::from_u32`) or `shm_core::FixedStr<4>`",
        "NonZeroU8" | "NonZeroU16" | "NonZeroU32" | "NonZeroU64" | "NonZeroU128" | "NonZeroUsize"
        | "NonZeroI8" | "NonZeroI16" | "NonZeroI32" | "NonZeroI64" | "NonZeroI128" | "NonZeroIsize"
        | "NonZero" => "makes zero undefined behaviour, and a peer may write zero; use the plain integer type",
        "PhantomData" | "PhantomPinned" => "is a zero-sized marker that has no place in a shared layout; remove the field",
        "NonNull" => "is a pointer into this process's memory, meaningless in another process; store an offset or an index instead",
        _ => return None,
    })
}

fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    }
}

/// Checks one field type, recursing into arrays and generic arguments; `field` names the field.
fn check_type(cx: &mut Ctxt, field: &str, ty: &Type) {
    match ty {
        Type::Reference(_) => cx.error_spanned_by(
            ty,
            format!(
                "field `{field}` is a reference (`{}`), an address in this process that means nothing in another; store the value itself, or an offset or index",
                ty.to_token_stream()
            ),
        ),
        Type::Ptr(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` is a raw pointer (`{}`), an address in this process that means nothing in another; store an offset or an index instead", ty.to_token_stream()),
        ),
        Type::BareFn(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` is a function pointer, an address in this program that means nothing in another; store an integer tag and dispatch on it in each process"),
        ),
        Type::TraitObject(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` is a trait object (`{}`): it is unsized and its vtable pointer means nothing in another process; store an integer tag and the data itself", ty.to_token_stream()),
        ),
        Type::ImplTrait(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` has an `impl Trait` type; use a concrete type"),
        ),
        Type::Slice(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` is a slice, which is unsized; use an array `[T; N]` or `shm_core::FixedVec<T, N>`"),
        ),
        Type::Tuple(t) if t.elems.is_empty() => cx.error_spanned_by(
            ty,
            format!("field `{field}` is `()`, which holds nothing; remove the field"),
        ),
        Type::Tuple(_) => cx.error_spanned_by(
            ty,
            format!("field `{field}` is a tuple, whose layout Rust does not specify; use an array or a `#[repr(C)]` struct that derives `SharedState`"),
        ),
        Type::Never(_) => cx.error_spanned_by(ty, format!("field `{field}` has type `!`; remove the field")),
        Type::Array(a) => check_type(cx, field, &a.elem),
        Type::Paren(p) => check_type(cx, field, &p.elem),
        Type::Group(g) => check_type(cx, field, &g.elem),
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                check_type(cx, field, &q.ty);
            }
            let Some(last) = p.path.segments.last() else { return };
            let name = last.ident.to_string();
            if let Some(why) = refusal(&name) {
                let what = if matches!(last.arguments, PathArguments::None) {
                    format!("`{name}`")
                } else {
                    format!("`{name}<..>`")
                };
                cx.error_spanned_by(
                    ty,
                    format!("field `{field}` is {} {what}, which {why}", article(&name)),
                );
                return;
            }
            if let PathArguments::AngleBracketed(args) = &last.arguments {
                for arg in &args.args {
                    if let GenericArgument::Type(inner) = arg {
                        check_type(cx, field, inner);
                    }
                }
            }
        }
        // Macros, inferred types and anything newer are left to the trait checks.
        _ => {}
    }
}
