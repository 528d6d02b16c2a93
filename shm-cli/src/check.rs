//! `shm check`: validates a segment against docs/segment-format.md, reading its file directly,
//! so that a damaged segment (which `shm_core` refuses to open) can still be examined.

use crate::cli::CheckArgs;
use crate::json::Json;
use crate::output::{exit, Failure, Outcome, Style};
use crate::segment_file::{
    normalize_name, Geometry, RawHeader, SegmentFile, HEADER_SIZE, MAGIC, MAX_DESCRIPTOR,
    MAX_SLOTS, MAX_STREAM_CAPACITY, STATE_CREATING, STATE_READY,
};
use shm_core::LayoutBuf;
use std::io::Write;

/// Snapshots of `published` and the sequence words taken before giving up on a writer too fast
/// to catch between two publishes.
const SNAPSHOT_ATTEMPTS: u32 = 10_000;

/// One check's result.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// The checks run so far.
#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name,
            ok,
            detail: detail.into(),
        });
        ok
    }

    fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Runs `shm check`.
pub fn run(args: &CheckArgs) -> Outcome {
    let name = normalize_name(&args.name).map_err(|m| Failure::new(exit::USAGE, m))?;
    let expected = args
        .expect
        .as_deref()
        .map(crate::expect::load)
        .transpose()?;
    let file = SegmentFile::open(&name).map_err(|e| Failure::file(&name, &e))?;
    let mut report = Report::default();
    let mut code = check(&file, &mut report, expected.as_ref());
    if file.truncated() {
        report.add(
            "file size",
            false,
            "the file shrank while it was being read (a peer truncated it)",
        );
        code = exit::DAMAGED;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let checks = report
            .checks
            .iter()
            .map(|c| {
                Json::object()
                    .with("check", c.name)
                    .with("ok", c.ok)
                    .with("detail", c.detail.as_str())
            })
            .collect::<Vec<_>>();
        let status = match code {
            exit::OK => "healthy",
            exit::DAMAGED => "damaged",
            exit::OTHER => "unexpected_layout",
            _ => "not_ours",
        };
        let j = Json::object()
            .with("name", name.as_str())
            .with("status", status)
            .with("exit_code", u32::from(code))
            .with("checks", Json::Array(checks));
        writeln!(out, "{}", j.pretty())?;
    } else {
        let style = Style::for_stdout();
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &report.checks {
            let verdict = if c.ok {
                style.good("ok  ")
            } else {
                style.bad("FAIL")
            };
            writeln!(out, "{verdict}  {:<width$}  {}", c.name, c.detail)?;
        }
        let summary = match code {
            exit::OK => style.good("healthy"),
            exit::DAMAGED => style.bad("damaged"),
            exit::OTHER => {
                style.bad("healthy, but a program of the expected layout may not open it")
            }
            _ => style.bad("not a segment of this format"),
        };
        writeln!(out, "{name}: {summary}")?;
    }
    out.flush()?;
    Ok(code)
}

/// Runs every check that the earlier ones make meaningful, and with `expected` whether a
/// program of that layout may open the segment; returns the exit code (`OTHER` for a healthy
/// segment the expected layout may not open).
fn check(file: &SegmentFile, r: &mut Report, expected: Option<&LayoutBuf>) -> u8 {
    match file.magic() {
        Some(MAGIC) => {
            r.add("magic", true, "\"SHMSTATE\"");
        }
        Some(0) if file.len() >= HEADER_SIZE => {
            r.add(
                "magic",
                false,
                "zero: the creator has not finished creating it, or died doing so",
            );
            return exit::DAMAGED;
        }
        Some(m) => {
            r.add(
                "magic",
                false,
                format!("{m:#018x}: not a segment of this format"),
            );
            return exit::NOT_FOUND;
        }
        None => {
            r.add(
                "magic",
                false,
                format!(
                    "the file has {} bytes: not a segment of this format",
                    file.len()
                ),
            );
            return exit::NOT_FOUND;
        }
    };
    let Some(h) = file.header() else {
        r.add(
            "header",
            false,
            format!(
                "the file has {} bytes, less than the {HEADER_SIZE}-byte header",
                file.len()
            ),
        );
        return exit::DAMAGED;
    };
    r.add(
        "format version",
        h.format_version == shm_core::FORMAT_VERSION,
        format!(
            "{} (this tool reads version {})",
            h.format_version,
            shm_core::FORMAT_VERSION
        ),
    );
    let state = match h.state {
        STATE_READY => "ready".to_string(),
        STATE_CREATING => "creating: the creator has not finished, or died doing so".to_string(),
        s => format!("{s}: neither creating (0) nor ready (1)"),
    };
    r.add("state", h.state == STATE_READY, state);
    let kind_ok = r.add(
        "kind",
        h.kind <= 3,
        match h.kind {
            0 => "shared state".to_string(),
            1 => "broadcast stream".to_string(),
            2 => "queue".to_string(),
            3 => "multi-producer lanes directory (each lane is a segment of its own: check it by name)"
                .to_string(),
            k => format!(
                "{k}: not a kind this tool knows (0 state, 1 stream, 2 queue, 3 lanes directory)"
            ),
        },
    );
    let geometry_ok = kind_ok && check_geometry(file, &h, r);
    // The descriptor is looked for where the header says, even if the geometry is wrong: it
    // may still say what the segment was meant to hold.
    let layout = if h.descriptor_len <= MAX_DESCRIPTOR {
        check_descriptor(file, &h, r)
    } else {
        None
    };
    if geometry_ok && h.format_version == shm_core::FORMAT_VERSION {
        check_slots(file, &h, r);
    }
    writer(file, &h, layout.as_ref(), r);
    let healthy = r.healthy();
    if let (Some(program), Some(stored)) = (expected, &layout) {
        let ok = crate::expect::verdict(stored, program).is_ok();
        r.add(
            "expected layout",
            ok,
            crate::expect::verdict_text(stored, program),
        );
        if healthy && !ok {
            return exit::OTHER;
        }
    }
    if healthy {
        exit::OK
    } else {
        exit::DAMAGED
    }
}

