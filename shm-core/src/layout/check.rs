//! Whether a [`LayoutBuf`]'s numbers agree with each other, as a layout the derive produced
//! always does.

use super::{KindBuf, LayoutBuf, Primitive};

impl LayoutBuf {
    /// Checks that the layout could describe real bytes: every alignment a power of two and
    /// every size a multiple of it; each struct's fields in declaration order, aligned, without
    /// overlap and inside the struct; arrays, helper types and primitives of exactly the sizes
    /// their kinds imply. Every layout built from a Rust type passes; a hand-built one (from
    /// another language, say) must pass before a segment is created from it. The error says
    /// what is inconsistent.
    pub fn check(&self) -> Result<(), &'static str> {
        let (size, align) = (self.size, self.align);
        if !align.is_power_of_two() {
            return Err("an alignment is not a power of two");
        }
        if size % align != 0 {
            return Err("a size is not a multiple of its alignment");
        }
        let exact = |want: Option<u64>, what| match want {
            Some(w) if w == size => Ok(()),
            _ => Err(what),
        };
        match &self.kind {
            KindBuf::Primitive(p) => {
                exact(Some(primitive_size(*p)), "a primitive has the wrong size")
            }
            KindBuf::Array { len, element } => {
                element.check()?;
                if element.align != align {
                    return Err("an array's alignment is not its element's");
                }
                exact(
                    len.checked_mul(element.size),
                    "an array's size is not its length times its element's",
                )
            }
            KindBuf::Struct {
                fields, appendable, ..
            } => {
                let mut end = 0u64;
                for f in fields {
                    if !appendable && (f.deprecated || f.alias.is_some()) {
                        return Err("a field of a struct that is not appendable has an alias or is deprecated");
                    }
                    f.layout.check()?;
                    let field_end = f.offset.checked_add(f.layout.size);
                    if f.offset < end || f.offset % f.layout.align != 0 || f.layout.align > align {
                        return Err("a field overlaps the one before it, or is misaligned");
                    }
                    match field_end {
                        Some(e) if e <= size => end = e,
                        _ => return Err("a field ends past the end of its struct"),
                    }
                }
                Ok(())
            }
            KindBuf::FixedStr { capacity } => {
                if align != 1 {
                    return Err("a FixedStr has alignment 1");
                }
                exact(
                    capacity.checked_add(4),
                    "a FixedStr's size is not 4 plus its capacity",
                )
            }
            KindBuf::FixedVec { capacity, element } => {
                element.check()?;
                if element.align > 8 || align != element.align.max(1) {
                    return Err("a FixedVec's alignment is not its element's (at most 8)");
                }
                let items = capacity.checked_mul(element.size);
                exact(
                    items.and_then(|n| n.checked_add(8)),
                    "a FixedVec's size is not 8 plus its capacity times its element's",
                )
            }
            KindBuf::Bool => exact(Some(1), "a ShmBool has size 1"),
        }
    }
}

fn primitive_size(p: Primitive) -> u64 {
    use Primitive::*;
    match p {
        U8 | I8 => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 => 8,
        U128 | I128 => 16,
    }
}
