//! Rolling upgrades of `#[shm(appendable)]` types within one process: every refusal of the
//! compatibility rule with its exact message, reads across versions (prefix, zero tail), the
//! writer's takeover refused without adoption and done with it, deprecated fields, the stored
//! descriptor of an appendable type, and a stream whose producer is upgraded. The
//! separately compiled versions running as separate processes are in `examples/tests/upgrade.rs`.

mod common;

use common::Name;
use shm_core::{Compat, Error, LayoutBuf, Options, SharedState};
use std::time::Duration;

/// Version 1 of the type every test here shares a segment with: 40 bytes.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose", appendable)]
struct PoseV1 {
    tick: u64,
    pos: [f64; 3],
    status: u32,
    flags: u32,
}

/// Version 2: one field appended (48 bytes); `#[shm(name)]` and `#[shm(appendable)]` as
/// separate attributes.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose")]
#[shm(appendable)]
struct PoseV2 {
    tick: u64,
    pos: [f64; 3],
    status: u32,
    flags: u32,
    speed: f64,
}

fn v1(tick: u64) -> PoseV1 {
    PoseV1 {
        tick,
        pos: [tick as f64, 2.0 * tick as f64, -(tick as f64)],
        status: tick as u32 ^ 0x5a5a,
        flags: !(tick as u32),
    }
}

fn v2(tick: u64) -> PoseV2 {
    let p = v1(tick);
    PoseV2 {
        tick,
        pos: p.pos,
        status: p.status,
        flags: p.flags,
        speed: tick as f64 * 0.25,
    }
}

/// Opens `name` (holding a `PoseV1`) as a reader of `T` and returns the refusal's message.
fn refusal<T: SharedState>(name: &str) -> String {
    match T::open(name) {
        Err(Error::LayoutMismatch {
            expected,
            found,
            first_difference,
        }) => {
            assert_eq!(expected, T::LAYOUT_HASH);
            assert_eq!(found, PoseV1::LAYOUT_HASH);
            first_difference
        }
        Err(e) => panic!("expected a layout mismatch, got {e}"),
        Ok(r) => panic!("expected a refusal, opened with {:?}", r.compat()),
    }
}

fn v1_segment(tag: &str) -> (Name, shm_core::Writer<PoseV1>) {
    let name = Name::new(tag);
    let w = PoseV1::create(&name, &v1(7)).unwrap();
    (name, w)
}

