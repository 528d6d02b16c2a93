//! Two bridges (two Zenoh peers on 127.0.0.1, no multicast) between "two hosts" (separate
//! host ids and segment names), with writer processes on one side and readers on the other.

mod common;

use common::*;
use shm_core::{Error, RawReader, RawStreamReader, SharedState};
use std::time::{Duration, Instant};

/// The state mirrored: every field follows from `seq`, so a torn value is detected.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pose {
    seq: u64,
    x: u64,
    fill: [u64; 12],
    check: u64,
}

impl Pose {
    fn of(seq: u64) -> Pose {
        Pose {
            seq,
            x: seq.wrapping_mul(3),
            fill: [seq; 12],
            check: !seq,
        }
    }
    fn intact(&self) -> bool {
        *self == Pose::of(self.seq)
    }
}

/// The same size, another field name: a reader of this type opening a `Pose` mirror must get
/// `LayoutMismatch` naming the field.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct PoseRenamed {
    seq: u64,
    y: u64,
    fill: [u64; 12],
    check: u64,
}

/// A stream message: every field follows from `seq`.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Msg {
    seq: u64,
    times7: u64,
    check: u64,
}

impl Msg {
    fn of(seq: u64) -> Msg {
        Msg {
            seq,
            times7: seq.wrapping_mul(7),
            check: !seq,
        }
    }
    fn from_bytes(b: &[u8]) -> Msg {
        let w = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Msg {
            seq: w(0),
            times7: w(1),
            check: w(2),
        }
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Child roles, dispatched on [`ROLE`].
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    let role = std::env::var(ROLE).unwrap_or_default();
    let seg = std::env::var("SEG").unwrap_or_default();
    match role.as_str() {
        "state-writer" => state_writer(&seg),
        "stream-writer" => stream_writer(&seg),
        other => panic!("unknown role {other:?}"),
    }
}

/// Creates (or, with `TAKEOVER`, takes over) the state `seg`, then follows instructions:
/// `set N` writes `Pose::of(N)`; `burst SECS` writes back to back for that long; end of input
/// exits.
fn state_writer(seg: &str) {
    let mut w = if std::env::var("TAKEOVER").is_ok() {
        Pose::open_writer(seg).unwrap()
    } else {
        Pose::create(seg, &Pose::of(1)).unwrap()
    };
    tell(&format!("ready {}", w.info().writer().epoch()));
    let mut seq = w.get().unwrap().seq;
    while let Some(line) = instruction() {
        let mut words = line.split_whitespace();
        match (
            words.next(),
            words.next().map(|n| n.parse::<u64>().unwrap()),
        ) {
            (Some("set"), Some(n)) => {
                seq = n;
                w.write(&Pose::of(n));
                tell(&format!("set {n}"));
            }
            (Some("burst"), Some(secs)) => {
                let end = Instant::now() + Duration::from_secs(secs);
                while Instant::now() < end {
                    seq += 1;
                    w.write(&Pose::of(seq));
                }
                tell(&format!("wrote {seq}"));
            }
            _ => panic!("bad instruction {line:?}"),
        }
    }
}

/// Creates the stream `seg` of capacity `CAP`, then follows instructions: `send N` sends the
/// next `N` messages back to back and prints the total sent.
fn stream_writer(seg: &str) {
    let cap: usize = std::env::var("CAP").unwrap().parse().unwrap();
    let mut tx = Msg::create_stream(seg, cap).unwrap();
    tell("ready");
    let mut progress = None;
    while let Some(line) = instruction() {
        let (what, n) = line.split_once(' ').unwrap();
        let n: u64 = n.parse().unwrap();
        // `paced`: never more than half the capacity ahead of the far reader, which writes
        // the last number it received into the state `PROGRESS` (flow control, so that
        // nothing is overwritten before the exporter, the mirror or the far reader reads it).
        let paced = what == "paced";
        if paced && progress.is_none() {
            progress = Some(u64::open(&std::env::var("PROGRESS").unwrap()).unwrap());
        }
        let start = Instant::now();
        for _ in 0..n {
            let next = tx.sent() + 1;
            if let Some(p) = progress.as_ref().filter(|_| paced) {
                while next - p.read() > cap as u64 / 2 {
                    assert!(
                        start.elapsed() < PATIENCE,
                        "the far reader stopped following"
                    );
                    std::thread::yield_now();
                }
            }
            tx.send(&Msg::of(next));
        }
        tell(&format!("sent {}", tx.sent()));
    }
}

/// Opens the mirror `name` as a `Pose` reader once it exists.
fn open_mirror(name: &str) -> shm_core::Reader<Pose> {
    let mut reader = None;
    wait_until(&format!("the mirror {name} to appear"), || {
        reader = Pose::open(name).ok();
        reader.is_some()
    });
    reader.unwrap()
}

#[test]
fn state_written_back_to_back_arrives_whole_in_order_and_finally_current() {
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-state");
    let mirror = seg.mirror(&a);
    let (importer, endpoint) =
        Bridge::listening(&b, &args(&["--import", &format!("{a}/{}", seg.bare())]));
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    let exporter = Bridge::start(&a, &args(&["--connect", &endpoint, "--export", &seg]));

    let r = open_mirror(&mirror);
    // The mirror appeared with the writer's value, never an unpublished all-zero one.
    let first = r.read();
    assert!(first.intact() && first.seq >= 1, "first value {first:?}");
    assert!(r.info().writer().alive(), "the remote writer is alive");

    writer.say("burst 5");
    let (mut torn, mut reads, mut last_seq, mut last_version) = (0u64, 0u64, first.seq, 0);
    let mut distinct = 0u64;
    let start = Instant::now();
    let last_written = loop {
        let v = r.read();
        let version = r.version();
        reads += 1;
        if !v.intact() {
            torn += 1;
        }
        assert!(
            v.seq >= last_seq,
            "went backwards: {} after {last_seq}",
            v.seq
        );
        assert!(version >= last_version, "version went backwards");
        if v.seq > last_seq {
            distinct += 1;
        }
        (last_seq, last_version) = (v.seq, version);
        if let Some(n) = writer.line("wrote") {
            break n.parse::<u64>().unwrap();
        }
        assert!(start.elapsed() < PATIENCE, "the writer never finished");
    };
    let done = Instant::now();
    wait_until("the final value on the mirror", || {
        r.read().seq == last_written
    });
    println!(
        "{last_written} values written in 5 s; far side: {reads} reads, {distinct} distinct \
         values seen during the burst, {torn} torn; final value {:?} after the last write",
        done.elapsed()
    );
    assert_eq!(torn, 0);
    assert!(distinct > 0, "updates arrived during the burst");

    // The writer exits: the mirror's writer is gone too (documented: about a second).
    writer.finish();
    let gone = Instant::now();
    wait_until("writer_alive false on the mirror", || {
        !r.info().writer().alive()
    });
    assert!(
        gone.elapsed() < Duration::from_secs(15),
        "{:?}",
        gone.elapsed()
    );
    // Values stay readable after the writer's death.
    assert_eq!(r.read().seq, last_written);

    exporter.terminate();
    importer.terminate();
    assert!(
        !exists(&mirror),
        "the importing bridge removed its mirror on SIGTERM"
    );
}

#[test]
fn late_joiner_gets_the_current_value_and_other_types_get_layout_mismatch() {
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-late");
    let mirror = seg.mirror(&a);
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    writer.say("set 42");
    writer.wait_line("set 42");
    writer.finish();
    let (exporter, endpoint) = Bridge::listening(&a, &args(&["--export", &seg]));
    exporter.wait_log(&format!("exporting state {}", &*seg));
    // Started after the last write: nothing will be published again. This one takes a Zenoh
    // configuration file, passed through, with `--connect` applied on top of it.
    let config = std::env::temp_dir().join(format!("{}.json5", unique("shm-bridge-config")));
    std::fs::write(
        &config,
        "{ mode: \"peer\", scouting: { multicast: { enabled: false }, gossip: { enabled: false } }, listen: { endpoints: [] } }",
    )
    .unwrap();
    let importer = Bridge::start(
        &b,
        &args(&[
            "--config",
            config.to_str().unwrap(),
            "--connect",
            &endpoint,
            "--import",
            &format!("{a}/{}", seg.bare()),
        ]),
    );
    std::fs::remove_file(&config).unwrap();
    let r = open_mirror(&mirror);
    assert_eq!(r.read(), Pose::of(42));
    // No writer on the exporting host: the bridge releases the lease it created the mirror
    // with at once.
    wait_until("writer_alive false on the mirror", || {
        !r.info().writer().alive()
    });

    // A far reader with another type: the local layout check, naming the field.
    match PoseRenamed::open(&mirror) {
        Err(Error::LayoutMismatch {
            first_difference, ..
        }) => {
            let text = first_difference.to_string();
            assert!(
                text.contains("`x: u64`") && text.contains("`y: u64`"),
                "{text}"
            );
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    // The mirror's name says what it mirrors; untyped tools read it by its stored layout.
    assert_eq!(
        RawReader::open(&mirror).unwrap().info().layout_hash(),
        Pose::LAYOUT_HASH
    );

    importer.terminate();
    exporter.terminate();
    assert!(!exists(&mirror));
}

#[test]
fn writer_death_new_epoch_second_importer_and_exporter_restart() {
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-live");
    let mirror = seg.mirror(&a);
    let import = format!("{a}/{}", seg.bare());
    let (importer, endpoint) = Bridge::listening(&b, &args(&["--import", &import]));
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    let export = args(&["--connect", &endpoint, "--export", &seg]);
    // Listening too, for the second importer: peers do not relay for each other (no gossip).
    let (exporter, exporter_endpoint) = Bridge::listening(&a, &export);
    let r = open_mirror(&mirror);
    writer.say("set 10");
    wait_until("value 10 on the mirror", || r.read().seq == 10);
    assert!(r.info().writer().alive());
    // The mirror's epoch is the remote writer's (recorded just after each takeover of the
    // mirror's lease, hence waited for).
    wait_until("the remote writer's epoch 1 on the mirror", || {
        r.info().writer().epoch() == 1
    });

    // A second importer of the same segment on the same host: a clear error, no sharing.
    let second = Bridge::start(
        &host("c"),
        &args(&["--connect", &exporter_endpoint, "--import", &import]),
    );
    second.wait_log("its writer lease is held");
    second.terminate();
    assert!(
        exists(&mirror),
        "the second importer left the first one's mirror alone"
    );
    assert!(r.info().writer().alive());

    // The writer is SIGKILLed: the mirror's writer is gone within the documented time.
    writer.kill();
    let killed = Instant::now();
    wait_until("writer_alive false after SIGKILL", || {
        !r.info().writer().alive()
    });
    let took = killed.elapsed();
    println!("writer SIGKILLed: writer_alive false on the mirror after {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    // A new writer takes over (epoch 2 there): the mirror's writer comes back, with the new
    // writer's epoch, and its values arrive.
    let mut writer = Role::spawn(
        "state-writer",
        &[("SEG", seg.0.clone()), ("TAKEOVER", "1".into())],
    );
    assert_eq!(writer.wait_line("ready"), "2");
    writer.say("set 20");
    wait_until("value 20 from the new writer", || r.read().seq == 20);
    wait_until("the mirror's writer alive again", || {
        r.info().writer().alive()
    });
    wait_until("the new remote writer's epoch 2 on the mirror", || {
        r.info().writer().epoch() == 2
    });

    // The exporting bridge is SIGKILLed: the mirror's writer goes; restarted, it resumes.
    exporter.kill();
    wait_until("writer_alive false after the exporter died", || {
        !r.info().writer().alive()
    });
    let exporter = Bridge::start(&a, &export);
    wait_until("the mirror's writer alive after the restart", || {
        r.info().writer().alive()
    });
    writer.say("set 30");
    wait_until("value 30 after the restart", || r.read().seq == 30);
    assert!(r.read().intact());
    // The importer took the mirror's lease again for the same remote writer: the same epoch.
    wait_until("epoch 2 on the mirror after the exporter's restart", || {
        r.info().writer().epoch() == 2
    });

    writer.finish();
    exporter.terminate();
    importer.terminate();
    assert!(!exists(&mirror));
}

/// Subscribes to the stream mirror `name` (raw, for the message numbers) once it exists.
fn subscribe_mirror(name: &str) -> RawStreamReader {
    let mut rx = None;
    wait_until(&format!("the stream mirror {name}"), || {
        rx = RawStreamReader::subscribe(name).ok();
        rx.is_some()
    });
    rx.unwrap()
}

/// Receives from `rx` until message `total`; returns (received, lost), checking order,
/// numbers and contents. Writes the last number received into `progress`, if given.
fn receive_all(
    rx: &mut RawStreamReader,
    total: u64,
    mut progress: Option<&mut shm_core::Writer<u64>>,
) -> (u64, u64) {
    let mut buf = vec![0u8; rx.payload_size()];
    let (mut received, mut lost, mut last) = (0u64, 0u64, 0u64);
    while last < total {
        match rx.recv_timeout(&mut buf, PATIENCE) {
            Ok(number) => {
                assert!(number > last, "out of order: {number} after {last}");
                assert_eq!(Msg::from_bytes(&buf), Msg::of(number), "corrupt");
                received += 1;
                last = number;
                if let Some(p) = progress.as_mut() {
                    p.write(&number);
                }
            }
            Err(Error::Lagged { missed }) => lost += missed,
            Err(e) => panic!("after {received} received and {lost} lost: {e}"),
        }
    }
    (received, lost)
}

/// A million numbered messages, twice: paced by the far side (lossless, every message
/// arrives) and back to back on a `--lossy` stream (the writer outruns the network: the far
/// reader's received + lost is exactly what was sent).
#[test]
fn a_million_messages_arrive_in_order_with_exact_losses_and_their_numbers() {
    const TOTAL: u64 = 1_000_000;
    const CAP: &str = "65536";
    let (a, b) = (host("a"), host("b"));
    let (paced, lossy) = (Name::new("br-paced"), Name::new("br-lossy"));
    let (paced_mirror, lossy_mirror) = (paced.mirror(&a), lossy.mirror(&a));
    // The far reader's progress, which the paced writer follows.
    let progress = Name::new("br-progress");
    let mut progress_writer = u64::create(&progress, &0).unwrap();
    let (importer, endpoint) = Bridge::listening(
        &b,
        &args(&[
            "--import",
            &format!("{a}/{}", paced.bare()),
            "--import",
            &format!("{a}/{}", lossy.bare()),
        ]),
    );
    let mut paced_writer = Role::spawn(
        "stream-writer",
        &[
            ("SEG", paced.0.clone()),
            ("CAP", CAP.into()),
            ("PROGRESS", progress.0.clone()),
        ],
    );
    let mut lossy_writer = Role::spawn(
        "stream-writer",
        &[("SEG", lossy.0.clone()), ("CAP", CAP.into())],
    );
    paced_writer.wait_line("ready");
    lossy_writer.wait_line("ready");
    let exporter = Bridge::start(
        &a,
        &args(&[
            "--connect",
            &endpoint,
            "--export",
            &paced,
            "--export",
            &lossy,
            "--lossy",
            &lossy,
        ]),
    );
    exporter.wait_log(&format!("exporting stream {} (lossless)", &*paced));
    exporter.wait_log(&format!("exporting stream {} (lossy)", &*lossy));
    let mut rx = subscribe_mirror(&paced_mirror);
    // The typed check applies to stream mirrors too.
    assert!(Msg::subscribe(&paced_mirror).is_ok());
    assert!(matches!(
        Pose::subscribe(&paced_mirror),
        Err(Error::LayoutMismatch { .. })
    ));

    let start = Instant::now();
    paced_writer.say(&format!("paced {TOTAL}"));
    let (received, lost) = receive_all(&mut rx, TOTAL, Some(&mut progress_writer));
    let took = start.elapsed();
    println!(
        "paced: {TOTAL} messages, {received} received, {lost} lost, in {took:?} ({:.0} messages/s \
         writer to far reader)",
        TOTAL as f64 / took.as_secs_f64()
    );
    assert_eq!((received, lost), (TOTAL, 0));

    let mut rx = subscribe_mirror(&lossy_mirror);
    let start = Instant::now();
    lossy_writer.say(&format!("send {TOTAL}"));
    let (received, lost) = receive_all(&mut rx, TOTAL, None);
    println!(
        "back to back: {TOTAL} messages, {received} received, {lost} lost (counted exactly), \
         in {:?}",
        start.elapsed()
    );
    assert_eq!(received + lost, TOTAL);
    assert!(received > 0);

    paced_writer.finish();
    lossy_writer.finish();
    exporter.terminate();
    importer.terminate();
    assert!(!exists(&paced_mirror) && !exists(&lossy_mirror));
}

#[test]
fn a_far_reader_that_falls_behind_gets_the_exact_lagged_count() {
    const CAP: u64 = 1024;
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-lag");
    let mirror = seg.mirror(&a);
    let (importer, endpoint) =
        Bridge::listening(&b, &args(&["--import", &format!("{a}/{}", seg.bare())]));
    let mut writer = Role::spawn(
        "stream-writer",
        &[("SEG", seg.0.clone()), ("CAP", CAP.to_string())],
    );
    writer.wait_line("ready");
    let exporter = Bridge::start(&a, &args(&["--connect", &endpoint, "--export", &seg]));
    exporter.wait_log(&format!("exporting stream {}", &*seg));
    let mut slow = subscribe_mirror(&mirror);
    let watch = subscribe_mirror(&mirror);
    // Five rounds of one capacity's worth each, the next sent only once the mirror has the
    // last: the exporter never loses one, so the mirror has all 5 * CAP, and the slow reader,
    // which read nothing meanwhile, lost exactly 4 * CAP.
    for round in 1..=5 {
        writer.say(&format!("send {CAP}"));
        writer.wait_line(&format!("sent {}", round * CAP));
        wait_until("the round on the mirror", || watch.sent() == round * CAP);
    }
    let mut buf = vec![0u8; slow.payload_size()];
    let first = slow.recv_timeout(&mut buf, PATIENCE);
    assert!(
        matches!(first, Err(Error::Lagged { missed }) if missed == 4 * CAP),
        "{first:?}"
    );
    for number in 4 * CAP + 1..=5 * CAP {
        assert_eq!(slow.recv_timeout(&mut buf, PATIENCE).unwrap(), number);
        assert_eq!(Msg::from_bytes(&buf), Msg::of(number));
    }
    assert_eq!(slow.try_recv(&mut buf).unwrap(), None);
    writer.finish();
    exporter.terminate();
    importer.terminate();
    assert!(!exists(&mirror));
}

#[test]
fn a_segment_created_after_start_is_mirrored_and_a_restarted_importer_takes_its_mirror_back() {
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-later");
    let mirror = seg.mirror(&a);
    let import = args(&["--import", &format!("{a}/shmtest-br-later-*")]);
    // This time the exporter listens and the importer connects.
    let (exporter, endpoint) = Bridge::listening(&a, &args(&["--export", "/shmtest-br-later-*"]));
    let mut import_args = args(&["--connect", &endpoint]);
    import_args.extend(import.iter().cloned());
    let importer = Bridge::start(&b, &import_args);

    // Created after both bridges started: picked up by the scan and the discovery.
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    let created = Instant::now();
    let r = open_mirror(&mirror);
    println!(
        "a segment created after start was mirrored after {:?}",
        created.elapsed()
    );
    writer.say("set 7");
    wait_until("value 7", || r.read().seq == 7);
    wait_until("writer alive on the mirror", || r.info().writer().alive());

    // The importing bridge is SIGKILLed: its mirror stays (with no writer) until a bridge
    // imports it again, which takes it over (values never go backwards).
    importer.kill();
    wait_until("the killed importer's lease released", || {
        !r.info().writer().alive()
    });
    assert!(exists(&mirror));
    let version = r.version();
    let importer = Bridge::start(&b, &import_args);
    wait_until("the restarted importer holds the mirror", || {
        r.info().writer().alive()
    });
    assert!(r.version() >= version);
    writer.say("set 8");
    wait_until("value 8 through the restarted importer", || {
        r.read().seq == 8
    });

    // The exporter, which the importer connects to, is SIGKILLed and restarted on the same
    // endpoint: the importer's Zenoh session connects again by itself, and the mirror resumes.
    exporter.kill();
    wait_until("the mirror's writer gone with the exporter", || {
        !r.info().writer().alive()
    });
    let exporter = Bridge::start(
        &a,
        &args(&["--listen", &endpoint, "--export", "/shmtest-br-later-*"]),
    );
    wait_until("the mirror's writer back after the restart", || {
        r.info().writer().alive()
    });
    writer.say("set 9");
    wait_until("value 9 after the exporter's restart", || r.read().seq == 9);

    // The segment is removed and created again on its host (its versions start over): the
    // mirror is made again from the new segment.
    writer.finish();
    shm_core::remove(&seg).unwrap();
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    writer.say("set 3");
    wait_until("the new segment's value on a new mirror", || {
        Pose::open(&mirror).is_ok_and(|r| r.read().seq == 3)
    });

    writer.finish();
    importer.terminate();
    exporter.terminate();
    assert!(!exists(&mirror));
}

/// A bridge that neither exports nor imports, configured by a Zenoh file as a router, relays
/// between two bridges configured as Zenoh clients of it (the usual Zenoh deployment; Zenoh
/// peers do not relay for each other).
#[test]
fn two_bridges_through_a_router_configured_by_file() {
    let (a, b) = (host("a"), host("b"));
    let seg = Name::new("br-router");
    // Named by another rule than the default.
    let mirror = Name(format!("{}-copy@{a}", &*seg));
    let file = |mode: &str| {
        let path = std::env::temp_dir().join(format!("{}.json5", unique("shm-bridge-zenoh")));
        let text = format!("{{ mode: {mode:?}, scouting: {{ multicast: {{ enabled: false }} }} }}");
        std::fs::write(&path, text).unwrap();
        path
    };
    let (router_config, client_config) = (file("router"), file("client"));
    let (router, endpoint) = Bridge::listening(
        &host("r"),
        &args(&["--config", router_config.to_str().unwrap()]),
    );
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    writer.say("set 11");
    writer.wait_line("set 11");
    let client = client_config.to_str().unwrap();
    let exporter = Bridge::start(
        &a,
        &args(&["--config", client, "--connect", &endpoint, "--export", &seg]),
    );
    let import = format!("{a}/{}", seg.bare());
    let importer = Bridge::start(
        &b,
        &args(&[
            "--config",
            client,
            "--connect",
            &endpoint,
            "--import",
            &import,
            "--mirror-name",
            "/{name}-copy@{id}",
        ]),
    );
    std::fs::remove_file(&router_config).unwrap();
    std::fs::remove_file(&client_config).unwrap();
    let r = open_mirror(&mirror);
    wait_until("value 11 through the router", || r.read().seq == 11);
    wait_until("the writer alive through the router", || {
        r.info().writer().alive()
    });
    writer.finish();
    wait_until("the writer gone through the router", || {
        !r.info().writer().alive()
    });
    importer.terminate();
    exporter.terminate();
    router.terminate();
    assert!(!exists(&mirror));
}

/// Under congestion Zenoh may drop a state update, and nothing later would replace the last
/// one: once the writer pauses, the exporter sends its latest update again. Observed here by
/// a plain Zenoh subscriber, which sees the same (epoch, version) more than once.
#[test]
fn an_idle_state_export_sends_its_latest_update_again() {
    use zenoh::Wait;
    let a = host("a");
    let seg = Name::new("br-resend");
    let (exporter, endpoint) = Bridge::listening(&a, &args(&["--export", &seg]));
    let mut z = zenoh::Config::default();
    for (k, v) in [
        ("mode", r#""peer""#.to_string()),
        ("scouting/multicast/enabled", "false".into()),
        ("listen/endpoints", "[]".into()),
        ("connect/endpoints", format!("[{endpoint:?}]")),
    ] {
        z.insert_json5(k, &v).unwrap();
    }
    let session = zenoh::open(z).wait().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = session
        .declare_subscriber(format!("shm/{a}/{}/data", seg.bare()))
        .callback(move |s| {
            let b = s.payload().to_bytes();
            let u = shm_bridge::wire::StateUpdate::decode(&b, std::mem::size_of::<Pose>()).unwrap();
            sink.lock().unwrap().push((u.epoch, u.version, u.bytes));
        })
        .wait()
        .unwrap();
    let mut writer = Role::spawn("state-writer", &[("SEG", seg.0.clone())]);
    writer.wait_line("ready");
    exporter.wait_log(&format!("exporting state {}", &*seg));
    // Published after the subscriber is in place (Zenoh has no history for it).
    let mut n = 100;
    wait_until("an update of value 100 or later", || {
        writer.say(&format!("set {n}"));
        writer.wait_line(&format!("set {n}"));
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
        !seen.lock().unwrap().is_empty()
    });
    // The writer's last value: the exporter publishes it (once), then sends it again.
    let last = n - 1;
    let seq_of = |b: &[u8]| u64::from_ne_bytes(b[..8].try_into().unwrap());
    wait_until("the last value sent twice while the writer is idle", || {
        let s = seen.lock().unwrap();
        s.iter().filter(|(_, _, b)| seq_of(b) == last).count() >= 2
    });
    drop(session);
    writer.finish();
    exporter.terminate();
}

#[test]
fn invalid_configurations_are_refused_with_a_clear_message() {
    for (flags, says) in [
        (vec!["--mirror-name", "/{name}-{id}"], "mirror name rule"),
        (vec!["--export", "robot-*"], "must start with `/`"),
        (vec!["--import", "robot-*"], "must be `ID/NAME`"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shm-bridge"))
            .args(["--id", "x"])
            .args(&flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}

#[test]
fn queues_are_refused_with_a_clear_message() {
    let a = host("a");
    let queue = Name::new("br-queue");
    let _producer = Msg::create_queue(&queue, 16).unwrap();
    let exporter = Bridge::start(&a, &args(&["--export", &queue]));
    exporter.wait_log("queues are not exported");
    exporter.terminate();
}

#[test]
fn hostile_announcements_are_refused_and_other_segments_still_served() {
    use shm_bridge::wire::Announcement;
    use shm_core::layout::KindBuf;
    use shm_core::{LayoutBuf, SegmentKind};
    use zenoh::Wait;

    let (a, b, evil) = (host("a"), host("b"), host("evil"));
    let good = Name::new("br-good");
    // Removed on drop, even if the test fails with the bridges killed.
    let good_mirror = good.mirror(&a);
    let (importer, endpoint) = Bridge::listening(
        &b,
        &args(&[
            "--import",
            &format!("{a}/{}", good.bare()),
            "--import",
            &format!("{evil}/shmtest-*"),
        ]),
    );

    // A peer that announces hostile descriptors.
    let announce = |layout: &LayoutBuf, hash: u64| Announcement {
        format_version: shm_core::FORMAT_VERSION,
        instance: 1,
        kind: SegmentKind::State,
        layout_hash: hash,
        payload_size: layout.size,
        payload_align: layout.align as u32,
        slots: 4,
        epoch: 1,
        position: 1,
        descriptor: layout.encode(),
    };
    let msg = LayoutBuf::from(Msg::LAYOUT);
    let mut deep = msg.clone();
    for _ in 0..40 {
        deep = LayoutBuf {
            size: deep.size,
            align: deep.align,
            kind: KindBuf::Array {
                len: 1,
                element: Box::new(deep),
            },
        };
    }
    let u64_layout = msg.fields()[0].layout.clone();
    let huge = LayoutBuf {
        size: 8 << 40,
        align: 8,
        kind: KindBuf::Array {
            len: 1 << 40,
            element: Box::new(u64_layout),
        },
    };
    let hostile: Vec<(Name, Vec<u8>, &str)> = vec![
        (
            Name::new("br-deep"),
            announce(&deep, deep.layout_hash()).encode(),
            "nest",
        ),
        (
            Name::new("br-huge"),
            announce(&huge, huge.layout_hash()).encode(),
            "limit",
        ),
        (
            Name::new("br-hash"),
            announce(&msg, msg.layout_hash() ^ 1).encode(),
            "hashes to",
        ),
        (Name::new("br-junk"), vec![1, 2, 3], "truncated"),
    ];
    let mut z = zenoh::Config::default();
    for (k, v) in [
        ("mode", r#""peer""#.to_string()),
        ("scouting/multicast/enabled", "false".into()),
        ("scouting/gossip/enabled", "false".into()),
        ("listen/endpoints", "[]".into()),
        ("connect/endpoints", format!("[{endpoint:?}]")),
    ] {
        z.insert_json5(k, &v).unwrap();
    }
    let session = zenoh::open(z).wait().unwrap();
    let _queryables: Vec<_> = hostile
        .iter()
        .map(|(name, bytes, _)| {
            let bytes = bytes.clone();
            let key = format!("shm/{evil}/{}/layout", name.bare());
            session
                .declare_queryable(key.clone())
                .callback(move |q| {
                    let _ = q.reply(key.as_str(), bytes.clone()).wait();
                })
                .wait()
                .unwrap()
        })
        .collect();

    // A valid announcement whose current value is malformed: refused, and the mirror is
    // made from the first valid value only.
    let badval = Name::new("br-badval");
    let badval_mirror = badval.mirror(&evil);
    let _badval_layout = {
        let bytes = announce(&msg, msg.layout_hash()).encode();
        let key = format!("shm/{evil}/{}/layout", badval.bare());
        session
            .declare_queryable(key.clone())
            .callback(move |q| {
                let _ = q.reply(key.as_str(), bytes.clone()).wait();
            })
            .wait()
            .unwrap()
    };
    let data_key = format!("shm/{evil}/{}/data", badval.bare());
    let _badval_data = {
        let key = data_key.clone();
        session
            .declare_queryable(key.clone())
            .callback(move |q| {
                let _ = q.reply(key.as_str(), vec![0u8; 5]).wait();
            })
            .wait()
            .unwrap()
    };

    // A valid stream whose messages carry an absurd number: refused, later ones delivered.
    let jump = Name::new("br-jump");
    let jump_mirror = jump.mirror(&evil);
    let _jump_layout = {
        let mut a = announce(&msg, msg.layout_hash());
        a.kind = SegmentKind::Stream;
        a.slots = 16;
        a.position = 0;
        let bytes = a.encode();
        let key = format!("shm/{evil}/{}/layout", jump.bare());
        session
            .declare_queryable(key.clone())
            .callback(move |q| {
                let _ = q.reply(key.as_str(), bytes.clone()).wait();
            })
            .wait()
            .unwrap()
    };

    // A real segment exported by a real bridge, next to them.
    let mut writer = Role::spawn("state-writer", &[("SEG", good.0.clone())]);
    writer.wait_line("ready");
    writer.say("set 5");
    writer.wait_line("set 5");
    let exporter = Bridge::start(&a, &args(&["--connect", &endpoint, "--export", &good]));

    for (name, _, why) in &hostile {
        let line = format!("refusing to import {evil}/{}", name.bare());
        importer.wait_log(&line);
        assert!(
            importer.logged(why),
            "the refusal of {} says {why:?}",
            &**name
        );
        assert!(!exists(&name.mirror(&evil)));
    }
    importer.wait_log(&format!("{}: refused an update", &*badval_mirror));
    assert!(!exists(&badval_mirror), "no mirror from a malformed value");
    let value = Msg::of(9);
    let mut payload = Vec::new();
    for w in [value.seq, value.times7, value.check] {
        payload.extend_from_slice(&w.to_ne_bytes());
    }
    session
        .put(
            data_key.as_str(),
            shm_bridge::wire::StateUpdate::encode(1, 1, &payload),
        )
        .wait()
        .unwrap();
    let mut m = None;
    wait_until("the mirror made from the valid value", || {
        m = Msg::open(&badval_mirror).ok();
        m.is_some()
    });
    assert_eq!(m.unwrap().read(), value);

    // The stream mirror: an absurd number refused, then messages 1 to 3 received.
    let mut rx = None;
    wait_until("the stream mirror", || {
        rx = RawStreamReader::subscribe(&jump_mirror).ok();
        rx.is_some()
    });
    let mut rx = rx.unwrap();
    let batch = |numbers: &[u64]| {
        let mut out = Vec::new();
        shm_bridge::wire::Batch::start(&mut out, 1);
        for &n in numbers {
            let m = Msg::of(n);
            let mut payload = Vec::new();
            for w in [m.seq, m.times7, m.check] {
                payload.extend_from_slice(&w.to_ne_bytes());
            }
            shm_bridge::wire::Batch::push(&mut out, n, &payload);
        }
        out
    };
    let jump_data = format!("shm/{evil}/{}/data", jump.bare());
    session
        .put(jump_data.as_str(), batch(&[u64::MAX - 1]))
        .wait()
        .unwrap();
    importer.wait_log("is more than 2^40 after the last one");
    session
        .put(jump_data.as_str(), batch(&[1, 2, 3]))
        .wait()
        .unwrap();
    let mut buf = vec![0u8; rx.payload_size()];
    for n in 1..=3 {
        assert_eq!(rx.recv_timeout(&mut buf, PATIENCE).unwrap(), n);
        assert_eq!(Msg::from_bytes(&buf), Msg::of(n));
    }
    drop(rx);

    let r = open_mirror(&good_mirror);
    wait_until("value 5", || r.read().seq == 5);
    writer.say("set 6");
    wait_until("value 6 after the refusals", || r.read().seq == 6);
    // Asked again at every discovery round, each refused only once in the log.
    importer.wait_rounds(3);
    for (name, _, _) in &hostile {
        let line = format!("refusing to import {evil}/{}", name.bare());
        assert_eq!(importer.count(&line), 1, "{line}");
    }

    drop(session);
    writer.finish();
    exporter.terminate();
    importer.terminate();
    assert!(!exists(&good_mirror) && !exists(&badval_mirror) && !exists(&jump_mirror));
}

/// The threads of process `pid` now (`/proc/PID/task`), and how many have a name starting
/// with `named` (`export`, `import`).
fn threads(pid: u32, named: &str) -> (usize, usize) {
    let (mut all, mut matching) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        all += 1;
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with(named) {
            matching += 1;
        }
    }
    (all, matching)
}

#[test]
fn fifty_exported_states_are_served_by_a_bounded_number_of_threads() {
    const SEGMENTS: u64 = 50;
    let (a, b) = (host("a"), host("b"));
    let prefix = format!("/shmtest-{}", unique("br-many"));
    let names: Vec<Name> = (0..SEGMENTS)
        .map(|i| Name(format!("{prefix}-{i}")))
        .collect();
    let mirrors: Vec<Name> = names.iter().map(|n| n.mirror(&a)).collect();
    let mut writers = vec![Pose::create(&names[0], &Pose::of(1)).unwrap()];
    let (exporter, endpoint) = Bridge::listening(&a, &args(&["--export", &format!("{prefix}-*")]));
    exporter.wait_log(&format!("exporting state {}", &*names[0]));
    let one = threads(exporter.child.id(), "export");
    for n in &names[1..] {
        writers.push(Pose::create(n, &Pose::of(1)).unwrap());
    }
    wait_until("all the states exported", || {
        exporter.count("exporting state") == SEGMENTS as usize
    });
    let fifty = threads(exporter.child.id(), "export");
    // Every one of them is served: its current value, then a new one, reach its mirror.
    let importer = Bridge::start(
        &b,
        &args(&[
            "--connect",
            &endpoint,
            "--import",
            &format!("{a}/{}-*", prefix.trim_start_matches('/')),
        ]),
    );
    let readers: Vec<_> = mirrors.iter().map(|m| open_mirror(m)).collect();
    for (i, w) in writers.iter_mut().enumerate() {
        w.write(&Pose::of(1000 + i as u64));
    }
    for (i, r) in readers.iter().enumerate() {
        wait_until(&format!("the new value of {}", &*mirrors[i]), || {
            r.read() == Pose::of(1000 + i as u64)
        });
    }
    let serving = threads(exporter.child.id(), "export");
    eprintln!(
        "exporter threads (all, named export …): one segment {one:?}, {SEGMENTS} segments \
         {fifty:?}, {SEGMENTS} segments after their updates went through {serving:?}"
    );
    // No thread per segment: the same threads export one segment or fifty.
    assert!(
        fifty.1 <= one.1 && serving.1 <= one.1,
        "export threads grew with the segments: {one:?} -> {fifty:?} -> {serving:?}"
    );
    assert!(
        fifty.0 < one.0 + 10 && serving.0 < SEGMENTS as usize,
        "threads grew with the segments: {one:?} -> {fifty:?} -> {serving:?}"
    );
    drop(readers);
    importer.terminate();
    exporter.terminate();
    drop(writers);
    for m in &mirrors {
        assert!(!exists(m), "{} left behind", &**m);
    }
}

/// The threads of the importing bridge `pid` once its named `import …` threads are at most
/// `at_most` (a new import's setup thread ends once its subscriptions are in place), or when
/// they never got there within [`PATIENCE`].
fn import_threads_settled(pid: u32, at_most: usize) -> (usize, usize) {
    let start = Instant::now();
    loop {
        let now = threads(pid, "import");
        if now.1 <= at_most || start.elapsed() > PATIENCE {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fifty_imported_states_are_mirrored_by_a_bounded_number_of_threads() {
    const SEGMENTS: u64 = 50;
    let (a, b) = (host("a"), host("b"));
    let prefix = format!("/shmtest-{}", unique("br-imports"));
    let names: Vec<Name> = (0..SEGMENTS)
        .map(|i| Name(format!("{prefix}-{i}")))
        .collect();
    let mirrors: Vec<Name> = names.iter().map(|n| n.mirror(&a)).collect();
    let mut writers = vec![Pose::create(&names[0], &Pose::of(1)).unwrap()];
    let (exporter, endpoint) = Bridge::listening(&a, &args(&["--export", &format!("{prefix}-*")]));
    let importer = Bridge::start(
        &b,
        &args(&[
            "--connect",
            &endpoint,
            "--import",
            &format!("{a}/{}-*", prefix.trim_start_matches('/')),
        ]),
    );
    let pid = importer.child.id();
    // Every mirror gets the current value, then a new one: its import is running.
    let mut readers = vec![open_mirror(&mirrors[0])];
    writers[0].write(&Pose::of(1000));
    wait_until(&format!("the new value of {}", &*mirrors[0]), || {
        readers[0].read() == Pose::of(1000)
    });
    // One import: the discovery loop's thread, once the import's setup is done.
    let one = import_threads_settled(pid, 1);
    for n in &names[1..] {
        writers.push(Pose::create(n, &Pose::of(1)).unwrap());
    }
    readers.extend(mirrors[1..].iter().map(|m| open_mirror(m)));
    for (i, w) in writers.iter_mut().enumerate() {
        w.write(&Pose::of(2000 + i as u64));
    }
    for (i, r) in readers.iter().enumerate() {
        wait_until(&format!("the new value of {}", &*mirrors[i]), || {
            r.read() == Pose::of(2000 + i as u64)
        });
    }
    let fifty = import_threads_settled(pid, one.1);
    eprintln!(
        "importer threads (all, named import …): one segment {one:?}, {SEGMENTS} segments \
         after their updates went through {fifty:?}"
    );
    // No thread per segment: the same threads import one segment or fifty.
    assert!(
        fifty.1 <= one.1,
        "import threads grew with the segments: {one:?} -> {fifty:?}"
    );
    assert!(
        fifty.0 < one.0 + 10 && fifty.0 < SEGMENTS as usize,
        "threads grew with the segments: {one:?} -> {fifty:?}"
    );
    drop(readers);
    importer.terminate();
    exporter.terminate();
    drop(writers);
    for m in &mirrors {
        assert!(!exists(m), "{} left behind", &**m);
    }
}

#[test]
fn a_spinning_exporter_carries_every_value_and_stops_on_sigterm() {
    let (a, b) = (host("a"), host("b"));
    let names = [Name::new("br-spin"), Name::new("br-spin")];
    let mirrors: Vec<Name> = names.iter().map(|n| n.mirror(&a)).collect();
    let mut writers: Vec<_> = names
        .iter()
        .map(|n| Pose::create(n, &Pose::of(1)).unwrap())
        .collect();
    // Longer than the pauses between writes below: the exporter spins through most of them.
    let (exporter, endpoint) = Bridge::listening(
        &a,
        &args(&[
            "--spin-us",
            "20000",
            "--export",
            &names[0],
            "--export",
            &names[1],
        ]),
    );
    let imports: Vec<String> = names.iter().map(|n| format!("{a}/{}", n.bare())).collect();
    let importer = Bridge::start(
        &b,
        &args(&[
            "--connect",
            &endpoint,
            "--import",
            &imports[0],
            "--import",
            &imports[1],
        ]),
    );
    let readers: Vec<_> = mirrors.iter().map(|m| open_mirror(m)).collect();
    // Each value, to one state then the other, reaches its mirror before the next is written.
    for n in 2..=100u64 {
        for (w, r) in writers.iter_mut().zip(&readers) {
            w.write(&Pose::of(n));
            wait_until(&format!("value {n} on the mirror"), || {
                let v = r.read();
                assert!(v.intact() && v.seq <= n, "{v:?}");
                v.seq == n
            });
        }
    }
    drop(readers);
    importer.terminate();
    // Stopped while spinning or sleeping, it exits 0.
    exporter.terminate();
    drop(writers);
    for m in &mirrors {
        assert!(!exists(m), "{} left behind", &**m);
    }
}
