//! What the bridge sends over Zenoh, and the key expressions it sends it under.
//!
//! Every segment `/NAME` exported by the bridge `ID` lives under `PREFIX/ID/NAME` (the prefix
//! is `shm` unless configured):
//!
//! - `PREFIX/ID/NAME/layout`, a queryable: an [`Announcement`] (format version, kind, the
//!   segment's incarnation, layout hash, payload size and alignment, slot count, the stored descriptor's bytes, the epoch and
//!   the newest version or message number).
//! - `PREFIX/ID/NAME/data`, publications: for state, a [`StateUpdate`] (epoch, version, the
//!   payload bytes) per new version, and a queryable answering with the current one; for a
//!   stream, a [`Batch`] of numbered messages.
//! - `PREFIX/ID/NAME/alive/EPOCH`, a liveliness token held while the segment has a live writer.
//!
//! All integers are little-endian. Decoding treats the bytes as hostile: a remote peer may send
//! anything, so every length is checked and nothing is allocated from an unchecked size.

use shm_core::{LayoutBuf, SegmentKind};

/// Version of this wire format, the first field of an [`Announcement`]; a bridge refuses
/// another.
pub const WIRE_VERSION: u32 = 1;

/// The key expression of a segment's `what` (`layout`, `data`, `alive`): `PREFIX/ID/NAME/what`,
/// `NAME` without its leading slash.
pub fn key(prefix: &str, id: &str, name: &str, what: &str) -> String {
    format!("{prefix}/{id}/{}/{what}", name.trim_start_matches('/'))
}

/// Whether `chunk` can be one chunk of a key expression: not empty, no `/`, none of Zenoh's
/// wildcard or reserved characters (`*`, `$`, `?`, `#`), and not starting with `@` (Zenoh's
/// verbatim chunks). Host ids and exported names (without their slash) must be.
pub fn is_key_chunk(chunk: &str) -> bool {
    !chunk.is_empty() && !chunk.starts_with('@') && !chunk.contains(['/', '*', '$', '?', '#'])
}

/// A segment's description, served by the `layout` queryable.
#[derive(Clone, Debug, PartialEq)]
pub struct Announcement {
    /// The segment format version of the exporting host (`shm_core::FORMAT_VERSION`).
    pub format_version: u32,
    /// Which incarnation of the segment this is on the exporting host (its inode there): it
    /// changes when the segment is removed and created again (its versions or message
    /// numbers start over), not when the exporting bridge restarts.
    pub instance: u64,
    /// What the segment holds.
    pub kind: SegmentKind,
    /// The stored layout hash.
    pub layout_hash: u64,
    /// The payload (message) size in bytes.
    pub payload_size: u64,
    /// The payload's alignment.
    pub payload_align: u32,
    /// Slots of a state segment; a stream's capacity in messages.
    pub slots: u64,
    /// The exporting side's writer epoch.
    pub epoch: u64,
    /// State: the newest version exported; stream: the number of the last message exported.
    pub position: u64,
    /// The stored layout descriptor, as the segment holds it (`LayoutBuf::encode`).
    pub descriptor: Vec<u8>,
}

fn kind_code(kind: SegmentKind) -> u32 {
    match kind {
        SegmentKind::State => 0,
        SegmentKind::Stream => 1,
        SegmentKind::Queue => 2,
        // A kind a later format adds: never exported (see `export`).
        _ => u32::MAX,
    }
}

/// Why received bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

fn refuse<T>(why: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(why.into()))
}

/// Reads little-endian fields from untrusted bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return refuse("truncated message");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