macro_rules! pose_variant {
    ($(#[$m:meta])* $name:ident { $($f:ident : $t:ty),* $(,)? }) => {
        #[derive(SharedState, Clone, Copy, Debug)]
        #[repr(C)]
        $(#[$m])*
        struct $name { $($f: $t),* }
    };
}

pose_variant!(
    #[shm(name = "Pose", appendable)]
    RetypedArray {
        tick: u64,
        pos: [f32; 3],
        _pad: u32,
        status: u32,
        flags: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    WiderInteger {
        tick: u64,
        pos: [f64; 3],
        status: u64,
        flags: u32,
        _pad: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    LongerArray {
        tick: u64,
        pos: [f64; 4],
        status: u32,
        flags: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    Inserted {
        tick: u64,
        gap: u64,
        pos: [f64; 3],
        status: u32,
        flags: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    Removed {
        tick: u64,
        pos: [f64; 3],
        flags: u32,
        _pad: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    Reordered {
        tick: u64,
        pos: [f64; 3],
        flags: u32,
        status: u32
    }
);
pose_variant!(
    #[shm(name = "Pose", appendable)]
    Renamed {
        tick: u64,
        pos: [f64; 3],
        state: u32,
        flags: u32
    }
);
pose_variant!(
    #[shm(name = "Pose2", appendable)]
    OtherStableName {
        tick: u64,
        pos: [f64; 3],
        status: u32,
        flags: u32
    }
);
pose_variant!(
    #[shm(name = "Pose")]
    NotAppendable {
        tick: u64,
        pos: [f64; 3],
        status: u32,
        flags: u32,
        speed: f64
    }
);

#[test]
fn a_retyped_field_is_refused() {
    let (name, _w) = v1_segment("up-retyped");
    assert_eq!(
        refusal::<RetypedArray>(&name),
        "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f32; 3]` in this program; appendable types may only add fields at the end: add a new field instead"
    );
}

#[test]
fn a_wider_integer_is_refused() {
    let (name, _w) = v1_segment("up-wider");
    assert_eq!(
        refusal::<WiderInteger>(&name),
        "field `status` is `u32` at offset 32 in the segment but `u64` in this program; appendable types may only add fields at the end: add a new field instead"
    );
}

#[test]
fn a_longer_array_is_refused() {
    let (name, _w) = v1_segment("up-longer");
    assert_eq!(
        refusal::<LongerArray>(&name),
        "field `pos` is `[f64; 3]` at offset 8 in the segment but `[f64; 4]` in this program; appendable types may only add fields at the end: add a new field instead"
    );
}

#[test]
fn an_inserted_field_is_refused() {
    let (name, _w) = v1_segment("up-inserted");
    assert_eq!(
        refusal::<Inserted>(&name),
        "field `gap: u64` at offset 8 in this program is not in the segment, which has `pos` there; appendable types may only add fields at the end, never insert one or remove one (mark it `#[shm(deprecated)]` instead)"
    );
}

/// A field at another offset under the same name and order: what a descriptor written by
/// another language (or a changed `align`) can hold; a derived Rust type changes a field
/// before it first, which is reported as retyped.
#[test]
fn a_moved_field_is_refused() {
    let seg = LayoutBuf::from(PoseV2::LAYOUT);
    let mut prog = seg.clone();
    let shm_core::layout::KindBuf::Struct { fields, .. } = &mut prog.kind else {
        unreachable!()
    };
    fields[4].offset = 48;
    prog.size = 56;
    assert_eq!(
        seg.compatibility(&prog),
        Err("field `speed` is at offset 40 in the segment but at offset 48 in this program; appendable types may only add fields at the end".into())
    );
}

#[test]
fn a_removed_field_is_refused() {
    let (name, _w) = v1_segment("up-removed");
    assert_eq!(
        refusal::<Removed>(&name),
        "field `status: u32` at offset 32 in the segment is not in this program, which has `flags` there; appendable types may only add fields at the end, never remove one (mark it `#[shm(deprecated)]` instead) or insert one"
    );
}

#[test]
fn a_reordered_field_is_refused() {
    let (name, _w) = v1_segment("up-reordered");
    assert_eq!(
        refusal::<Reordered>(&name),
        "field `status` is at offset 32 in the segment but at offset 36 in this program; appendable types may only add fields at the end"
    );
}

#[test]
fn a_rename_without_alias_is_refused() {
    let (name, _w) = v1_segment("up-renamed");
    assert_eq!(
        refusal::<Renamed>(&name),
        "the segment has `status: u32` where this program has `state: u32` (offset 32); add `#[shm(alias = \"status\")]` if it was renamed"
    );
}

#[test]
fn a_changed_stable_name_is_refused() {
    let (name, _w) = v1_segment("up-stable");
    assert_eq!(
        refusal::<OtherStableName>(&name),
        "the type has `#[shm(name = \"Pose\")]` in the segment but `#[shm(name = \"Pose2\")]` in this program; a changed stable name makes another type"
    );
}

#[test]
fn appendable_on_one_side_only_is_refused() {
    let (name, _w) = v1_segment("up-one-side");
    assert_eq!(
        refusal::<NotAppendable>(&name),
        "the type is `#[shm(appendable)]` in the segment but not in this program; only two appendable versions of one type may share a segment"
    );
}

/// A rename with `#[shm(alias)]`: the same bytes, so `Exact` although the hashes differ, and
/// the stored layout keeps the old name.
#[test]
fn a_rename_with_alias_reads_the_same_bytes() {
    #[derive(SharedState, Clone, Copy, Debug)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    struct AliasedRename {
        tick: u64,
        pos: [f64; 3],
        #[shm(alias = "status")]
        state: u32,
        flags: u32,
    }
    assert_ne!(AliasedRename::LAYOUT_HASH, PoseV1::LAYOUT_HASH);
    let (name, _w) = v1_segment("up-alias");
    let r = AliasedRename::open(&name).unwrap();
    assert_eq!(r.compat(), Compat::Exact);
    let got = r.read();
    assert_eq!(
        (got.tick, got.state, got.flags),
        (7, v1(7).status, v1(7).flags)
    );
    assert_eq!(r.stored_layout().fields()[2].name, "status");
}

/// Nested growth: only along the last field, and only of an appendable struct.
#[test]
fn nested_structs_grow_only_at_the_end_and_only_when_appendable() {
    #[derive(SharedState, Clone, Copy, Debug)]
    #[repr(C)]
    #[shm(name = "Ext", appendable)]
    struct Ext1 {
        a: u64,
    }
    #[derive(SharedState, Clone, Copy, Debug)]
    #[repr(C)]
    #[shm(name = "Ext", appendable)]
    struct Ext2 {
        a: u64,
        b: u64,
    }
    #[derive(SharedState, Clone, Copy, Debug)]
    #[repr(C)]
    #[shm(name = "Plain")]
    struct Plain1 {
        a: u64,
    }
    #[derive(SharedState, Clone, Copy, Debug)]
    #[repr(C)]
    #[shm(name = "Plain")]
    struct Plain2 {
        a: u64,
        b: u64,
    }
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        Outer1 { t: u64, ext: Ext1 }
    );
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        Outer2 {
            t: u64,
            ext: Ext2,
            more: u64
        }
    );
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        Mid1 { ext: Ext1, t: u64 }
    );
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        Mid2 { ext: Ext2, t: u64 }
    );
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        P1 {
            t: u64,
            ext: Plain1
        }
    );
    pose_variant!(
        #[shm(name = "Outer", appendable)]
        P2 {
            t: u64,
            ext: Plain2
        }
    );

    let l = |x: &'static shm_core::Layout| LayoutBuf::from(x);
    assert_eq!(
        l(Outer1::LAYOUT).compatibility(&l(Outer2::LAYOUT)),
        Ok(Compat::SegmentOlder)
    );
    assert_eq!(
        l(Outer2::LAYOUT).compatibility(&l(Outer1::LAYOUT)),
        Ok(Compat::SegmentNewer)
    );
    assert_eq!(
        l(Mid1::LAYOUT).compatibility(&l(Mid2::LAYOUT)),
        Err("field `ext` is `Ext` (8 bytes) at offset 0 in the segment but `Ext` (16 bytes) in this program; a nested struct may only grow when it is the last field".into())
    );
    assert_eq!(
        l(P1::LAYOUT).compatibility(&l(P2::LAYOUT)),
        Err("field `ext` is `Plain` (8 bytes) at offset 8 in the segment but `Plain` (16 bytes) in this program; a nested struct may only grow when it is `#[shm(appendable)]` too".into())
    );
}

#[test]
fn readers_of_either_version_read_the_common_prefix() {
    let name = Name::new("up-read");
    let mut w1 = PoseV1::create(&name, &v1(3)).unwrap();
    let r2 = PoseV2::open(&name).unwrap();
    assert_eq!(r2.compat(), Compat::SegmentOlder);
    let got = r2.read();
    assert_eq!(
        got,
        PoseV2 {
            speed: 0.0,
            ..v2(3)
        }
    );
    w1.write(&v1(4));
    assert_eq!(
        r2.try_read().unwrap(),
        PoseV2 {
            speed: 0.0,
            ..v2(4)
        }
    );
    drop((w1, r2));
    shm_core::remove(&name).unwrap();

    let _w2 = PoseV2::create(&name, &v2(9)).unwrap();
    let r1 = PoseV1::open(&name).unwrap();
    assert_eq!(r1.compat(), Compat::SegmentNewer);
    assert_eq!(r1.read(), v1(9));
    assert_eq!(r1.read_timeout(Duration::from_secs(1)).unwrap(), v1(9));
}

/// Payloads of one word: the reader of a longer type on a one-word segment gets the
/// segment's word and zeros; the reader of a one-word type on a longer segment reads the slot,
/// since the segment's writer keeps no inline copy.
#[test]
fn one_word_payloads_across_versions() {
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Small", appendable)]
    struct Small1 {
        a: u32,
    }
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Small", appendable)]
    struct Small2 {
        a: u32,
        b: u32,
        c: u64,
    }
    let name = Name::new("up-word");
    let mut w = Small1::create(&name, &Small1 { a: 5 }).unwrap();
    let r = Small2::open(&name).unwrap();
    assert_eq!(r.read(), Small2 { a: 5, b: 0, c: 0 });
    w.write(&Small1 { a: 6 });
    assert_eq!(r.read(), Small2 { a: 6, b: 0, c: 0 });
    drop((w, r));
    shm_core::remove(&name).unwrap();
    let mut w = Small2::create(&name, &Small2 { a: 1, b: 2, c: 3 }).unwrap();
    let r = Small1::open(&name).unwrap();
    assert_eq!(r.read(), Small1 { a: 1 });
    w.write(&Small2 { a: 11, b: 2, c: 3 });
    assert_eq!(r.read(), Small1 { a: 11 });
}

#[test]
fn a_writer_takes_over_another_version_only_when_allowed_to_adopt() {
    let name = Name::new("up-adopt");
    let w1 = PoseV1::create(&name, &v1(1)).unwrap();
    let epoch = w1.info().writer().epoch();
    drop(w1);
    match PoseV2::open_writer(&name) {
        Err(Error::LayoutMismatch {
            first_difference, ..
        }) => assert_eq!(
            first_difference,
            format!("segment {:?} holds an older version of `Pose` (40 bytes); this program writes `Pose` of 48 bytes: remove and re-create the segment, or allow adoption of its layout with `Options::adopt_stored_layout(true)`", &*name)
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|w| w.compat())),
    }
    match Options::new().open_or_create(&name, &v2(0)) {
        Err(Error::LayoutMismatch { .. }) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|w| w.compat())),
    }
    // The refused takeovers left no trace.
    let r1 = PoseV1::open(&name).unwrap();
    assert_eq!(r1.info().writer().epoch(), epoch);

    let mut w2 = Options::new()
        .adopt_stored_layout(true)
        .open_writer::<PoseV2>(&name)
        .unwrap();
    assert_eq!(w2.compat(), Compat::SegmentOlder);
    // Its own type, the field the segment does not have zero.
    assert_eq!(
        w2.get().unwrap(),
        PoseV2 {
            speed: 0.0,
            ..v2(1)
        }
    );
    w2.write(&v2(2));
    assert_eq!(
        w2.get().unwrap(),
        PoseV2 {
            speed: 0.0,
            ..v2(2)
        }
    );
    assert_eq!(r1.compat(), Compat::Exact);
    assert_eq!(r1.read(), v1(2));
    assert_eq!(
        r1.stored_layout().layout_hash(),
        PoseV1::LAYOUT_HASH,
        "adoption keeps the stored layout"
    );
    drop(w2);
    // A plain writer of the stored version needs no adoption.
    let w1 = PoseV1::open_writer(&name).unwrap();
    assert_eq!(w1.compat(), Compat::Exact);
    assert_eq!(w1.get().unwrap(), v1(2));
    drop(w1);

    // A rollback: an older writer adopts a newer segment, writing zeros for the tail.
    let other = Name::new("up-rollback");
    let mut w2 = PoseV2::create(&other, &v2(5)).unwrap();
    let r2 = PoseV2::open(&other).unwrap();
    // Every slot holds a value with `speed` set before the rollback writes into them.
    for t in 1..=6 {
        w2.write(&v2(t));
    }
    drop(w2);
    let mut w1 = Options::new()
        .adopt_stored_layout(true)
        .open_or_create(&other, &v1(0))
        .unwrap();
    assert_eq!(w1.compat(), Compat::SegmentNewer);
    assert_eq!(w1.get().unwrap(), v1(6));
    for t in 7..=12 {
        w1.write(&v1(t));
        assert_eq!(
            r2.read(),
            PoseV2 {
                speed: 0.0,
                ..v2(t)
            }
        );
    }
}

