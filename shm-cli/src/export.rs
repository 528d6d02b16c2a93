//! `shm export`: the layout a segment stores, for other languages.
//!
//! `--lang json` writes the same document, under the same schema (`shm-state/layout`, schema
//! version 1), as the exports generated from a Rust type, but from the stored [`LayoutBuf`].

use crate::cli::{ExportArgs, Lang};
use crate::json::write_string;
use crate::output::{exit, Failure, Outcome};
use shm_core::layout::{KindBuf, LayoutBuf};
use std::fmt::Write as _;
use std::io::Write;

/// Version of the JSON document's schema.
const SCHEMA_VERSION: u32 = 1;

/// Runs `shm export`.
pub fn run(args: &ExportArgs) -> Outcome {
    if args.lang != Lang::Json {
        let lang = match args.lang {
            Lang::C => "c",
            Lang::Cpp => "cpp",
            _ => "python",
        };
        return Err(Failure::new(
            exit::OTHER,
            format!(
                "--lang {lang} is not available yet from a stored layout; use --lang json, or \
                 generate declarations from the Rust type"
            ),
        ));
    }
    let (_, r) = crate::inspect::open(&args.name)?;
    let doc = json_document(r.layout(), r.layout_hash());
    let mut out = std::io::stdout().lock();
    out.write_all(doc.as_bytes())?;
    out.flush()?;
    Ok(exit::OK)
}

/// The `shm-state/layout` JSON document for `layout`, whose stored hash is `hash`.
pub fn json_document(layout: &LayoutBuf, hash: u64) -> String {
    let endian = if cfg!(target_endian = "little") {
        "little"
    } else {
        "big"
    };
    let descriptor: String = layout.encode().iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    out.push_str("{\n");
    out.push_str("  \"schema\": \"shm-state/layout\",\n");
    let _ = writeln!(out, "  \"schema_version\": {SCHEMA_VERSION},");
    let _ = writeln!(out, "  \"format_version\": {},", shm_core::FORMAT_VERSION);
    let _ = writeln!(out, "  \"endianness\": \"{endian}\",");
    let _ = writeln!(out, "  \"layout_hash\": \"{hash:#018x}\",");
    let _ = writeln!(out, "  \"descriptor\": \"{descriptor}\",");
    out.push_str("  \"layout\": ");
    node(layout, 2, &mut out);
    out.push_str("\n}\n");
    out
}

fn string(s: &str) -> String {
    let mut out = String::new();
    write_string(&mut out, s);
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
        _ => "unknown",
    };
    let _ = write!(
        out,
        "{{\n{pad}  \"kind\": \"{kind}\",\n{pad}  \"size\": {},\n{pad}  \"align\": {}",
        l.size, l.align
    );
    match &l.kind {
        KindBuf::Primitive(p) => {
            let _ = write!(out, ",\n{pad}  \"primitive\": \"{}\"", p.rust_name());
        }
        KindBuf::Array { len, element } => {
            let _ = write!(out, ",\n{pad}  \"len\": {len},\n{pad}  \"element\": ");
            node(element, indent + 2, out);
        }
        KindBuf::Struct {
            name,
            stable_name,
            fields,
        } => {
            let stable = stable_name.as_deref().map_or("null".to_string(), string);
            let _ = write!(
                out,
                ",\n{pad}  \"name\": {},\n{pad}  \"stable_name\": {stable},\n{pad}  \"fields\": [",
                string(name)
            );
            for (i, f) in fields.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(
                    out,
                    "{sep}\n{pad}    {{\n{pad}      \"name\": {},\n{pad}      \"offset\": {},\n{pad}      \"layout\": ",
                    string(&f.name),
                    f.offset
                );
                node(&f.layout, indent + 6, out);
                let _ = write!(out, "\n{pad}    }}");
            }
            if !fields.is_empty() {
                let _ = write!(out, "\n{pad}  ");
            }
            out.push(']');
        }
        KindBuf::FixedStr { capacity } => {
            let _ = write!(out, ",\n{pad}  \"capacity\": {capacity}");
        }
        KindBuf::FixedVec { capacity, element } => {
            let _ = write!(
                out,
                ",\n{pad}  \"capacity\": {capacity},\n{pad}  \"element\": "
            );
            node(element, indent + 2, out);
        }
        _ => {}
    }
    let _ = write!(out, "\n{pad}}}");
}
