//! `shm ls`: the segments in /dev/shm.

use crate::cli::LsArgs;
use crate::json::Json;
use crate::output::{exit, table, Failure, Outcome, Style};
use crate::scan::{self, Entry, Info, Status};
use std::io::Write;

/// Runs `shm ls`.
pub fn run(args: &LsArgs) -> Outcome {
    let prefix = scan::normalize_prefix(args.prefix.as_deref());
    let entries = scan::scan(prefix.as_deref())
        .map_err(|e| Failure::new(exit::OTHER, format!("reading /dev/shm: {e}")))?;
    let shown: Vec<&Entry> = entries
        .iter()
        .filter(|e| args.all || matches!(e.status, Status::Ours(_) | Status::Damaged(_)))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let list = Json::Array(
            shown
                .iter()
                .map(|e| {
                    let mut j = entry_json(e);
                    lanes_json(&mut j, e, &shown);
                    j
                })
                .collect(),
        );
        writeln!(out, "{}", list.pretty())?;
    } else if shown.is_empty() {
        match &prefix {
            Some(p) => writeln!(out, "no segments in /dev/shm whose name starts with {p}")?,
            None => writeln!(out, "no segments in /dev/shm")?,
        }
    } else {
        out.write_all(human(&shown, Style::for_stdout()).as_bytes())?;
    }
    out.flush()?;
    Ok(exit::OK)
}

/// One entry as JSON.
pub fn entry_json(e: &Entry) -> Json {
    let mut j = Json::object().with("name", e.name.as_str());
    match &e.status {
        Status::Ours(info) => {
            j.push("status", "ok");
            j.push("reason", Json::Null);
            info_json(&mut j, info);
            j.push(
                "mirror_of",
                scan::mirror_of(&e.name).map_or(Json::Null, Json::from),
            );
        }
        Status::Damaged(why) | Status::Unreadable(why) | Status::Foreign(why) => {
            let status = match e.status {
                Status::Damaged(_) => "damaged",
                Status::Unreadable(_) => "unreadable",
                _ => "foreign",
            };
            j.push("status", status);
            j.push("reason", why.as_str());
        }
    }
    j
}

/// Adds what a directory's lanes are (`lanes`), or which directory a lane belongs to
/// (`lane_of`, `lane`), to object `j` (null when neither).
fn lanes_json(j: &mut Json, e: &Entry, entries: &[&Entry]) {
    match &e.status {
        Status::Ours(Info { lanes: Some(l), .. }) => j.push(
            "lanes",
            Json::object()
                .with("kind", l.lane_kind.to_string())
                .with("count", l.lanes)
                .with("capacity", l.capacity)
                .with(
                    "names",
                    Json::Array(l.lane_names().into_iter().map(Json::from).collect()),
                ),
        ),
        _ => j.push("lanes", Json::Null),
    }
    match scan::lane_of(&e.name, entries) {
        Some((dir, lane)) => {
            j.push("lane_of", dir);
            j.push("lane", lane);
        }
        None => {
            j.push("lane_of", Json::Null);
            j.push("lane", Json::Null);
        }
    }
}

/// Adds a segment's header facts to object `j`.
pub fn info_json(j: &mut Json, info: &Info) {
    j.push("kind", info.segment.kind().to_string());
    j.push("type", info.type_name.as_str());
    j.push(
        "layout_hash",
        format!("{:#018x}", info.segment.layout_hash()),
    );
    j.push("payload_size", info.segment.payload_size());
    j.push("slots", info.segment.slots());
    j.push("version", info.version);
    j.push("taken", info.taken.map_or(Json::Null, Json::from));
    j.push("writer_pid", info.segment.writer().pid());
    j.push("writer_alive", info.segment.writer().alive());
    j.push("creator_pid", info.segment.creator_pid());
    j.push("epoch", info.segment.writer().epoch());
}

fn human(entries: &[&Entry], style: Style) -> String {
    let mut head: Vec<String> = [
        "NAME", "KIND", "TYPE", "HASH", "SIZE", "SLOTS", "VERSION", "WRITER", "EPOCH",
    ]
    .map(str::to_string)
    .to_vec();
    // A column for mirrors of other hosts' segments, when there are any.
    let mirrors = entries
        .iter()
        .any(|e| matches!(e.status, Status::Ours(_)) && scan::mirror_of(&e.name).is_some());
    if mirrors {
        head.push("MIRROR OF".into());
    }
    // A column for multi-producer streams and queues and their lanes, when there are any.
    let lanes = entries
        .iter()
        .any(|e| scan::lanes_cell(e, entries).is_some());
    if lanes {
        head.push("LANES".into());
    }
    let mut plain = vec![head.clone()];
    let mut painted = vec![head.iter().map(|h| style.bold(h)).collect()];
    for e in entries {
        let (p, c): (Vec<String>, Vec<String>) = match &e.status {
            Status::Ours(i) => {
                let (state, paint) = if i.segment.writer().alive() {
                    ("alive", style.good("alive"))
                } else {
                    ("dead", style.bad("dead"))
                };
                let version = match i.taken {
                    Some(taken) => format!("{} ({taken} taken)", i.version),
                    None => i.version.to_string(),
                };
                let cells = [
                    e.name.clone(),
                    i.segment.kind().to_string(),
                    i.type_name.clone(),
                    format!("{:016x}", i.segment.layout_hash()),
                    i.segment.payload_size().to_string(),
                    i.segment.slots().to_string(),
                    version,
                ];
                let mut p = cells.to_vec();
                p.push(format!("{} {state}", i.segment.writer().pid()));
                p.push(i.segment.writer().epoch().to_string());
                let mut c = cells.to_vec();
                c.push(format!("{} {paint}", i.segment.writer().pid()));
                c.push(i.segment.writer().epoch().to_string());
                if mirrors {
                    let of = scan::mirror_of(&e.name).unwrap_or_default();
                    p.push(of.clone());
                    c.push(of);
                }
                if lanes {
                    let cell = scan::lanes_cell(e, entries).unwrap_or_default();
                    p.push(cell.clone());
                    c.push(cell);
                }
                (p, c)
            }
            Status::Damaged(why) => {
                let text = format!("damaged: {why}");
                (
                    vec![e.name.clone(), text.clone()],
                    vec![e.name.clone(), style.bad(&text)],
                )
            }
            Status::Unreadable(why) | Status::Foreign(why) => {
                let label = if matches!(e.status, Status::Foreign(_)) {
                    "not a segment"
                } else {
                    "unreadable"
                };
                let text = format!("{label}: {why}");
                (
                    vec![e.name.clone(), text.clone()],
                    vec![e.name.clone(), style.dim(&text)],
                )
            }
        };
        plain.push(p);
        painted.push(c);
    }
    table(&painted, &plain)
}