#[test]
fn an_adopting_writer_zeroes_deprecated_fields() {
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Pose", appendable)]
    struct PoseV3 {
        tick: u64,
        pos: [f64; 3],
        #[deprecated = "read `flags` instead"]
        #[shm(deprecated)]
        status: u32,
        flags: u32,
        speed: f64,
        accel: f64,
    }
    assert_eq!(
        PoseV3::LAYOUT_HASH,
        {
            #[derive(SharedState, Clone, Copy)]
            #[repr(C)]
            #[shm(name = "Pose", appendable)]
            struct Same {
                tick: u64,
                pos: [f64; 3],
                status: u32,
                flags: u32,
                speed: f64,
                accel: f64,
            }
            Same::LAYOUT_HASH
        },
        "deprecated does not enter the hash"
    );
    let name = Name::new("up-deprecated");
    let _ = PoseV2::create(&name, &v2(1)).unwrap();
    let mut w = Options::new()
        .adopt_stored_layout(true)
        .open_writer::<PoseV3>(&name)
        .unwrap();
    let mut value = w.get().unwrap();
    value.tick = 2;
    #[allow(deprecated)]
    {
        assert_eq!(value.status, v1(1).status);
        value.status = 99;
    }
    value.accel = 1.5;
    w.write(&value);
    let got = PoseV2::open(&name).unwrap().read();
    assert_eq!((got.tick, got.status, got.flags), (2, 0, v1(1).flags));
}

