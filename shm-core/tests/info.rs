//! `info()`: every handle reports the same facts about its segment, fixed facts stay as the
//! creator made them, and the writer's facts are live (another process's writer, its death,
//! a takeover).

mod common;

use common::{kill, role, spawn_role, Name, ENTRY};
use shm_core::{
    Options, QueueConsumer, RawReader, RawStreamReader, SegmentInfo, SegmentKind, SharedState,
    StreamReader,
};
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Sample {
    tick: u64,
    pos: [f64; 3],
}

const STATE_SLOTS: usize = 3;
const STREAM_CAPACITY: usize = 16;
const QUEUE_CAPACITY: usize = 8;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        // Creates a state segment, a stream and a queue, says so, and holds their writer
        // leases until killed.
        Some("create-all") => {
            let zero = Sample {
                tick: 0,
                pos: [0.0; 3],
            };
            let o = Options::new().slots(STATE_SLOTS);
            let _w = o.create(&common::env("STATE"), &zero).unwrap();
            let _tx = Sample::create_stream(&common::env("STREAM"), STREAM_CAPACITY).unwrap();
            let _p = Sample::create_queue(&common::env("QUEUE"), QUEUE_CAPACITY).unwrap();
            println!("created");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

/// The child's next line of its own output (the test harness's lines are skipped).
fn first_line(child: &mut Child) -> String {
    let mut out = BufReader::new(child.stdout.as_mut().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            return String::new();
        }
        let line = line.trim();
        if !line.is_empty() && !line.starts_with("running ") {
            return line.to_string();
        }
    }
}

/// Checks the fixed facts of `info` against what the creator made.
fn assert_fixed(info: &SegmentInfo, name: &str, kind: SegmentKind, slots: usize, creator: u32) {
    assert_eq!(info.name(), name, "{info:?}");
    assert_eq!(info.kind(), kind, "{info:?}");
    assert_eq!(info.layout_hash(), Sample::LAYOUT_HASH, "{info:?}");
    assert_eq!(
        info.payload_size(),
        core::mem::size_of::<Sample>(),
        "{info:?}"
    );
    assert_eq!(info.slots(), slots, "{info:?}");
    assert_eq!(info.creator_pid(), creator, "{info:?}");
}

#[test]
fn every_handle_reports_its_segment_and_the_live_writer_of_another_process() {
    if role().is_some() {
        return;
    }
    let (state, stream, queue) = (Name::new("info"), Name::new("info-s"), Name::new("info-q"));
    let mut creator = spawn_role(
        ENTRY,
        "create-all",
        &[
            ("STATE", state.to_string()),
            ("STREAM", stream.to_string()),
            ("QUEUE", queue.to_string()),
        ],
    );
    assert_eq!(first_line(&mut creator), "created");
    let pid = creator.id();

    let r = Sample::open(&state).unwrap();
    let raw = RawReader::open(&state).unwrap();
    let rx: StreamReader<Sample> = Sample::subscribe(&stream).unwrap();
    let raw_rx = RawStreamReader::subscribe(&stream).unwrap();
    let observer = RawStreamReader::subscribe(&queue).unwrap();
    let consumer: QueueConsumer<Sample> = Sample::open_consumer(&queue).unwrap();

    let readers = [
        (r.info(), &*state, SegmentKind::State, STATE_SLOTS),
        (raw.info(), &*state, SegmentKind::State, STATE_SLOTS),
        (rx.info(), &*stream, SegmentKind::Stream, STREAM_CAPACITY),
        (
            raw_rx.info(),
            &*stream,
            SegmentKind::Stream,
            STREAM_CAPACITY,
        ),
        (observer.info(), &*queue, SegmentKind::Queue, QUEUE_CAPACITY),
        (consumer.info(), &*queue, SegmentKind::Queue, QUEUE_CAPACITY),
    ];
    for (info, name, kind, slots) in &readers {
        assert_fixed(info, name, *kind, *slots, pid);
        let w = info.writer();
        assert!(w.alive(), "the creator holds the lease: {info:?}");
        assert_eq!((w.pid(), w.epoch()), (pid, 1), "{info:?}");
    }
    // Two handles of one segment report the same facts.
    assert_eq!(r.info(), raw.info());
    assert_eq!(rx.info(), raw_rx.info());
    assert_eq!(observer.info(), consumer.info());

    // The writer's facts are live: the same handles see the creator die...
    kill(&mut creator);
    for info in [
        r.info(),
        raw.info(),
        rx.info(),
        raw_rx.info(),
        consumer.info(),
    ] {
        assert!(!info.writer().alive(), "the creator is dead: {info:?}");
        assert_eq!(info.writer().pid(), pid, "{info:?}");
    }

    // ...and this process take over, while the fixed facts stay the creator's.
    let me = std::process::id();
    let w = Sample::open_writer(&state).unwrap();
    let tx = Sample::open_stream_writer(&stream).unwrap();
    let p = Sample::open_queue_producer(&queue).unwrap();
    let raw_w = RawReader::open(&state).unwrap();
    let writers = [
        (w.info(), &*state, SegmentKind::State, STATE_SLOTS),
        (tx.info(), &*stream, SegmentKind::Stream, STREAM_CAPACITY),
        (p.info(), &*queue, SegmentKind::Queue, QUEUE_CAPACITY),
        (r.info(), &*state, SegmentKind::State, STATE_SLOTS),
        (raw_w.info(), &*state, SegmentKind::State, STATE_SLOTS),
        (rx.info(), &*stream, SegmentKind::Stream, STREAM_CAPACITY),
        (consumer.info(), &*queue, SegmentKind::Queue, QUEUE_CAPACITY),
    ];
    for (info, name, kind, slots) in &writers {
        assert_fixed(info, name, *kind, *slots, pid);
        let w = info.writer();
        assert!(w.alive(), "this process holds the lease: {info:?}");
        assert_eq!((w.pid(), w.epoch()), (me, 2), "{info:?}");
    }
    // The names remove their segments when dropped.
}
