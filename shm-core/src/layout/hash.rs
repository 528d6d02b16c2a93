//! The layout hash: FNV-1a-64 over the encoding version, the byte order and a layout,
//! recursively.
//!
//! One walk, written once and instantiated twice: as a `const fn` over [`Layout`] (what
//! `LAYOUT_HASH` is computed with, at compile time) and as a function over [`LayoutBuf`] (the
//! layout a segment stores). The two must agree bit for bit, which is why neither is written by
//! hand. The encoding is specified in `docs/segment-format.md`, "The layout hash".

use super::{Kind, KindBuf, Layout, LayoutBuf};
use crate::format::LAYOUT_ENCODING_VERSION;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The byte (ASCII `L` or `B`) that records the target's byte order in the hash.
const BYTE_ORDER: u8 = if cfg!(target_endian = "little") {
    b'L'
} else {
    b'B'
};

/// An FNV-1a-64 state, usable in `const fn`s.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    /// The state after the prefix every layout hash starts with: the encoding version and the
    /// byte order.
    const fn start() -> Fnv {
        Fnv(FNV_OFFSET)
            .bytes(&LAYOUT_ENCODING_VERSION.to_le_bytes())
            .bytes(&[BYTE_ORDER])
    }

    const fn bytes(mut self, bytes: &[u8]) -> Fnv {
        let mut i = 0;
        while i < bytes.len() {
            self.0 ^= bytes[i] as u64;
            self.0 = self.0.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        self
    }

    const fn u64(self, v: u64) -> Fnv {
        self.bytes(&v.to_le_bytes())
    }

    /// A length-prefixed string (the length as a u64).
    const fn str(self, s: &str) -> Fnv {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
}

/// Defines `$name`, which feeds one layout node (of type `$node`, whose kind enum is `$kind`)
/// into the hash, recursively. A trailing `const` makes it a `const fn`, hence the `while`
/// loop.
macro_rules! layout_walk {
    ($name:ident(&$node:ty) where kind: $kind:ident $(, $const:ident)?) => {
        $($const)? fn $name(mut h: Fnv, l: &$node) -> Fnv {
            h = h.bytes(&[l.kind.tag()]).u64(l.size as u64).u64(l.align as u64);
            match &l.kind {
                $kind::Primitive(p) => h.bytes(&[p.tag()]),
                $kind::Array { len, element } => $name(h.u64(*len as u64), element),
                $kind::Struct {
                    stable_name,
                    fields,
                    ..
                } => {
                    h = match stable_name {
                        Some(n) => h.bytes(&[1]).str(n),
                        None => h.bytes(&[0]),
                    };
                    h = h.u64(fields.len() as u64);
                    let mut i = 0;
                    while i < fields.len() {
                        h = h.str(&fields[i].name).u64(fields[i].offset as u64);
                        h = $name(h, &fields[i].layout);
                        i += 1;
                    }
                    h
                }
                $kind::FixedStr { capacity } => h.u64(*capacity as u64),
                $kind::FixedVec { capacity, element } => $name(h.u64(*capacity as u64), element),
                $kind::Bool => h,
            }
        }
    };
}

layout_walk!(walk_layout(&Layout) where kind: Kind, const);
layout_walk!(walk_layout_buf(&LayoutBuf) where kind: KindBuf);

/// The layout hash of a compiled-in layout.
pub(super) const fn of_layout(layout: &Layout) -> u64 {
    walk_layout(Fnv::start(), layout).0
}

/// The layout hash of an owned layout; equal to [`of_layout`] of the layout it was built from.
pub(super) fn of_layout_buf(layout: &LayoutBuf) -> u64 {
    walk_layout_buf(Fnv::start(), layout).0
}