/// A writer that adopted a one-word segment's layout stores the same value, deprecated fields
/// zeroed, in the slot and in the segment's inline copy of one-word values (which a typed
/// reader of a one-word payload reads; an untyped reader reads the slot).
#[test]
fn an_adopting_writer_of_a_one_word_segment_zeroes_deprecated_fields_in_both_copies() {
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Word", appendable)]
    struct Word1 {
        a: u16,
        b: u16,
    }
    #[derive(SharedState, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Word", appendable)]
    struct Word2 {
        a: u16,
        #[deprecated = "read `c` instead"]
        #[shm(deprecated)]
        b: u16,
        c: u32,
    }
    let name = Name::new("up-word-deprecated");
    let _ = Word1::create(&name, &Word1 { a: 1, b: 2 }).unwrap();
    let mut w = Options::new()
        .adopt_stored_layout(true)
        .open_writer::<Word2>(&name)
        .unwrap();
    #[allow(deprecated)]
    w.write(&Word2 { a: 3, b: 7, c: 9 });
    let r = Word1::open(&name).unwrap();
    assert_eq!(r.read(), Word1 { a: 3, b: 0 }, "the inline copy");
    let raw = shm_core::RawReader::open(&name).unwrap();
    let mut bytes = [0xffu8; 4];
    assert_eq!(raw.try_read(&mut bytes).unwrap(), 1);
    let mut expected = [0u8; 4];
    expected[..2].copy_from_slice(&3u16.to_ne_bytes());
    assert_eq!(bytes, expected, "the slot");
}

