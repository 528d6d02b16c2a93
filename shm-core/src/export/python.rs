//! The Python module: `ctypes.Structure`s checked at import, and `numpy` dtypes where numpy
//! imports.

use super::{name_of, named_types, quoted, root_name, Named};
use crate::layout::{KindBuf, LayoutBuf, Primitive};
use core::fmt::Write;

fn ctypes_primitive(p: Primitive) -> &'static str {
    match p {
        Primitive::U8 => "ctypes.c_uint8",
        Primitive::U16 => "ctypes.c_uint16",
        Primitive::U32 => "ctypes.c_uint32",
        Primitive::U64 => "ctypes.c_uint64",
        // ctypes has no 128-bit integer: 16 native-endian bytes (see `int128`).
        Primitive::U128 | Primitive::I128 => "(ctypes.c_uint8 * 16)",
        Primitive::I8 => "ctypes.c_int8",
        Primitive::I16 => "ctypes.c_int16",
        Primitive::I32 => "ctypes.c_int32",
        Primitive::I64 => "ctypes.c_int64",
        Primitive::F32 => "ctypes.c_float",
        Primitive::F64 => "ctypes.c_double",
    }
}

fn numpy_primitive(p: Primitive) -> &'static str {
    match p {
        Primitive::U8 => "'=u1'",
        Primitive::U16 => "'=u2'",
        Primitive::U32 => "'=u4'",
        Primitive::U64 => "'=u8'",
        Primitive::U128 | Primitive::I128 => "'V16'",
        Primitive::I8 => "'=i1'",
        Primitive::I16 => "'=i2'",
        Primitive::I32 => "'=i4'",
        Primitive::I64 => "'=i8'",
        Primitive::F32 => "'=f4'",
        Primitive::F64 => "'=f8'",
    }
}

/// The ctypes type of `l`.
fn ctype(l: &LayoutBuf, named: &[Named]) -> String {
    match &l.kind {
        KindBuf::Primitive(p) => ctypes_primitive(*p).to_string(),
        KindBuf::Array { len, element } => format!("({} * {len})", ctype(element, named)),
        KindBuf::Bool => "ctypes.c_uint8".to_string(),
        _ => name_of(l, named).to_string(),
    }
}

/// The numpy dtype spelling of `l`: arrays of arrays flatten into one shape.
fn dtype(l: &LayoutBuf, named: &[Named]) -> String {
    let mut dims = Vec::new();
    let mut leaf = l;
    while let KindBuf::Array { len, element } = &leaf.kind {
        dims.push(len.to_string());
        leaf = element;
    }
    let base = match &leaf.kind {
        KindBuf::Primitive(p) => numpy_primitive(*p).to_string(),
        KindBuf::Bool => "'=u1'".to_string(),
        _ => format!("{}_dtype", name_of(leaf, named)),
    };
    if dims.is_empty() {
        base
    } else {
        format!("({base}, ({},))", dims.join(", "))
    }
}

/// The (name, ctypes type, numpy dtype, offset) of every member of a named type.
fn members(n: &Named, named: &[Named]) -> Vec<(String, String, String, u64)> {
    let bytes = |k: u64| {
        (
            format!("(ctypes.c_uint8 * {k})"),
            format!("('=u1', ({k},))"),
        )
    };
    match &n.layout.kind {
        KindBuf::Struct { fields, .. } => fields
            .iter()
            .map(|f| {
                (
                    f.name.clone(),
                    ctype(&f.layout, named),
                    dtype(&f.layout, named),
                    f.offset,
                )
            })
            .collect(),
        KindBuf::FixedStr { capacity } => {
            let (lc, ld) = bytes(4);
            let (bc, bd) = bytes(*capacity);
            vec![("len".into(), lc, ld, 0), ("bytes".into(), bc, bd, 4)]
        }
        KindBuf::FixedVec { capacity, element } => {
            let (lc, ld) = bytes(8);
            let ic = format!("({} * {capacity})", ctype(element, named));
            let inner = dtype(element, named);
            let id = format!("({inner}, ({capacity},))");
            vec![("len".into(), lc, ld, 0), ("items".into(), ic, id, 8)]
        }
        _ => unreachable!("only structs and helper types are named"),
    }
}

const PRELUDE: &str = r#"import ctypes
import sys


