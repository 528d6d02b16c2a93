//! Whether a segment's stored layout and a program's may share a segment although they differ:
//! two versions of one `#[shm(appendable)]` type, the shorter a prefix of the longer
//! (`docs/segment-format.md`, "Compatibility").

use super::{FieldBuf, LayoutBuf};
use core::cmp::Ordering;

/// How the layout a segment stores relates to the layout of the program that opened it.
///
/// Every typed handle reports it (`compat()`): readers read the common prefix and see the rest
/// of a longer type as zero; writers write it only when allowed to adopt the stored layout
/// ([`Options::adopt_stored_layout`](crate::Options::adopt_stored_layout)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compat {
    /// The same bytes: the same layout hash, or fields that differ only by an
    /// `#[shm(alias)]` rename.
    Exact,
    /// The segment holds a later version of the type, with fields this program does not
    /// have at its end: this program reads (and writes) the prefix it knows.
    SegmentNewer,
    /// The segment holds an earlier version of the type: the fields this program has beyond
    /// its end read as zero.
    SegmentOlder,
}

impl LayoutBuf {
    /// Whether a segment that stores `self` may be used by a program whose type is `program`,
    /// and how: the one compatibility rule of `docs/segment-format.md` ("Compatibility").
    ///
    /// Equal layout hashes are [`Compat::Exact`]. Otherwise both must be structs marked
    /// `#[shm(appendable)]` with the same stable name, and the fields of the shorter one (the
    /// smaller size; for equal sizes, fewer fields) must be the first fields of the longer,
    /// in order, each with the same name (or the other's `#[shm(alias)]`), offset and type;
    /// the longer one's further fields must start at or after the shorter one's size. A
    /// struct field may differ only if it is the shorter one's last field and an appendable
    /// struct that is itself compatible by the same rule.
    ///
    /// The error says, for a person, what differs and why it is refused, e.g. "field `pos` is
    /// `[f64; 3]` at offset 8 in the segment but `[f32; 3]` in this program; appendable types
    /// may only add fields at the end: add a new field instead".
    pub fn compatibility(&self, program: &LayoutBuf) -> Result<Compat, String> {
        if self.layout_hash() == program.layout_hash() {
            return Ok(Compat::Exact);
        }
        match (self.is_appendable(), program.is_appendable()) {
            (true, true) => {}
            (false, false) => {
                return Err(self
                    .first_difference(program)
                    .unwrap_or_else(|| "the layouts differ in what the hash covers".to_string()))
            }
            (seg, _) => {
                let (yes, no) = if seg {
                    ("the segment", "this program")
                } else {
                    ("this program", "the segment")
                };
                return Err(format!(
                    "the type is `#[shm(appendable)]` in {yes} but not in {no}; only two appendable versions of one type may share a segment"
                ));
            }
        }
        let seg_is_short = shorter(self, program);
        same_type("", self, program)?;
        let limit = if seg_is_short {
            self.size
        } else {
            program.size
        };
        Side {
            seg_is_short,
            limit,
        }
        .prefix("", 0, self, program)?;
        Ok(match self.size.cmp(&program.size) {
            Ordering::Less => Compat::SegmentOlder,
            Ordering::Greater => Compat::SegmentNewer,
            Ordering::Equal => Compat::Exact,
        })
    }
}

/// Whether `a` is the shorter of two versions: the smaller size, or for equal sizes fewer
/// fields (ties: `a`).
fn shorter(a: &LayoutBuf, b: &LayoutBuf) -> bool {
    (a.size, a.fields().len()) <= (b.size, b.fields().len())
}

/// Refuses two appendable structs with different stable names.
fn same_type(path: &str, seg: &LayoutBuf, prog: &LayoutBuf) -> Result<(), String> {
    let (s, p) = (stable_name(seg), stable_name(prog));
    if s == p {
        return Ok(());
    }
    Err(format!(
        "{} has {s} in the segment but {p} in this program; a changed stable name makes another type",
        what(path)
    ))
}

fn stable_name(l: &LayoutBuf) -> String {
    match &l.kind {
        super::KindBuf::Struct {
            stable_name: Some(n),
            ..
        } => format!("`#[shm(name = {n:?})]`"),
        _ => "no `#[shm(name)]`".to_string(),
    }
}

/// Which side is the shorter version, and its size: where the longer one's added fields may
/// start.
struct Side {
    seg_is_short: bool,
    limit: u64,
}