/// The descriptor of an appendable type: tag 7 and field markers, decoded back equal; the
/// descriptor of every other type is unchanged (tag 3, no markers).
#[test]
fn the_stored_descriptor_carries_the_flag_alias_and_deprecated_markers() {
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    #[shm(appendable)]
    struct Marked {
        #[shm(alias = "old")]
        new: u32,
        #[deprecated]
        #[shm(deprecated)]
        gone: u32,
    }
    let l = LayoutBuf::from(Marked::LAYOUT);
    let bytes = l.encode();
    assert_eq!(bytes[0], 7);
    assert_eq!(LayoutBuf::decode(&bytes).unwrap(), l);
    assert!(l.is_appendable());
    assert_eq!(l.fields()[0].alias.as_deref(), Some("old"));
    assert!(l.fields()[1].deprecated);
    assert_eq!(LayoutBuf::from(PoseV1::LAYOUT).encode()[0], 7);
    #[derive(SharedState, Clone, Copy)]
    #[repr(C)]
    struct Plain {
        new: u32,
        gone: u32,
    }
    assert_eq!(LayoutBuf::from(Plain::LAYOUT).encode()[0], 3);
    // An unknown marker bit is refused.
    let mut bad = bytes.clone();
    let marker = 1 + 8 + 8 + 4 + "Marked".len() + 1 + 4 + 4 + "new".len() + 8;
    assert_eq!(bad[marker], 2);
    bad[marker] |= 4;
    assert_eq!(
        LayoutBuf::decode(&bad).unwrap_err().to_string(),
        "malformed layout descriptor: unknown field marker"
    );
}

#[test]
fn a_stream_producer_is_upgraded_while_old_subscribers_keep_receiving() {
    let name = Name::new("up-stream");
    let mut tx1 = PoseV1::create_stream(&name, 64).unwrap();
    let mut rx1 = PoseV1::subscribe(&name).unwrap();
    let mut rx2 = PoseV2::subscribe(&name).unwrap();
    assert_eq!(rx2.compat(), Compat::SegmentOlder);
    for t in 1..=3 {
        tx1.send(&v1(t));
    }
    drop(tx1);
    assert!(matches!(
        PoseV2::open_stream_writer(&name),
        Err(Error::LayoutMismatch { .. })
    ));
    let mut tx2 = Options::new()
        .adopt_stored_layout(true)
        .open_stream_writer::<PoseV2>(&name)
        .unwrap();
    assert_eq!(tx2.compat(), Compat::SegmentOlder);
    for t in 4..=6 {
        tx2.send(&v2(t));
    }
    for t in 1..=6 {
        assert_eq!(rx1.try_recv().unwrap(), Some(v1(t)));
        assert_eq!(
            rx2.try_recv().unwrap(),
            Some(PoseV2 {
                speed: 0.0,
                ..v2(t)
            })
        );
    }
    assert_eq!(rx1.try_recv().unwrap(), None);
}