impl Announcement {
    /// The bytes sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(56 + self.descriptor.len());
        out.extend_from_slice(&WIRE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.extend_from_slice(&kind_code(self.kind).to_le_bytes());
        out.extend_from_slice(&self.payload_align.to_le_bytes());
        out.extend_from_slice(&self.instance.to_le_bytes());
        out.extend_from_slice(&self.layout_hash.to_le_bytes());
        out.extend_from_slice(&self.payload_size.to_le_bytes());
        out.extend_from_slice(&self.slots.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&(self.descriptor.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.descriptor);
        out
    }

    /// Decodes an announcement's fields (not yet its descriptor: see [`checked_layout`]).
    ///
    /// [`checked_layout`]: Self::checked_layout
    pub fn decode(bytes: &[u8]) -> Result<Announcement, WireError> {
        let mut c = Cursor { bytes };
        let wire = c.u32()?;
        if wire != WIRE_VERSION {
            return refuse(format!(
                "wire format version {wire}, this bridge speaks {WIRE_VERSION}"
            ));
        }
        let format_version = c.u32()?;
        let kind = match c.u32()? {
            0 => SegmentKind::State,
            1 => SegmentKind::Stream,
            2 => SegmentKind::Queue,
            k => return refuse(format!("unknown segment kind {k}")),
        };
        let payload_align = c.u32()?;
        let instance = c.u64()?;
        let layout_hash = c.u64()?;
        let payload_size = c.u64()?;
        let slots = c.u64()?;
        let epoch = c.u64()?;
        let position = c.u64()?;
        let len = c.u64()?;
        if len != c.bytes.len() as u64 {
            return refuse(format!(
                "the descriptor is said to be {len} bytes, {} arrived",
                c.bytes.len()
            ));
        }
        Ok(Announcement {
            format_version,
            instance,
            kind,
            layout_hash,
            payload_size,
            payload_align,
            slots,
            epoch,
            position,
            descriptor: c.bytes.to_vec(),
        })
    }

    /// Checks the announcement as the runtime checks a stored segment before it maps one, and
    /// returns its layout: the format version, the kind (queues are not mirrored), the
    /// descriptor decoded with the runtime's limits for a stored descriptor (nesting, node
    /// count, name lengths, at most 1 MiB), its consistency, its hash against the announced
    /// hash, the payload size and alignment against the descriptor's, the slot count, and the
    /// mirror's total size against `max_bytes`.
    pub fn checked_layout(&self, max_bytes: u64) -> Result<LayoutBuf, WireError> {
        if self.format_version != shm_core::FORMAT_VERSION {
            return refuse(format!(
                "segment format version {}, this host's is {}",
                self.format_version,
                shm_core::FORMAT_VERSION
            ));
        }
        let max_slots: u64 = match self.kind {
            SegmentKind::State => 1024,
            SegmentKind::Stream => 1 << 24,
            _ => return refuse("queues are not mirrored (see docs/bridge.md)"),
        };
        if self.descriptor.len() > 1 << 20 {
            return refuse("the descriptor is longer than 1 MiB");
        }
        let layout = LayoutBuf::decode(&self.descriptor).map_err(|e| WireError(e.to_string()))?;
        layout
            .check()
            .map_err(|what| WireError(format!("inconsistent layout: {what}")))?;
        let hash = layout.layout_hash();
        if hash != self.layout_hash {
            return refuse(format!(
                "the descriptor hashes to {hash:#018x}, not to the announced {:#018x}",
                self.layout_hash
            ));
        }
        if layout.size == 0 || layout.size != self.payload_size {
            return refuse(format!(
                "payload size {} does not match the descriptor's {}",
                self.payload_size, layout.size
            ));
        }
        if layout.align > 4096 || layout.align != u64::from(self.payload_align) {
            return refuse(format!(
                "alignment {} does not match the descriptor's {} (at most 4096)",
                self.payload_align, layout.align
            ));
        }
        if !(1..=max_slots).contains(&self.slots) {
            return refuse(format!(
                "{} slots, a {} holds 1 to {max_slots}",
                self.slots, self.kind
            ));
        }
        let stride = (64 + layout.size.div_ceil(8) * 8).div_ceil(64) * 64;
        let total = stride
            .checked_mul(self.slots)
            .and_then(|s| s.checked_add(320 + self.descriptor.len() as u64));
        match total {
            Some(t) if t <= max_bytes => Ok(layout),
            _ => refuse(format!(
                "the mirror would take more than the limit of {max_bytes} bytes ({} slots of {} bytes)",
                self.slots, layout.size
            )),
        }
    }
}

/// One new value of a state segment, as published on `data` (and answered by its queryable).
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdate {
    /// The exporting side's writer epoch.
    pub epoch: u64,
    /// The version on the exporting side.
    pub version: u64,
    /// The payload bytes.
    pub bytes: Vec<u8>,
}

impl StateUpdate {
    /// The bytes sent: epoch, version, payload.
    pub fn encode(epoch: u64, version: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + payload.len());
        out.extend_from_slice(&epoch.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Decodes an update whose payload must be `size` bytes.
    pub fn decode(bytes: &[u8], size: usize) -> Result<StateUpdate, WireError> {
        let (epoch, version, payload) = Self::parse(bytes, size)?;
        Ok(StateUpdate {
            epoch,
            version,
            bytes: payload.to_vec(),
        })
    }

    /// Like [`decode`](Self::decode), without copying: the epoch, the version and the
    /// payload's bytes within `bytes`.
    pub fn parse(bytes: &[u8], size: usize) -> Result<(u64, u64, &[u8]), WireError> {
        let mut c = Cursor { bytes };
        let epoch = c.u64()?;
        let version = c.u64()?;
        if c.bytes.len() != size {
            return refuse(format!(
                "a value of {} bytes for a payload of {size}",
                c.bytes.len()
            ));
        }
        Ok((epoch, version, c.bytes))
    }
}

/// Consecutive messages of a stream, as published on `data`: the epoch, then each message's
/// number and bytes, numbers increasing (a gap is messages lost on the exporting side).
pub struct Batch;

impl Batch {
    /// Starts a batch of the writer epoch `epoch` in `out`.
    pub fn start(out: &mut Vec<u8>, epoch: u64) {
        out.clear();
        out.extend_from_slice(&epoch.to_le_bytes());
    }

