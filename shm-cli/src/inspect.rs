//! `shm inspect`: a segment's layout as a table and its current value, field by field.

use crate::cli::InspectArgs;
use crate::json::Json;
use crate::output::{exit, plain_table, Failure, Outcome, Style};
use crate::render;
use crate::scan::{self, Info};
use crate::segment_file::normalize_name;
use shm_core::layout::Value;
use shm_core::RawReader;
use std::io::Write;
use std::time::Duration;

/// How long a read may retry before it gives up (only a peer that keeps a slot busy, or a
/// writer that died mid-write on a one-slot segment, makes it retry that long).
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens segment `name` (as given) for reading: the normalized name and the reader.
pub fn open(name: &str) -> Result<(String, RawReader), Failure> {
    let name = normalize_name(name).map_err(|m| Failure::new(exit::USAGE, m))?;
    let r = RawReader::open(&name).map_err(|e| Failure::core(&name, &e))?;
    Ok((name, r))
}

/// Reads the latest value: its version and payload bytes.
pub fn read(name: &str, r: &RawReader) -> Result<(u64, Vec<u8>), Failure> {
    let mut bytes = vec![0u8; r.payload_size()];
    let version = r
        .read_timeout(&mut bytes, READ_TIMEOUT)
        .map_err(|e| Failure::core(name, &e))?;
    Ok((version, bytes))
}

/// Runs `shm inspect`.
pub fn run(args: &InspectArgs) -> Outcome {
    let (name, r) = open(&args.name)?;
    let (version, bytes) = read(&name, &r)?;
    let info = Info::of(&r);
    let layout = r.layout();
    let value = layout.decode_value_lossy(&bytes);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut j = Json::object().with("name", name.as_str());
        crate::ls::info_json(&mut j, &info);
        j.push("payload_align", layout.align);
        j.push(
            "layout",
            Json::Array(
                render::layout_rows(layout)
                    .into_iter()
                    .map(|row| {
                        Json::object()
                            .with("path", row.path)
                            .with("type", row.ty)
                            .with("offset", row.offset)
                            .with("size", row.size)
                    })
                    .collect(),
            ),
        );
        j.push("value_version", version);
        j.push("value", render::to_json(&value));
        if args.raw {
            j.push("raw", render::hex(&bytes).replace(' ', ""));
        }
        writeln!(out, "{}", j.pretty())?;
    } else {
        let style = Style::for_stdout();
        out.write_all(human(&name, &info, &r, version, &value, style).as_bytes())?;
        if args.raw {
            writeln!(out, "\n{}", style.bold("PAYLOAD BYTES"))?;
            out.write_all(hex_dump(&bytes).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

fn human(
    name: &str,
    info: &Info,
    r: &RawReader,
    version: u64,
    value: &Value,
    style: Style,
) -> String {
    let layout = r.layout();
    let writer = if info.writer_alive {
        style.good("alive")
    } else {
        style.bad("dead")
    };
    let mut s = String::new();
    let facts = [
        ("segment", name.to_string()),
        (
            "type",
            format!(
                "{} (layout hash {:#018x}, {} bytes, align {})",
                scan::type_name(layout),
                info.layout_hash,
                info.payload_size,
                layout.align
            ),
        ),
        ("slots", info.slots.to_string()),
        ("version", version.to_string()),
        (
            "writer",
            format!(
                "pid {} {writer}, epoch {} (creator pid {})",
                info.writer_pid, info.epoch, info.creator_pid
            ),
        ),
    ];
    for (k, v) in facts {
        s.push_str(&format!("{}  {v}\n", style.bold(&format!("{k:<8}"))));
    }
    s.push('\n');
    let mut rows = vec![["FIELD", "TYPE", "OFFSET", "SIZE"]
        .map(str::to_string)
        .to_vec()];
    for row in render::layout_rows(layout) {
        rows.push(vec![
            row.path,
            row.ty,
            format!("{:>6}", row.offset),
            format!("{:>4}", row.size),
        ]);
    }
    s.push_str(&plain_table(&rows));
    s.push_str(&format!(
        "\n{}\n",
        style.bold(&format!("VALUE (version {version})"))
    ));
    s.push_str(&value_lines(value, style).join("\n"));
    s.push('\n');
    s
}

/// The value as aligned `path = value` lines; invalid values in the warning colour.
pub fn value_lines(value: &Value, style: Style) -> Vec<String> {
    let rows = render::rows(value);
    let width = rows
        .iter()
        .map(|(p, _)| p.chars().count())
        .max()
        .unwrap_or(0);
    rows.into_iter()
        .map(|(path, v)| {
            let text = render::inline(v);
            let text = if render::contains_invalid(v) {
                style.warn(&text)
            } else {
                text
            };
            let path = if path.is_empty() {
                "value".to_string()
            } else {
                path
            };
            format!("{path:<width$}  = {text}")
        })
        .collect()
}

/// `bytes` as a classic hex dump: offset, 16 bytes in hex, and their printable ASCII.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex = render::hex(chunk);
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        s.push_str(&format!("{:08x}  {hex:<47}  |{ascii}|\n", i * 16));
    }
    s
}