/// A queue producer writes only its queue's exact layout: another version is refused even
/// when adoption is allowed, and the refusal says what to do instead of suggesting the option.
#[test]
fn a_queue_producer_of_another_version_is_refused_even_when_allowed_to_adopt() {
    let name = Name::new("up-queue");
    let tx1 = PoseV1::create_queue(&name, 16).unwrap();
    drop(tx1);
    for adopt in [false, true] {
        match Options::new()
            .adopt_stored_layout(adopt)
            .open_queue_producer::<PoseV2>(&name)
        {
            Err(Error::LayoutMismatch {
                first_difference, ..
            }) => assert_eq!(
                first_difference,
                format!("segment {:?} holds an older version of `Pose` (40 bytes); this program writes `Pose` of 48 bytes: a queue producer writes only its segment's exact layout (adoption is for state writers and broadcast streams): let the consumer drain the queue, then remove and re-create it", &*name)
            ),
            Err(other) => panic!("expected a layout refusal, got {other}"),
            Ok(_) => panic!("a queue producer of another version was accepted"),
        }
    }
    shm_core::remove(&name).unwrap();
}

/// The markers of a kind-7 descriptor are decoded with the codec's limits: an alias is a name
/// (at most 1,024 bytes of UTF-8), a descriptor cut inside a marker is malformed, and a field
/// count is bounded by the 30 bytes a kind-7 field takes at least.
#[test]
fn the_markers_of_a_stored_descriptor_are_decoded_as_hostile_input() {
    let mut l = LayoutBuf::from(PoseV2::LAYOUT);
    let shm_core::layout::KindBuf::Struct { fields, .. } = &mut l.kind else {
        unreachable!()
    };
    fields[1].alias = Some("a".repeat(1025));
    let err = |bytes: &[u8]| LayoutBuf::decode(bytes).unwrap_err().to_string();
    assert_eq!(
        err(&l.encode()),
        "malformed layout descriptor: name too long"
    );
    let good = LayoutBuf::from(PoseV2::LAYOUT).encode();
    let first_marker = 1 + 8 + 8 + 4 + "PoseV2".len() + 1 + 4 + "Pose".len() + 4 + 4 + 4 + 8;
    assert_eq!(good[first_marker], 0);
    // Cut inside the last field's alias.
    let mut cut = l.clone();
    let shm_core::layout::KindBuf::Struct { fields, .. } = &mut cut.kind else {
        unreachable!()
    };
    fields[1].alias = None;
    fields.last_mut().unwrap().alias = Some("previous".into());
    let bytes = cut.encode();
    let alias_at = bytes.len() - 18 - "previous".len();
    assert_eq!(&bytes[alias_at..alias_at + 8], b"previous");
    assert_eq!(
        err(&bytes[..alias_at + 3]),
        "malformed layout descriptor: unexpected end of data"
    );
    // A field count that the remaining bytes cannot hold at 30 bytes a field.
    let count_at = first_marker - 8 - 4 - 4 - 4;
    let mut big = good.clone();
    let left = (good.len() - count_at - 4) as u32;
    big[count_at..count_at + 4].copy_from_slice(&(left / 30 + 1).to_le_bytes());
    assert_eq!(
        err(&big),
        "malformed layout descriptor: field count exceeds the data"
    );
}

#[test]
fn turn_taking_writers_all_write_the_segments_exact_layout() {
    let name = Name::new("up-turns");
    let shared = Options::new().shared_writers(true);
    let mut w1 = shared.create::<PoseV1>(&name, &v1(1)).unwrap();
    // Another version of the type is refused, even when asked to adopt: turns share one value.
    for adopt in [false, true] {
        match shared
            .clone()
            .adopt_stored_layout(adopt)
            .open_writer::<PoseV2>(&name)
        {
            Err(Error::LayoutMismatch {
                first_difference, ..
            }) => assert_eq!(
                first_difference,
                format!("segment {:?} holds another version of `Pose` (40 bytes) than this program's `Pose` (48 bytes), and its writers take turns: turn-taking writers must all write the segment's exact layout (adoption is for a single writer)", &*name)
            ),
            other => panic!("expected a refusal, got {:?}", other.map(|w| w.compat())),
        }
    }
    // The same version attaches and takes turns; readers of the newer version read as always.
    let mut w1b = shared.open_writer::<PoseV1>(&name).unwrap();
    w1b.update(|p| p.tick += 1);
    w1.update(|p| p.tick += 1);
    let r2 = PoseV2::open(&name).unwrap();
    assert_eq!(r2.compat(), Compat::SegmentOlder);
    assert_eq!(r2.read().tick, 3);
    assert_eq!(r2.read().speed, 0.0);
}
