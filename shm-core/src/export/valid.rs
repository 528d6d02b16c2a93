//! Whether a layout is one the exports can declare: what the derive guarantees of every Rust
//! type, checked again for a layout that came from elsewhere.

use super::names::is_identifier;
use crate::layout::{KindBuf, LayoutBuf, Primitive};
use crate::Error;

/// Deepest nesting of arrays and structs an exported layout may have.
const MAX_DEPTH: usize = 64;

/// Checks `layout` as [`c_header_of`](super::c_header_of) documents.
pub(super) fn exportable(layout: &LayoutBuf) -> Result<(), Error> {
    let refuse = |what: String| Error::InvalidLayout { what };
    // First, as it bounds the depth of every walk after it.
    node(layout, 0).map_err(refuse)?;
    layout
        .check()
        .map_err(|what| refuse(format!("{what}, so no C or Python type has this layout")))?;
    if !matches!(layout.kind, KindBuf::Struct { .. }) {
        return Err(refuse(format!(
            "exports declare structs, and the layout is a `{layout}`"
        )));
    }
    if layout.size > isize::MAX as u64 {
        return Err(refuse(format!(
            "its size {} is larger than any C object",
            layout.size
        )));
    }
    Ok(())
}

/// Checks names, padding and primitive alignments of `l` and everything in it.
fn node(l: &LayoutBuf, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("it nests deeper than {MAX_DEPTH} levels"));
    }
    match &l.kind {
        KindBuf::Primitive(p) => {
            let align = host_align(*p);
            if l.align != align {
                return Err(format!(
                    "a `{p}` has alignment {}, where this machine's is {align}",
                    l.align,
                    p = p.rust_name()
                ));
            }
            Ok(())
        }
        KindBuf::Array { element, .. } | KindBuf::FixedVec { element, .. } => {
            node(element, depth + 1)
        }
        KindBuf::Struct {
            name,
            stable_name,
            fields,
            ..
        } => {
            let names = [Some(name), stable_name.as_ref()];
            if let Some(bad) = names.into_iter().flatten().find(|n| !is_identifier(n)) {
                return Err(format!(
                    "the struct name {bad:?} is not an identifier (ASCII letters, digits and `_`)"
                ));
            }
            if fields.is_empty() {
                return Err(format!(
                    "struct `{name}` has no fields, and C has no empty structs"
                ));
            }
            let mut seen = std::collections::HashSet::new();
            let mut end = 0u64;
            for f in fields {
                if !is_identifier(&f.name) {
                    return Err(format!(
                        "struct `{name}` has a field named {:?}, which is not an identifier \
                         (ASCII letters, digits and `_`)",
                        f.name
                    ));
                }
                if !seen.insert(f.name.as_str()) {
                    return Err(format!("struct `{name}` has two fields named `{}`", f.name));
                }
                if f.offset != end {
                    return Err(format!(
                        "struct `{name}` has field `{}` at offset {} where the field before it \
                         ends at {end}; exported structs have no padding",
                        f.name, f.offset
                    ));
                }
                end = end.checked_add(f.layout.size).ok_or_else(|| {
                    format!("struct `{name}` has field `{}` past any size", f.name)
                })?;
                node(&f.layout, depth + 1)?;
            }
            if end != l.size {
                return Err(format!(
                    "struct `{name}` is {} bytes but its fields end at {end}; exported structs \
                     have no padding",
                    l.size
                ));
            }
            Ok(())
        }
        KindBuf::FixedStr { .. } | KindBuf::Bool => Ok(()),
    }
}

/// The alignment of `p` on this machine, as the C compiler gives it too.
fn host_align(p: Primitive) -> u64 {
    use core::mem::align_of;
    (match p {
        Primitive::U8 => align_of::<u8>(),
        Primitive::U16 => align_of::<u16>(),
        Primitive::U32 => align_of::<u32>(),
        Primitive::U64 => align_of::<u64>(),
        Primitive::U128 => align_of::<u128>(),
        Primitive::I8 => align_of::<i8>(),
        Primitive::I16 => align_of::<i16>(),
        Primitive::I32 => align_of::<i32>(),
        Primitive::I64 => align_of::<i64>(),
        Primitive::I128 => align_of::<i128>(),
        Primitive::F32 => align_of::<f32>(),
        Primitive::F64 => align_of::<f64>(),
    }) as u64
}