def _check(cls, size, offsets):
    # Raised rather than asserted, so that `python -O` checks too.
    if ctypes.sizeof(cls) != size:
        raise ImportError(f"{cls.__name__}: ctypes size {ctypes.sizeof(cls)} differs from the Rust size {size}")
    for name, offset in offsets:
        found = getattr(cls, name).offset
        if found != offset:
            raise ImportError(f"{cls.__name__}.{name}: ctypes offset {found} differs from the Rust offset {offset}")


def int128(raw, signed=False):
    """The value of a 128-bit integer field (16 native-endian bytes)."""
    return int.from_bytes(bytes(raw), sys.byteorder, signed=signed)


class _FixedStr:
    def value(self):
        """The string; ValueError if the stored length exceeds the capacity or is not UTF-8."""
        n = int.from_bytes(bytes(self.len), sys.byteorder)
        if n > len(self.bytes):
            raise ValueError(f"stored length {n} exceeds the capacity of {len(self.bytes)}")
        return bytes(self.bytes[:n]).decode("utf-8")


class _FixedVec:
    def value(self):
        """The items in use; ValueError if the stored length exceeds the capacity."""
        n = int.from_bytes(bytes(self.len), sys.byteorder)
        if n > len(self.items):
            raise ValueError(f"stored length {n} exceeds the capacity of {len(self.items)}")
        return list(self.items[:n])

"#;

/// The whole module for the struct `root`.
///
/// # Panics
/// If `root` is not a struct.
pub(super) fn module(root: &LayoutBuf) -> String {
    let (hash, descriptor) = (root.layout_hash(), root.encode());
    let named = named_types(root);
    let name = root_name(root, &named);
    let stable = root.struct_name().unwrap_or(&name);
    let mut out = String::new();
    writeln!(
        out,
        "\"\"\"{name}: generated by shm_core::export::python from the Rust type; do not edit.\n\nEvery Structure has _pack_ = 1: the Rust type has no implicit padding, so packed ctypes\noffsets are the Rust offsets; each class checks its size and offsets at import.\n\"\"\"\n"
    )
    .unwrap();
    out.push_str(PRELUDE);
    writeln!(out, "LAYOUT_HASH = {hash:#018x}").unwrap();
    writeln!(out, "STABLE_NAME = {}", quoted(stable)).unwrap();
    writeln!(out, "SIZE = {}", root.size).unwrap();
    writeln!(out, "ALIGN = {}", root.align).unwrap();
    let hex: String = descriptor.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(out, "DESCRIPTOR = bytes.fromhex(\"{hex}\")\n").unwrap();
    for n in &named {
        let base = match n.layout.kind {
            KindBuf::FixedStr { .. } => "_FixedStr, ",
            KindBuf::FixedVec { .. } => "_FixedVec, ",
            _ => "",
        };
        writeln!(out, "\nclass {}({base}ctypes.Structure):", n.name).unwrap();
        writeln!(
            out,
            "    \"\"\"`{}` (size {}, align {}).\"\"\"",
            n.layout, n.layout.size, n.layout.align
        )
        .unwrap();
        writeln!(
            out,
            "    _layout_ = \"ms\"\n    _pack_ = 1\n    _fields_ = ["
        )
        .unwrap();
        let ms = members(n, &named);
        for (field, ct, _, _) in &ms {
            writeln!(out, "        ({}, {ct}),", quoted(field)).unwrap();
        }
        writeln!(out, "    ]\n").unwrap();
        let offsets: Vec<String> = ms
            .iter()
            .map(|(f, _, _, o)| format!("({}, {o})", quoted(f)))
            .collect();
        writeln!(
            out,
            "\n_check({}, {}, [{}])",
            n.name,
            n.layout.size,
            offsets.join(", ")
        )
        .unwrap();
    }
    writeln!(out, "\n\ntry:\n    import numpy as _np\nexcept ImportError:\n    _np = None\n\nif _np is not None:").unwrap();
    for n in &named {
        let ms = members(n, &named);
        let q = |v: Vec<String>| v.join(", ");
        writeln!(
            out,
            "    {}_dtype = _np.dtype({{\"names\": [{}], \"formats\": [{}], \"offsets\": [{}], \"itemsize\": {}}})",
            n.name,
            q(ms.iter().map(|m| quoted(&m.0)).collect()),
            q(ms.iter().map(|m| m.2.clone()).collect()),
            q(ms.iter().map(|m| m.3.to_string()).collect()),
            n.layout.size
        )
        .unwrap();
    }
    writeln!(out, "    if {name}_dtype.itemsize != SIZE:\n        raise ImportError(\"{name}_dtype: itemsize differs from the Rust size\")").unwrap();
    out
}
