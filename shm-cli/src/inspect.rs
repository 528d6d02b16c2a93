//! `shm inspect`: a segment's layout as a table and its current value, field by field.

use crate::cli::InspectArgs;
use crate::json::Json;
use crate::output::{exit, plain_table, Failure, Outcome, Style};
use crate::render;
use crate::scan::{self, Info, Opened};
use crate::segment_file::normalize_name;
use shm_core::layout::Value;
use shm_core::{Error, LayoutBuf, Options, RawReader, SegmentKind};
use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

/// How long a read may retry before it gives up (only a peer that keeps a slot busy, or a
/// writer that died mid-write on a one-slot segment, makes it retry that long).
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// How long opening waits for a segment's creator to finish.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Opens segment `name` (as given) for reading, whatever it holds: the normalized name and
/// the reader.
pub fn open(name: &str) -> Result<(String, Opened), Failure> {
    let name = normalize_name(name).map_err(|m| Failure::new(exit::USAGE, m))?;
    let r = scan::open_any(&name, READY_WAIT).map_err(|e| Failure::core(&name, &e))?;
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
    let expected = args
        .expect
        .as_deref()
        .map(crate::expect::load)
        .transpose()?;
    let (name, opened) = open(&args.name)?;
    let info = Info::of(&opened);
    let r = match &opened {
        Opened::State(r) => r,
        Opened::Ring(_) => return run_ring(args, &name, &info, opened.layout(), expected.as_ref()),
        Opened::Lanes(l) => return run_lanes(args, &name, &info, l),
    };
    let (version, bytes) = read(&name, r)?;
    let layout = r.layout();
    let value = layout.decode_value_lossy(&bytes);
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut j = head_json(&name, &info, layout);
        j.push("value_version", version);
        j.push("value", render::to_json(&value));
        if args.raw {
            j.push("raw", render::hex(&bytes).replace(' ', ""));
        }
        if let Some(p) = &expected {
            j.push("expected", crate::expect::json(layout, p));
        }
        writeln!(out, "{}", j.pretty())?;
    } else {
        let style = Style::for_stdout();
        out.write_all(human(&name, &info, layout, version, &value, style).as_bytes())?;
        if args.raw {
            writeln!(out, "\n{}", style.bold("PAYLOAD BYTES"))?;
            out.write_all(hex_dump(&bytes).as_bytes())?;
        }
        if let (Some(p), Some(path)) = (&expected, &args.expect) {
            out.write_all(crate::expect::human(path, layout, p, style).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// The JSON object's fields every kind shares: the name, header facts and layout.
fn head_json(name: &str, info: &Info, layout: &LayoutBuf) -> Json {
    let mut j = Json::object().with("name", name);
    crate::ls::info_json(&mut j, info);
    j.push("payload_align", layout.align);
    if layout.is_appendable() {
        j.push("appendable", true);
    }
    j.push("layout", layout_json(layout));
    j
}

/// Up to `last` of the newest messages the stream `name` holds (of a queue, the newest not
/// taken yet), oldest first, with their numbers; none sent after this call began.
fn newest_messages(name: &str, last: usize) -> Result<Vec<(u64, Vec<u8>)>, Failure> {
    let fail = |e: Error| Failure::core(name, &e);
    let mut rx = Options::new()
        .ready_wait(READY_WAIT)
        .subscribe_raw_from_oldest(name)
        .map_err(fail)?;
    let end = rx.sent();
    let mut bytes = vec![0u8; rx.payload_size()];
    let mut kept = VecDeque::with_capacity(last + 1);
    while last > 0 && rx.position() <= end {
        match rx.try_recv(&mut bytes) {
            Ok(Some(n)) if n <= end => {
                kept.push_back((n, bytes.clone()));
                if kept.len() > last {
                    kept.pop_front();
                }
            }
            Ok(_) => break,
            // Overwritten while we read: go on with the oldest still held.
            Err(Error::Lagged { .. }) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(kept.into())
}

/// `shm inspect` of a stream or queue: its facts, layout and newest messages.
/// `shm inspect` of a multi-producer stream or queue's directory: the directory, then one line
/// per lane (each a segment of its own, inspected by its name).
fn run_lanes(args: &InspectArgs, name: &str, info: &Info, l: &shm_core::LanesInfo) -> Outcome {
    let lanes: Vec<(String, Result<Info, String>)> = l
        .lane_names()
        .into_iter()
        .map(|lane| {
            let facts = scan::open_any(&lane, READY_WAIT)
                .map(|o| Info::of(&o))
                .map_err(|e| e.to_string());
            (lane, facts)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut j = head_json(name, info, &l.layout);
        j.push("lane_kind", l.lane_kind.to_string());
        j.push("capacity", l.capacity);
        j.push(
            "lanes",
            Json::Array(
                lanes
                    .iter()
                    .map(|(lane, facts)| {
                        let mut o = Json::object().with("name", lane.as_str());
                        match facts {
                            Ok(i) => crate::ls::info_json(&mut o, i),
                            Err(e) => o.push("error", e.as_str()),
                        }
                        o
                    })
                    .collect(),
            ),
        );
        writeln!(out, "{}", j.pretty())?;
    } else {
        writeln!(
            out,
            "{name}: multi-producer {}, {} lanes of {} messages of {} (layout hash {:016x})",
            l.lane_kind,
            l.lanes,
            l.capacity,
            info.type_name,
            info.segment.layout_hash()
        )?;
        for (k, (lane, facts)) in lanes.iter().enumerate() {
            match facts {
                Ok(i) => {
                    let taken = i.taken.map(|t| format!(", {t} taken")).unwrap_or_default();
                    let w = i.segment.writer();
                    let state = if w.alive() { "alive" } else { "free" };
                    writeln!(
                        out,
                        "  lane {k}  {lane}  {} sent{taken}  producer {} {state}  epoch {}",
                        i.version,
                        w.pid(),
                        w.epoch()
                    )?;
                }
                Err(e) => writeln!(out, "  lane {k}  {lane}  {e}")?,
            }
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

fn run_ring(
    args: &InspectArgs,
    name: &str,
    info: &Info,
    layout: &LayoutBuf,
    expected: Option<&LayoutBuf>,
) -> Outcome {
    let messages = newest_messages(name, args.last)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut j = head_json(name, info, layout);
        j.push(
            "messages",
            Json::Array(
                messages
                    .iter()
                    .map(|(n, bytes)| {
                        let mut m = Json::object()
                            .with("number", *n)
                            .with("value", render::to_json(&layout.decode_value_lossy(bytes)));
                        if args.raw {
                            m.push("raw", render::hex(bytes).replace(' ', ""));
                        }
                        m
                    })
                    .collect(),
            ),
        );
        if let Some(p) = expected {
            j.push("expected", crate::expect::json(layout, p));
        }
        writeln!(out, "{}", j.pretty())?;
    } else {
        let style = Style::for_stdout();
        let mut s = facts(name, info, layout, style);
        let held = if info.segment.kind() == SegmentKind::Queue {
            "not taken"
        } else {
            "held"
        };
        s.push_str(&format!(
            "\n{}\n",
            style.bold(&format!(
                "MESSAGES ({} newest {held}, of {} sent)",
                messages.len(),
                info.version
            ))
        ));
        if messages.is_empty() {
            s.push_str("none\n");
        }
        for (n, bytes) in &messages {
            s.push_str(&format!("message {n}\n"));
            for line in value_lines(&layout.decode_value_lossy(bytes), style) {
                s.push_str(&format!("  {line}\n"));
            }
            if args.raw {
                for line in hex_dump(bytes).lines() {
                    s.push_str(&format!("  {line}\n"));
                }
            }
        }
        if let (Some(p), Some(path)) = (expected, &args.expect) {
            s.push_str(&crate::expect::human(path, layout, p, style));
        }
        out.write_all(s.as_bytes())?;
    }
    out.flush()?;
    Ok(exit::OK)
}

/// The facts and the layout table, as `inspect` prints them for every kind.
fn facts(name: &str, info: &Info, layout: &LayoutBuf, style: Style) -> String {
    let writer = if info.segment.writer().alive() {
        style.good("alive")
    } else {
        style.bad("dead")
    };
    let mut facts = vec![
        ("segment", name.to_string()),
        ("kind", info.segment.kind().to_string()),
        (
            "type",
            format!(
                "{} (layout hash {:#018x}, {} bytes, align {}{})",
                scan::type_name(layout),
                info.segment.layout_hash(),
                info.segment.payload_size(),
                layout.align,
                if layout.is_appendable() {
                    ", #[shm(appendable)]"
                } else {
                    ""
                }
            ),
        ),
    ];
    match info.segment.kind() {
        SegmentKind::State => {
            facts.push(("slots", info.segment.slots().to_string()));
            facts.push(("version", info.version.to_string()));
        }
        _ => {
            facts.push(("capacity", format!("{} messages", info.segment.slots())));
            facts.push(("sent", info.version.to_string()));
        }
    }
    if let Some(taken) = info.taken {
        facts.push((
            "taken",
            format!("{taken} ({} waiting)", info.version.saturating_sub(taken)),
        ));
    }
    facts.push((
        "writer",
        format!(
            "pid {} {writer}, epoch {} (creator pid {})",
            info.segment.writer().pid(),
            info.segment.writer().epoch(),
            info.segment.creator_pid()
        ),
    ));
    let mut s = String::new();
    for (k, v) in facts {
        s.push_str(&format!("{}  {v}\n", style.bold(&format!("{k:<8}"))));
    }
    s.push('\n');
    s.push_str(&layout_table(layout));
    s
}

/// The layout as a table: FIELD, TYPE, OFFSET, SIZE, and NOTES (the markers of
/// `#[shm(appendable)]` structs) when any field has one.
pub fn layout_table(layout: &LayoutBuf) -> String {
    let fields = render::layout_rows(layout);
    let notes = fields.iter().any(|r| !r.notes.is_empty());
    let mut head = vec!["FIELD", "TYPE", "OFFSET", "SIZE"];
    if notes {
        head.push("NOTES");
    }
    let mut rows = vec![head.into_iter().map(str::to_string).collect::<Vec<_>>()];
    for row in fields {
        let mut cells = vec![
            row.path,
            row.ty,
            format!("{:>6}", row.offset),
            format!("{:>4}", row.size),
        ];
        if notes {
            cells.push(row.notes);
        }
        rows.push(cells);
    }
    plain_table(&rows)
}

/// The layout rows as JSON: path, type, offset, size, and for fields of appendable structs
/// the markers they have (`appendable`, `deprecated`, `alias`).
pub fn layout_json(layout: &LayoutBuf) -> Json {
    Json::Array(
        render::layout_rows(layout)
            .into_iter()
            .map(|row| {
                let mut j = Json::object()
                    .with("path", row.path)
                    .with("type", row.ty)
                    .with("offset", row.offset)
                    .with("size", row.size);
                if !row.notes.is_empty() {
                    j.push("notes", row.notes);
                }
                j
            })
            .collect(),
    )
}

fn human(
    name: &str,
    info: &Info,
    layout: &LayoutBuf,
    version: u64,
    value: &Value,
    style: Style,
) -> String {
    let mut s = facts(name, info, layout, style);
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