/// Slot count, descriptor length and every offset against the values recomputed from the
/// payload size; `total_size` against the file. True if the geometry can be trusted.
fn check_geometry(file: &SegmentFile, h: &RawHeader, r: &mut Report) -> bool {
    let ring = h.kind != 0;
    let max_slots = if ring { MAX_STREAM_CAPACITY } else { MAX_SLOTS };
    let slots_ok = r.add(
        "slot count",
        (1..=max_slots).contains(&u64::from(h.slot_count)),
        format!("{} (1 to {max_slots})", h.slot_count),
    );
    let desc_ok = r.add(
        "descriptor length",
        h.descriptor_len <= MAX_DESCRIPTOR && h.descriptor_len > 0,
        format!("{} bytes (1 to {MAX_DESCRIPTOR})", h.descriptor_len),
    );
    if !(slots_ok && desc_ok) {
        return false;
    }
    let Some(g) = Geometry::compute(
        h.payload_size,
        u64::from(h.slot_count),
        h.descriptor_len,
        ring,
    ) else {
        r.add(
            "geometry",
            false,
            format!(
                "payload size {} with {} slots overflows",
                h.payload_size, h.slot_count
            ),
        );
        return false;
    };
    let stored = (
        h.slots_offset,
        h.slot_stride,
        h.descriptor_offset,
        h.total_size,
    );
    let expected = (
        g.slots_offset,
        g.slot_stride,
        g.descriptor_offset,
        g.total_size,
    );
    let describe = |(a, b, c, d): (u64, u64, u64, u64)| {
        format!("slots_offset {a}, slot_stride {b}, descriptor_offset {c}, total_size {d}")
    };
    let geometry_ok = if stored == expected {
        r.add(
            "geometry",
            true,
            format!(
                "{} (recomputed from payload size {})",
                describe(stored),
                h.payload_size
            ),
        )
    } else {
        r.add(
            "geometry",
            false,
            format!(
                "stored {}; payload size {} with {} slots gives {}",
                describe(stored),
                h.payload_size,
                h.slot_count,
                describe(expected)
            ),
        )
    };
    let size_ok = r.add(
        "file size",
        h.total_size <= file.len(),
        format!("{} bytes, total_size {}", file.len(), h.total_size),
    );
    geometry_ok && size_ok
}

/// The descriptor decodes, its hash equals the stored one, and the payload size and alignment
/// agree with it. The decoded layout, if it decodes.
fn check_descriptor(file: &SegmentFile, h: &RawHeader, r: &mut Report) -> Option<LayoutBuf> {
    let Some(bytes) = file.bytes(h.descriptor_offset, h.descriptor_len) else {
        r.add(
            "descriptor",
            false,
            format!(
                "bytes {}..+{} are past the end of the file",
                h.descriptor_offset, h.descriptor_len
            ),
        );
        return None;
    };
    let layout = match LayoutBuf::decode(&bytes) {
        Ok(l) => l,
        Err(e) => {
            r.add("descriptor", false, format!("does not decode: {e}"));
            return None;
        }
    };
    let what = match layout.struct_name() {
        Some(n) if layout.is_appendable() => format!(
            "struct {n}, {} fields, #[shm(appendable)]",
            layout.fields().len()
        ),
        Some(n) => format!("struct {n}, {} fields", layout.fields().len()),
        None => layout.to_string(),
    };
    r.add("descriptor", true, format!("decodes: {what}"));
    let hash = layout.layout_hash();
    r.add(
        "layout hash",
        hash == h.layout_hash,
        if hash == h.layout_hash {
            format!("{hash:#018x} matches the descriptor")
        } else {
            format!(
                "stored {:#018x}, the descriptor hashes to {hash:#018x}",
                h.layout_hash
            )
        },
    );
    r.add(
        "payload size",
        layout.size == h.payload_size,
        format!("{} bytes, descriptor says {}", h.payload_size, layout.size),
    );
    r.add(
        "payload align",
        layout.align == u64::from(h.payload_align),
        format!("{}, descriptor says {}", h.payload_align, layout.align),
    );
    Some(layout)
}

