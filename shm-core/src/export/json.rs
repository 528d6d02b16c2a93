//! The descriptor as JSON, under the schema `shm-state/layout` (`docs/layout.schema.json`).

use crate::format::LAYOUT_ENCODING_VERSION;
use crate::layout::{KindBuf, LayoutBuf};
use core::fmt::Write;

/// Version of the JSON document's schema; bumped on any incompatible change to it.
pub(super) const SCHEMA_VERSION: u32 = 1;

/// `s` as a JSON string.
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn node(l: &LayoutBuf, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let kind = match l.kind {
        KindBuf::Primitive(_) => "primitive",
        KindBuf::Array { .. } => "array",
        KindBuf::Struct { .. } => "struct",
        KindBuf::FixedStr { .. } => "fixed_str",
        KindBuf::FixedVec { .. } => "fixed_vec",
        KindBuf::Bool => "bool",
    };
    write!(
        out,
        "{{\n{pad}  \"kind\": \"{kind}\",\n{pad}  \"size\": {},\n{pad}  \"align\": {}",
        l.size, l.align
    )
    .unwrap();
    match &l.kind {
        KindBuf::Primitive(p) => {
            write!(out, ",\n{pad}  \"primitive\": \"{}\"", p.rust_name()).unwrap()
        }
        KindBuf::Array { len, element } => {
            write!(out, ",\n{pad}  \"len\": {len},\n{pad}  \"element\": ").unwrap();
            node(element, indent + 2, out);
        }
        KindBuf::Struct {
            name,
            stable_name,
            fields,
            appendable,
        } => {
            write!(
                out,
                ",\n{pad}  \"name\": {},\n{pad}  \"stable_name\": ",
                string(name)
            )
            .unwrap();
            match stable_name {
                Some(s) => out.push_str(&string(s)),
                None => out.push_str("null"),
            }
            // Only appendable structs have the key, and their fields the markers: the document
            // of every other type is what it was before they existed.
            if *appendable {
                write!(out, ",\n{pad}  \"appendable\": true").unwrap();
            }
            write!(out, ",\n{pad}  \"fields\": [").unwrap();
            for (i, f) in fields.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                write!(
                    out,
                    "{sep}\n{pad}    {{\n{pad}      \"name\": {},\n{pad}      \"offset\": {},\n{pad}      \"layout\": ",
                    string(&f.name),
                    f.offset
                )
                .unwrap();
                node(&f.layout, indent + 6, out);
                if *appendable {
                    let alias = f.alias.as_deref().map_or("null".to_string(), string);
                    write!(
                        out,
                        ",\n{pad}      \"alias\": {alias},\n{pad}      \"deprecated\": {}",
                        f.deprecated
                    )
                    .unwrap();
                }
                write!(out, "\n{pad}    }}").unwrap();
            }
            if !fields.is_empty() {
                write!(out, "\n{pad}  ").unwrap();
            }
            out.push(']');
        }
        KindBuf::FixedStr { capacity } => {
            write!(out, ",\n{pad}  \"capacity\": {capacity}").unwrap()
        }
        KindBuf::FixedVec { capacity, element } => {
            write!(
                out,
                ",\n{pad}  \"capacity\": {capacity},\n{pad}  \"element\": "
            )
            .unwrap();
            node(element, indent + 2, out);
        }
        KindBuf::Bool => {}
    }
    write!(out, "\n{pad}}}").unwrap();
}

/// The whole document for `root`.
pub(super) fn document(root: &LayoutBuf) -> String {
    let (hash, descriptor) = (root.layout_hash(), root.encode());
    let endian = if cfg!(target_endian = "little") {
        "little"
    } else {
        "big"
    };
    let hex: String = descriptor.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    writeln!(out, "{{").unwrap();
    writeln!(out, "  \"schema\": \"shm-state/layout\",").unwrap();
    writeln!(out, "  \"schema_version\": {SCHEMA_VERSION},").unwrap();
    // The version of the encoding the descriptor and hash use (what a consumer needs to
    // recompute the hash), not the segment format's: see `LAYOUT_ENCODING_VERSION`.
    writeln!(out, "  \"format_version\": {LAYOUT_ENCODING_VERSION},").unwrap();
    writeln!(out, "  \"endianness\": \"{endian}\",").unwrap();
    writeln!(out, "  \"layout_hash\": \"{hash:#018x}\",").unwrap();
    writeln!(out, "  \"descriptor\": \"{hex}\",").unwrap();
    out.push_str("  \"layout\": ");
    node(root, 2, &mut out);
    out.push_str("\n}\n");
    out
}
