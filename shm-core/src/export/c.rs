//! The C11/C++17 header: declarations, static assertions and the macros a C reader checks a
//! segment against.

use super::names::c_reserved;
use super::{name_of, named_types, quoted, root_name, upper_snake, Named};
use crate::layout::{KindBuf, LayoutBuf, Primitive};
use core::fmt::Write;

/// The field's name in C: the Rust name, with a `_` appended if it is a keyword or macro
/// (see [`c_reserved`]), so that fields `int` and `int_` stay distinct: `int_`, `int__`.
pub(super) fn field_name(name: &str) -> String {
    if c_reserved(name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

fn primitive(p: Primitive) -> &'static str {
    match p {
        Primitive::U8 => "uint8_t",
        Primitive::U16 => "uint16_t",
        Primitive::U32 => "uint32_t",
        Primitive::U64 => "uint64_t",
        Primitive::U128 => "unsigned __int128",
        Primitive::I8 => "int8_t",
        Primitive::I16 => "int16_t",
        Primitive::I32 => "int32_t",
        Primitive::I64 => "int64_t",
        Primitive::I128 => "__int128",
        Primitive::F32 => "float",
        Primitive::F64 => "double",
    }
}

/// One member declaration: `double pos[3];` (with `outer`, an array of `outer` such values).
/// 128-bit integers get an explicit alignment, since
/// C compilers do not all give `__int128` the alignment Rust gives `u128`; `extra_align` is the
/// alignment a `#[repr(align(N))]` struct puts on its first member.
fn member(
    name: &str,
    outer: Option<u64>,
    l: &LayoutBuf,
    named: &[Named],
    extra_align: Option<u64>,
) -> String {
    let mut dims = outer.map(|n| format!("[{n}]")).unwrap_or_default();
    let mut leaf = l;
    while let KindBuf::Array { len, element } = &leaf.kind {
        write!(dims, "[{len}]").unwrap();
        leaf = element;
    }
    let base = match &leaf.kind {
        KindBuf::Primitive(p) => primitive(*p).to_string(),
        KindBuf::Bool => "ShmBool".to_string(),
        _ => name_of(leaf, named).to_string(),
    };
    let wide = matches!(
        leaf.kind,
        KindBuf::Primitive(Primitive::U128 | Primitive::I128)
    );
    let align = match (wide.then_some(leaf.align), extra_align) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let align = align
        .map(|a| format!("SHM_ALIGNAS({a}) "))
        .unwrap_or_default();
    format!("    {align}{base} {}{dims};\n", field_name(name))
}

/// The definition of one named type, with its static assertions, inside an include guard of
/// its own (so that two generated headers sharing a type can be included together).
fn definition(n: &Named, named: &[Named], out: &mut String) {
    let l = n.layout;
    let name = &n.name;
    let mut body = String::new();
    let out_final = out;
    let out = &mut body;
    let mut asserts = Vec::new();
    match &l.kind {
        KindBuf::Struct { fields, .. } => {
            writeln!(out, "typedef struct {name} {{").unwrap();
            let natural = fields.iter().map(|f| f.layout.align).max().unwrap_or(1);
            for (i, f) in fields.iter().enumerate() {
                let extra = (i == 0 && l.align > natural).then_some(l.align);
                out.push_str(&member(&f.name, None, &f.layout, named, extra));
                asserts.push((field_name(&f.name), f.offset));
            }
            writeln!(out, "}} {name};").unwrap();
        }
        KindBuf::FixedStr { capacity } => {
            writeln!(out, "/* FixedStr<{capacity}>: UTF-8, length as a native-endian u32; bytes past the length are zero */").unwrap();
            writeln!(out, "typedef struct {name} {{").unwrap();
            writeln!(out, "    uint8_t len[4];\n    char bytes[{capacity}];").unwrap();
            writeln!(out, "}} {name};").unwrap();
            asserts.extend([("len".to_string(), 0), ("bytes".to_string(), 4)]);
        }
        KindBuf::FixedVec { capacity, element } => {
            writeln!(out, "/* FixedVec<{element}, {capacity}>: length as a native-endian u64; items past the length are zero */").unwrap();
            writeln!(out, "typedef struct {name} {{").unwrap();
            writeln!(out, "    uint8_t len[8];").unwrap();
            out.push_str(&member("items", Some(*capacity), element, named, None));
            writeln!(out, "}} {name};").unwrap();
            asserts.extend([("len".to_string(), 0), ("items".to_string(), 8)]);
        }
        _ => unreachable!("only structs and helper types are named"),
    }
    let (size, align) = (l.size, l.align);
    writeln!(
        out,
        "SHM_STATIC_ASSERT(sizeof({name}) == {size}, \"{name}: size differs from the Rust type\");"
    )
    .unwrap();
    writeln!(out, "SHM_STATIC_ASSERT(SHM_ALIGNOF({name}) == {align}, \"{name}: alignment differs from the Rust type\");").unwrap();
    for (field, offset) in asserts {
        writeln!(out, "SHM_STATIC_ASSERT(offsetof({name}, {field}) == {offset}, \"{name}.{field}: offset differs from the Rust type\");").unwrap();
    }
    // The guard names the definition's text, so that two headers sharing a type define it
    // once, and two headers disagreeing on it fail to compile.
    let text_hash = body.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let guard = format!("SHM_TYPE_{}_{text_hash:016X}", upper_snake(name));
    writeln!(
        out_final,
        "#ifndef {guard}\n#define {guard}\n{body}#endif\n"
    )
    .unwrap();
}

const PRELUDE: &str = r#"#include <stdint.h>
#include <stddef.h>

#ifndef SHM_EXPORT_PORTABILITY
#define SHM_EXPORT_PORTABILITY
#ifdef __cplusplus
#define SHM_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define SHM_ALIGNAS(n) alignas(n)
#define SHM_ALIGNOF(t) alignof(t)
#else
#define SHM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define SHM_ALIGNAS(n) _Alignas(n)
#define SHM_ALIGNOF(t) _Alignof(t)
#endif
#endif

#ifndef SHM_TYPE_SHM_BOOL
#define SHM_TYPE_SHM_BOOL
/* ShmBool: one byte, 0 false, 1 true, any other value invalid */
typedef uint8_t ShmBool;
#endif

"#;

/// The whole header for the struct `root`.
///
/// # Panics
/// If `root` is not a struct.
pub(super) fn header(root: &LayoutBuf) -> String {
    let (hash, descriptor) = (root.layout_hash(), root.encode());
    let named = named_types(root);
    let name = root_name(root, &named);
    let upper = upper_snake(&name);
    let stable = root.struct_name().unwrap_or(&name);
    let mut out = String::new();
    writeln!(
        out,
        "/* {name}: generated by shm_core::export::c_header from the Rust type; do not edit.\n   Valid C11 and C++17. Include shm_state.h as well to read segments (docs/languages.md). */"
    )
    .unwrap();
    writeln!(
        out,
        "#ifndef SHM_EXPORT_{upper}_H\n#define SHM_EXPORT_{upper}_H\n"
    )
    .unwrap();
    out.push_str(PRELUDE);
    for n in &named {
        definition(n, &named, &mut out);
    }
    writeln!(out, "#define {upper}_LAYOUT_HASH UINT64_C({hash:#018x})").unwrap();
    writeln!(out, "#define {upper}_STABLE_NAME {}", quoted(stable)).unwrap();
    writeln!(out, "#define {upper}_SIZE {}", root.size).unwrap();
    writeln!(out, "#define {upper}_ALIGN {}", root.align).unwrap();
    writeln!(out, "#define {upper}_DESCRIPTOR_LEN {}", descriptor.len()).unwrap();
    writeln!(
        out,
        "/* The layout descriptor as stored in segments (docs/segment-format.md). */"
    )
    .unwrap();
    out.push_str(&format!("#define {upper}_DESCRIPTOR_BYTES {{"));
    for (i, b) in descriptor.iter().enumerate() {
        if i % 16 == 0 {
            out.push_str(" \\\n    ");
        }
        write!(out, "0x{b:02x},").unwrap();
    }
    out.push_str(" \\\n}\n");
    writeln!(
        out,
        "static inline const uint8_t *{name}_shm_descriptor(void) {{\n    static const uint8_t bytes[] = {upper}_DESCRIPTOR_BYTES;\n    return bytes;\n}}"
    )
    .unwrap();
    writeln!(
        out,
        "#define {upper}_DESCRIPTOR ({name}_shm_descriptor())\n"
    )
    .unwrap();
    writeln!(
        out,
        r#"#ifdef __cplusplus
namespace shm {{
template <typename T> struct layout_of;
template <> struct layout_of<{name}> {{
    static constexpr uint64_t hash = {upper}_LAYOUT_HASH;
    static constexpr size_t size = {upper}_SIZE;
    static constexpr size_t align = {upper}_ALIGN;
    static constexpr const char *stable_name = {upper}_STABLE_NAME;
    static constexpr size_t descriptor_len = {upper}_DESCRIPTOR_LEN;
    static const uint8_t *descriptor() {{ return {upper}_DESCRIPTOR; }}
}};
}} /* namespace shm */
#endif

#endif /* SHM_EXPORT_{upper}_H */"#
    )
    .unwrap();
    out
}
