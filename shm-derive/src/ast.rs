//! A typed layer over the `syn` input that keeps the original nodes for spans.

use crate::attr::{self, Attrs, FieldAttrs};
use crate::ctxt::Ctxt;
use syn::{Data, DeriveInput, Fields, Ident, Type};

/// The derive input, classified.
pub struct Input<'a> {
    /// The whole item.
    pub original: &'a DeriveInput,
    /// The type's name.
    pub ident: &'a Ident,
    /// Parsed `#[repr]` and `#[shm]`.
    pub attrs: Attrs,
    /// What kind of item it is.
    pub shape: Shape<'a>,
}

/// The kinds of items a derive can be applied to.
pub enum Shape<'a> {
    /// A struct with at least one named field: the only accepted shape.
    Named(Vec<Field<'a>>),
    /// `struct S(..);`
    Tuple(&'a Fields),
    /// `struct S;` or `struct S {}`
    Empty,
    /// An enum; the token is `enum`.
    Enum(&'a syn::token::Enum),
    /// A union; the token is `union`.
    Union(&'a syn::token::Union),
}

/// A named field.
pub struct Field<'a> {
    /// The field as written.
    pub original: &'a syn::Field,
    /// Its name.
    pub ident: &'a Ident,
    /// Its type.
    pub ty: &'a Type,
    /// Its `#[shm]` attributes.
    pub attrs: FieldAttrs,
}

impl<'a> Input<'a> {
    /// Classifies `node`, parsing its attributes (attribute mistakes go to `cx`).
    pub fn from_syn(cx: &mut Ctxt, node: &'a DeriveInput) -> Self {
        let shape = match &node.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) if !named.named.is_empty() => Shape::Named(
                    named
                        .named
                        .iter()
                        .map(|f| Field {
                            original: f,
                            ident: f.ident.as_ref().expect("named field has an ident"),
                            ty: &f.ty,
                            attrs: attr::parse_field(cx, &f.attrs),
                        })
                        .collect(),
                ),
                Fields::Unnamed(u) if !u.unnamed.is_empty() => Shape::Tuple(&s.fields),
                _ => Shape::Empty,
            },
            Data::Enum(e) => Shape::Enum(&e.enum_token),
            Data::Union(u) => Shape::Union(&u.union_token),
        };
        Input {
            original: node,
            ident: &node.ident,
            attrs: {
                // An enum or a union is refused whatever its `repr` says: its own error says
                // what to use instead, and a `repr` fix would not help.
                let mut repr_errors = Ctxt::default();
                let attrs = attr::parse(&mut repr_errors, &node.attrs);
                if matches!(node.data, Data::Struct(_)) {
                    if let Err(e) = repr_errors.check() {
                        cx.push(e);
                    }
                }
                attrs
            },
            shape,
        }
    }

    /// The named fields; empty unless the shape is [`Shape::Named`].
    pub fn fields(&self) -> &[Field<'a>] {
        match &self.shape {
            Shape::Named(fields) => fields,
            _ => &[],
        }
    }
}
