//! `--expect FILE` of `shm inspect` and `shm check`: a program's layout, as a JSON export
//! (`shm export`, or `shm_core::export::json` of the Rust type), compared with the layout a
//! segment stores by the rule of "Compatibility" in docs/segment-format.md.

use crate::json::Json;
use crate::output::{exit, Failure, Style};
use shm_core::{Compat, LayoutBuf};
use std::path::Path;

/// The program layout in the JSON export `path`: its `descriptor`, which must decode and, if
/// the file gives a `layout_hash`, have that hash.
pub fn load(path: &Path) -> Result<LayoutBuf, Failure> {
    let fail =
        |why: String| Failure::new(exit::USAGE, format!("--expect {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let hex = string_value(&text, "descriptor").ok_or_else(|| {
        fail("no \"descriptor\" (a JSON layout export, as `shm export` writes it)".into())
    })?;
    let bytes = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .filter(|_| hex.len() % 2 == 0)
        .ok_or_else(|| fail("the descriptor is not hexadecimal".into()))?;
    let layout = LayoutBuf::decode(&bytes)
        .map_err(|e| fail(format!("the descriptor does not decode: {e}")))?;
    if let Some(claimed) = string_value(&text, "layout_hash") {
        let hash = format!("{:#018x}", layout.layout_hash());
        if claimed != hash {
            return Err(fail(format!(
                "the descriptor has layout hash {hash} but the file says {claimed}"
            )));
        }
    }
    Ok(layout)
}

/// The string value of the first `"key": "..."` in `text` (the export's values are plain
/// hexadecimal: no escapes).
fn string_value(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The verdict of the rule for a segment storing `stored`, opened by a program of `program`.
pub fn verdict(stored: &LayoutBuf, program: &LayoutBuf) -> Result<Compat, String> {
    stored.compatibility(program)
}

/// The verdict in words.
pub fn verdict_text(stored: &LayoutBuf, program: &LayoutBuf) -> String {
    match verdict(stored, program) {
        Ok(Compat::SegmentNewer) => format!(
            "compatible: SegmentNewer (the segment holds a later version; this program reads its first {} bytes)",
            program.size
        ),
        Ok(Compat::SegmentOlder) => format!(
            "compatible: SegmentOlder (the segment holds an earlier version; this program's bytes past {} read as zero)",
            stored.size
        ),
        Ok(_) => "compatible: Exact (the same bytes)".to_string(),
        Err(why) => format!("refused: {why}"),
    }
}

/// The program layout and the verdict, as `inspect` prints them after the segment's.
pub fn human(path: &Path, stored: &LayoutBuf, program: &LayoutBuf, style: Style) -> String {
    let mut s = format!(
        "\n{}\n",
        style.bold(&format!("EXPECTED LAYOUT ({})", path.display()))
    );
    s.push_str(&format!(
        "{}  {} (layout hash {:#018x}, {} bytes, align {}{})\n\n",
        style.bold("type    "),
        crate::scan::type_name(program),
        program.layout_hash(),
        program.size,
        program.align,
        if program.is_appendable() {
            ", #[shm(appendable)]"
        } else {
            ""
        }
    ));
    s.push_str(&crate::inspect::layout_table(program));
    s.push_str(&format!(
        "\n{}  {}\n",
        style.bold("verdict "),
        verdict_text(stored, program)
    ));
    s
}

/// The program layout and the verdict as JSON: `layout_hash`, `payload_size`, `appendable`,
/// `layout` (rows as `inspect` gives them), and `compat` (`"Exact"`, `"SegmentNewer"`,
/// `"SegmentOlder"`, or null) with `refused` (the reason, or null).
pub fn json(stored: &LayoutBuf, program: &LayoutBuf) -> Json {
    let (compat, refused) = match verdict(stored, program) {
        Ok(c) => (Json::from(format!("{c:?}")), Json::Null),
        Err(why) => (Json::Null, Json::from(why)),
    };
    Json::object()
        .with("layout_hash", format!("{:#018x}", program.layout_hash()))
        .with("payload_size", program.size)
        .with("appendable", program.is_appendable())
        .with("layout", crate::inspect::layout_json(program))
        .with("compat", compat)
        .with("refused", refused)
}