    /// Appends message `number` to the batch in `out`.
    pub fn push(out: &mut Vec<u8>, number: u64, message: &[u8]) {
        out.extend_from_slice(&number.to_le_bytes());
        out.extend_from_slice(message);
    }

    /// Decodes a batch of messages of `size` bytes each: its epoch and its messages, calling
    /// `each(number, bytes)` for each, in order, after checking the whole batch.
    pub fn decode(
        bytes: &[u8],
        size: usize,
        mut each: impl FnMut(u64, &[u8]),
    ) -> Result<u64, WireError> {
        let mut c = Cursor { bytes };
        let epoch = c.u64()?;
        let record = size + 8;
        if c.bytes.len() % record != 0 {
            return refuse(format!(
                "a batch of {} bytes is not a whole number of {record}-byte records",
                c.bytes.len()
            ));
        }
        for r in c.bytes.chunks_exact(record) {
            let number = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
            each(number, &r[8..]);
        }
        Ok(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_refuse_partial_records() {
        let mut out = Vec::new();
        Batch::start(&mut out, 3);
        Batch::push(&mut out, 7, &[1, 2, 3, 4]);
        Batch::push(&mut out, 9, &[5, 6, 7, 8]);
        let mut seen = Vec::new();
        let epoch = Batch::decode(&out, 4, |n, b| seen.push((n, b.to_vec()))).unwrap();
        assert_eq!(epoch, 3);
        assert_eq!(seen, [(7, vec![1, 2, 3, 4]), (9, vec![5, 6, 7, 8])]);
        assert!(Batch::decode(&out[..out.len() - 1], 4, |_, _| {}).is_err());
    }

    #[test]
    fn key_chunks() {
        assert!(is_key_chunk("robot-pose"));
        assert!(!is_key_chunk("a*b"));
        assert!(!is_key_chunk("@x"));
        assert!(!is_key_chunk(""));
        assert_eq!(key("shm", "a", "/robot", "layout"), "shm/a/robot/layout");
    }
}