/// A consistent snapshot of `published` and every slot's sequence word: taken between two
/// loads of `published` that agree, so that only the slot being written may have moved.
fn snapshot(file: &SegmentFile, h: &RawHeader) -> Option<(u64, Vec<u64>)> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let before = file.published()?;
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let seqs: Option<Vec<u64>> = (0..u64::from(h.slot_count))
            .map(|i| file.u64_at(h.slots_offset + i * h.slot_stride))
            .collect();
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        if file.published()? == before {
            return Some((before, seqs?));
        }
    }
    None
}

/// Each slot's sequence word against what the protocol allows for the published version.
fn check_slots(file: &SegmentFile, h: &RawHeader, r: &mut Report) {
    let Some((published, seqs)) = snapshot(file, h) else {
        r.add(
            "slot sequences",
            true,
            "not checked: the writer published on every attempt to read them",
        );
        return;
    };
    let n = u64::from(h.slot_count);
    // Streams and queues number messages from 1; state has an initial version 0.
    let ring = h.kind != 0;
    let unit = if ring { "message" } else { "version" };
    let next = published.checked_add(1);
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for (i, &seq) in seqs.iter().enumerate() {
        let i = i as u64;
        // The slot being written next (or, after a crash, left half-written) may hold the
        // next version, complete or not.
        let in_flight = next.filter(|v| v % n == i).and_then(|v| {
            let odd = v.checked_mul(2)?.checked_add(1)?;
            Some((odd, odd.checked_add(1)?))
        });
        // Otherwise the slot holds the newest published version that maps to it, if any.
        let newest = if i <= published {
            Some(published - (published - i) % n).filter(|&v| !ring || v > 0)
        } else {
            None
        };
        let expected = newest.and_then(|v| v.checked_mul(2)?.checked_add(2));
        if Some(seq) == expected {
            continue;
        }
        match in_flight {
            Some((odd, _)) if seq == odd => notes.push(format!(
                "slot {i} is odd ({seq}): {unit} {} is being written, or its writer died mid-write",
                published + 1
            )),
            Some((_, even)) if seq == even => notes.push(format!(
                "slot {i} holds {unit} {} complete, not yet published",
                published + 1
            )),
            _ if seq == 0 && newest.is_none() => {}
            _ => problems.push(format!(
                "slot {i}: sequence {seq}, expected {}{}",
                expected.map_or("0 (never written)".to_string(), |e| e.to_string()),
                in_flight.map_or(String::new(), |(odd, even)| format!(", {odd} or {even}"))
            )),
        }
    }
    if n >= 2 && !(ring && published == 0) {
        let slot = published % n;
        let seq = seqs[slot as usize];
        let expected = published.checked_mul(2).and_then(|v| v.checked_add(2));
        r.add(
            "published slot",
            Some(seq) == expected,
            format!(
                "{unit} {published} in slot {slot}: sequence {seq}, expected {}",
                expected.map_or("(overflow)".to_string(), |e| e.to_string())
            ),
        );
    }
    let mut detail = format!(
        "{} slot(s), published {unit} {published}: {}",
        n,
        seqs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for note in notes.iter().chain(&problems) {
        detail.push_str("; ");
        detail.push_str(note);
    }
    r.add("slot sequences", problems.is_empty(), detail);
    if h.kind == 2 {
        // A queue's consumer never takes a message that was not sent.
        if let Some(consumed) = file.u64_at(crate::segment_file::offset::CONSUMED) {
            r.add(
                "consumer position",
                consumed <= published,
                format!("{consumed} taken of {published} sent"),
            );
        }
    }
}

/// Writer facts, informative (never a failure): pid, epoch and whether the lease is held.
fn writer(file: &SegmentFile, h: &RawHeader, layout: Option<&LayoutBuf>, r: &mut Report) {
    let alive = match file.writer_lease_held() {
        Ok(true) => "alive",
        Ok(false) => "dead",
        Err(_) => "unknown",
    };
    let ty = layout.map_or(String::new(), |l| {
        format!(", type {}", crate::scan::type_name(l))
    });
    r.add(
        "writer",
        true,
        format!(
            "pid {} {alive}, epoch {}, creator pid {}{ty}",
            h.writer_pid, h.writer_epoch, h.creator_pid
        ),
    );
}