impl Side {
    /// Checks that the shorter of the structs `seg` and `prog` (at absolute offset `at`) is a
    /// prefix of the other.
    fn prefix(&self, path: &str, at: u64, seg: &LayoutBuf, prog: &LayoutBuf) -> Result<(), String> {
        let (sf, pf) = (seg.fields(), prog.fields());
        let (short, long) = if self.seg_is_short {
            (sf, pf)
        } else {
            (pf, sf)
        };
        for (i, (s, p)) in sf.iter().zip(pf).enumerate() {
            let (s_at, p_at) = (at.saturating_add(s.offset), at.saturating_add(p.offset));
            if !same_name(s, p) {
                return Err(self.misnamed(path, at, i, sf, pf));
            }
            let sub = join(path, &p.name);
            if s.offset != p.offset {
                return Err(moved(&sub, s_at, p_at));
            }
            if s.layout.layout_hash() == p.layout.layout_hash() {
                continue;
            }
            let last = i + 1 == short.len();
            let grows = if self.seg_is_short {
                shorter(&s.layout, &p.layout)
            } else {
                shorter(&p.layout, &s.layout)
            };
            if last && grows && s.layout.is_appendable() && p.layout.is_appendable() {
                same_type(&sub, &s.layout, &p.layout)?;
                self.prefix(&sub, s_at, &s.layout, &p.layout)?;
                continue;
            }
            let why = if s.layout.struct_name().is_some() && p.layout.struct_name().is_some() {
                if !last {
                    "a nested struct may only grow when it is the last field"
                } else if !(s.layout.is_appendable() && p.layout.is_appendable()) {
                    "a nested struct may only grow when it is `#[shm(appendable)]` too"
                } else {
                    "appendable types may only add fields at the end"
                }
            } else {
                "appendable types may only add fields at the end: add a new field instead"
            };
            return Err(retyped(&sub, s_at, &s.layout, &p.layout, why));
        }
        if short.len() > long.len() {
            let gone = &short[long.len()];
            return Err(self.removed(path, at, gone));
        }
        for extra in &long[short.len()..] {
            let start = at.saturating_add(extra.offset);
            if start < self.limit {
                let (longer, shorter) = self.names();
                return Err(format!(
                    "field `{}` starts at offset {start} in {longer}, inside the {} bytes of {shorter}; appendable types may only add fields at the end",
                    join(path, &extra.name),
                    self.limit
                ));
            }
        }
        Ok(())
    }

    /// The sides as a message names them: (longer, shorter).
    fn names(&self) -> (&'static str, &'static str) {
        if self.seg_is_short {
            ("this program", "the segment")
        } else {
            ("the segment", "this program")
        }
    }

    /// Field `i` has different names on the two sides: an inserted, removed, reordered or
    /// renamed field.
    fn misnamed(&self, path: &str, at: u64, i: usize, sf: &[FieldBuf], pf: &[FieldBuf]) -> String {
        let (s, p) = (&sf[i], &pf[i]);
        let in_prog = pf.iter().find(|q| same_name(s, q));
        let in_seg = sf.iter().find(|q| same_name(q, p));
        let field = |f: &FieldBuf| format!("`{}: {}`", join(path, &f.name), f.layout);
        let at_of = |f: &FieldBuf| at.saturating_add(f.offset);
        match (in_prog, in_seg) {
            (None, Some(_)) => format!(
                "field {} at offset {} in the segment is not in this program, which has `{}` there; appendable types may only add fields at the end, never remove one (mark it `#[shm(deprecated)]` instead) or insert one",
                field(s),
                at_of(s),
                join(path, &p.name)
            ),
            (Some(_), None) => format!(
                "field {} at offset {} in this program is not in the segment, which has `{}` there; appendable types may only add fields at the end, never insert one or remove one (mark it `#[shm(deprecated)]` instead)",
                field(p),
                at_of(p),
                join(path, &s.name)
            ),
            (Some(q), Some(_)) => moved(&join(path, &q.name), at_of(s), at_of(q)),
            (None, None) => {
                let (old, new) = if self.seg_is_short { (s, p) } else { (p, s) };
                let fix = if self.seg_is_short {
                    format!("add `#[shm(alias = {:?})]` if it was renamed", old.name)
                } else {
                    format!(
                        "add `#[shm(alias = {:?})]` to `{}` in the newer version if it was renamed",
                        old.name, new.name
                    )
                };
                format!(
                    "the segment has {} where this program has {} (offset {}); {fix}",
                    field(s),
                    field(p),
                    at_of(p)
                )
            }
        }
    }

    /// The shorter side has a field the longer one does not.
    fn removed(&self, path: &str, at: u64, gone: &FieldBuf) -> String {
        let (longer, shorter) = self.names();
        format!(
            "field `{}: {}` (offset {}) is in {shorter} but not in {longer}; appendable types may only add fields at the end (mark a field `#[shm(deprecated)]` instead of removing it, or give the type a new stable name)",
            join(path, &gone.name),
            gone.layout,
            at.saturating_add(gone.offset)
        )
    }
}

/// Whether `s` (the segment's field) and `p` (this program's) are the same field: the same
/// name, or one's name is the other's alias.
fn same_name(s: &FieldBuf, p: &FieldBuf) -> bool {
    s.name == p.name
        || p.alias.as_deref() == Some(s.name.as_str())
        || s.alias.as_deref() == Some(p.name.as_str())
}

fn moved(path: &str, seg_at: u64, prog_at: u64) -> String {
    format!(
        "field `{path}` is at offset {seg_at} in the segment but at offset {prog_at} in this program; appendable types may only add fields at the end"
    )
}

fn retyped(path: &str, at: u64, seg: &LayoutBuf, prog: &LayoutBuf, why: &str) -> String {
    let (s, p) = (seg.to_string(), prog.to_string());
    let (s, p) = if s == p {
        (
            format!("`{s}` ({} bytes)", seg.size),
            format!("`{p}` ({} bytes)", prog.size),
        )
    } else {
        (format!("`{s}`"), format!("`{p}`"))
    };
    format!("field `{path}` is {s} at offset {at} in the segment but {p} in this program; {why}")
}

fn what(path: &str) -> String {
    if path.is_empty() {
        "the type".to_string()
    } else {
        format!("field `{path}`")
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}
