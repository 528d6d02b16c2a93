//! Comparing two layouts: where the layout a segment stores first differs from a program's,
//! said for a person.

use super::{KindBuf, LayoutBuf};

impl LayoutBuf {
    /// Where `self` (the layout stored in a segment) first differs from `program` (the layout
    /// compiled into this program), said for a person; `None` when they are equal in
    /// everything the layout hash covers (so two structs that differ only in their Rust names
    /// are equal).
    ///
    /// The text names the first field that differs by its path from the top of the type
    /// (`pos`, `inner.x`, `items[0].id`), with byte offsets counted from the start of the type:
    ///
    /// - a retyped field: "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]`
    ///   at offset 8 in this program";
    /// - a renamed or reordered field: "the segment has field `status: u32` at offset 32 where
    ///   this program has `state: u32` at offset 32";
    /// - an added or removed field: "the type has 4 fields in the segment but 5 in this
    ///   program; the first extra one is `extra: u64` at offset 40";
    /// - a changed stable name: "the type has `#[shm(name = \"Pose\")]` in the segment but no
    ///   `#[shm(name)]` in this program".
    ///
    /// Where the two types would print the same (two versions of a struct called `Inner`), the
    /// search goes into the struct, or into the first element of an array or
    /// [`FixedVec`](crate::FixedVec) of structs, and sizes and alignments are added when even
    /// that does not tell them apart.
    pub fn first_difference(&self, program: &LayoutBuf) -> Option<String> {
        if same_shape(self, program) {
            return None;
        }
        Some(diff_at("", 0, 0, self, program))
    }
}

/// Describes how `seg` (at absolute offset `seg_at` in the segment's type) differs from `prog`
/// (at `prog_at` in this program's type, the same place); the two must differ. A segment's
/// descriptor comes from another process, so offsets are added without trusting them not to
/// overflow.
fn diff_at(path: &str, seg_at: u64, prog_at: u64, seg: &LayoutBuf, prog: &LayoutBuf) -> String {
    match (&seg.kind, &prog.kind) {
        (
            KindBuf::Struct {
                fields: sf,
                stable_name: sn,
                ..
            },
            KindBuf::Struct {
                fields: pf,
                stable_name: pn,
                ..
            },
        ) => {
            for (s, p) in sf.iter().zip(pf) {
                let (s_at, p_at) = (
                    seg_at.saturating_add(s.offset),
                    prog_at.saturating_add(p.offset),
                );
                if s.name != p.name {
                    return format!(
                        "the segment has field `{}: {}` at offset {s_at} where this program has `{}: {}` at offset {p_at}",
                        join(path, &s.name),
                        s.layout,
                        join(path, &p.name),
                        p.layout
                    );
                }
                let sub = join(path, &s.name);
                if s.offset != p.offset {
                    return mismatch(&sub, s_at, p_at, &s.layout, &p.layout);
                }
                if !same_shape(&s.layout, &p.layout) {
                    return diff_at(&sub, s_at, p_at, &s.layout, &p.layout);
                }
            }
            if sf.len() != pf.len() {
                let (extra, at) = if sf.len() > pf.len() {
                    (&sf[pf.len()], seg_at)
                } else {
                    (&pf[sf.len()], prog_at)
                };
                return format!(
                    "{} has {} fields in the segment but {} in this program; the first extra one is `{}: {}` at offset {}",
                    what(path),
                    sf.len(),
                    pf.len(),
                    join(path, &extra.name),
                    extra.layout,
                    at.saturating_add(extra.offset)
                );
            }
            if sn != pn {
                return format!(
                    "{} has {} in the segment but {} in this program",
                    what(path),
                    shm_name(sn.as_deref()),
                    shm_name(pn.as_deref())
                );
            }
        }
        // Same length, different elements that may print alike: look into the first element.
        (
            KindBuf::Array {
                len: sl,
                element: se,
            },
            KindBuf::Array {
                len: pl,
                element: pe,
            },
        ) if sl == pl && holds_struct(se) && holds_struct(pe) && !same_shape(se, pe) => {
            return diff_at(&format!("{path}[0]"), seg_at, prog_at, se, pe);
        }
        (
            KindBuf::FixedVec {
                capacity: sc,
                element: se,
            },
            KindBuf::FixedVec {
                capacity: pc,
                element: pe,
            },
        ) if sc == pc && holds_struct(se) && holds_struct(pe) && !same_shape(se, pe) => {
            // The elements start after the 8-byte length.
            let (s_at, p_at) = (seg_at.saturating_add(8), prog_at.saturating_add(8));
            return diff_at(&format!("{path}[0]"), s_at, p_at, se, pe);
        }
        _ => {}
    }
    mismatch(path, seg_at, prog_at, seg, prog)
}

/// Names the type and offset of `path` on both sides.
fn mismatch(path: &str, seg_at: u64, prog_at: u64, seg: &LayoutBuf, prog: &LayoutBuf) -> String {
    // Different types that print alike are told apart by size and alignment.
    let sized = !same_shape(seg, prog) && seg.to_string() == prog.to_string();
    let (s, p) = (shown(seg, sized), shown(prog, sized));
    if path.is_empty() {
        format!("the type is {s} in the segment but {p} in this program")
    } else {
        format!(
            "{} is {s} at offset {seg_at} in the segment but {p} at offset {prog_at} in this program",
            what(path)
        )
    }
}

fn shown(l: &LayoutBuf, sized: bool) -> String {
    if sized {
        format!("`{l}` (size {}, align {})", l.size, l.align)
    } else {
        format!("`{l}`")
    }
}

/// Equal in everything the hash covers (Rust struct names aside).
fn same_shape(a: &LayoutBuf, b: &LayoutBuf) -> bool {
    a.layout_hash() == b.layout_hash()
}

/// Whether the layout is a struct or an array or `FixedVec` of them: a type whose printed name
/// may hide a difference.
fn holds_struct(l: &LayoutBuf) -> bool {
    match &l.kind {
        KindBuf::Struct { .. } => true,
        KindBuf::Array { element, .. } | KindBuf::FixedVec { element, .. } => holds_struct(element),
        _ => false,
    }
}

fn what(path: &str) -> String {
    if path.is_empty() {
        "the type".to_string()
    } else if path.starts_with('[') {
        format!("element `{path}`")
    } else {
        format!("field `{path}`")
    }
}

fn shm_name(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("`#[shm(name = {n:?})]`"),
        None => "no `#[shm(name)]`".to_string(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
