//! `shm ls`, `inspect`, `watch`, `check` and `export` on broadcast streams and queues that live
//! writer processes send to: kinds listed, the newest messages decoded, every message watched
//! in order, a queue observed without taking anything, ring geometry and sequences checked.

mod common;

use common::*;
use shm_core::SharedState;

#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    child_main();
}

/// Message numbers of an `inspect --json` object's messages, checking each value's tick.
fn numbers(j: &serde_json::Value) -> Vec<u64> {
    j["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let n = m["number"].as_u64().unwrap();
            assert_eq!(m["value"]["tick"], n, "message {n} decoded: {m}");
            n
        })
        .collect()
}

#[test]
fn ls_and_inspect_show_streams_and_queues_with_their_newest_messages() {
    let stream = Name::new("ls-stream");
    let queue = Name::new("ls-queue");
    let _w = LiveWriter(spawn_role("stream-writer", &stream, 0, 8));
    let _p = LiveWriter(spawn_role("queue-producer", &queue, 0, 8));
    let mut consumer = Sample::open_consumer(&queue).unwrap();
    assert_eq!(consumer.recv().unwrap().tick, 1);
    assert_eq!(consumer.recv().unwrap().tick, 2);

    for (name, kind, sent, taken) in [
        (&stream, "stream", 10, serde_json::Value::Null),
        (&queue, "queue", 5, serde_json::json!(2)),
    ] {
        let out = shm(&["ls", "--json", "--prefix", name]);
        assert_code(&out, 0);
        let e = &json(&out)[0];
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["kind"], kind);
        assert_eq!(e["type"], "Sample");
        assert_eq!(
            (e["slots"].as_u64(), e["version"].as_u64()),
            (Some(8), Some(sent))
        );
        assert_eq!(e["taken"], taken);
        assert_eq!(e["writer_alive"], true);
    }
    let text = stdout(&shm(&["ls", "--prefix", &stream]));
    assert!(text.starts_with("NAME") && text.contains("KIND"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(" stream ") && l.contains("Sample")),
        "{text}"
    );

    let out = shm(&["inspect", "--json", "--last", "3", "--raw", &stream]);
    assert_code(&out, 0);
    let j = json(&out);
    assert_eq!(j["kind"], "stream");
    assert_eq!(numbers(&j), [8, 9, 10]);
    assert!(j["messages"][0]["raw"].is_string());
    // A queue: the messages not taken yet, and inspecting takes none of them.
    let j = json(&shm(&["inspect", "--json", &queue]));
    assert_eq!(numbers(&j), [3, 4, 5]);
    assert_eq!(consumer.recv().unwrap().tick, 3);

    let text = stdout(&shm(&["inspect", "--last", "2", &stream]));
    for expected in [
        "kind",
        "stream",
        "capacity",
        "8 messages",
        "message 9",
        "message 10",
        "tick",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert!(!text.contains("message 8\n"), "{text}");
}

#[test]
fn watch_prints_every_message_of_a_live_stream_in_order() {
    let stream = Name::new("watch-stream");
    let _w = LiveWriter(spawn_role("stream-writer", &stream, 5, 64));
    let out = shm(&[
        "watch",
        "--json",
        "--count",
        "5",
        "--fields",
        "tick,pose.x",
        &stream,
    ]);
    assert_code(&out, 0);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let first = lines[0]["message"].as_u64().expect("a message number");
    assert!(
        first > 10,
        "watch starts with the next message sent: {first}"
    );
    for (i, l) in lines.iter().enumerate() {
        let n = first + i as u64;
        assert_eq!(l["message"], n, "in order, none missed: {lines:?}");
        assert_eq!(l["fields"]["tick"], n);
        assert_eq!(l["fields"]["pose.x"], n as f64 * 0.5);
    }

    // From the oldest held, as lines: the ring holds messages 1 to 10 and more.
    let out = shm(&[
        "watch",
        "--from-oldest",
        "--count",
        "3",
        "--fields",
        "tick",
        &stream,
    ]);
    assert_code(&out, 0);
    let text = stdout(&out);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got,
        [
            "message=1  tick=1",
            "message=2  tick=2",
            "message=3  tick=3"
        ],
        "{text}"
    );
}

#[test]
fn watch_prints_each_message_or_an_exact_loss_count() {
    // A writer every millisecond into a ring of two: whether or not it laps the watcher, every
    // line is the next message, or says exactly how many were lost before it.
    let stream = Name::new("watch-lag");
    let _w = LiveWriter(spawn_role("stream-writer", &stream, 1, 2));
    let out = shm(&["watch", "--json", "--count", "200", &stream]);
    assert_code(&out, 0);
    let text = stdout(&out);
    let mut expected = None;
    let mut lost = 0;
    for line in text.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(n) = j["lost"].as_u64() {
            lost += n;
            expected = expected.map(|e: u64| e + n);
            continue;
        }
        let n = j["message"].as_u64().unwrap();
        assert_eq!(j["value"]["tick"], n);
        if let Some(e) = expected {
            assert_eq!(n, e, "every message or an exact loss count");
        }
        expected = Some(n + 1);
    }
    eprintln!("lost {lost}");
}

#[test]
fn check_accepts_healthy_streams_and_queues_and_finds_a_damaged_sequence() {
    let stream = Name::new("check-stream");
    let queue = Name::new("check-queue");
    let _w = LiveWriter(spawn_role("stream-writer", &stream, 0, 4));
    let _p = LiveWriter(spawn_role("queue-producer", &queue, 0, 8));
    for name in [&stream, &queue] {
        let out = shm(&["check", name]);
        assert_code(&out, 0);
        let text = stdout(&out);
        assert!(
            text.contains("geometry") && text.contains("slots_offset 320"),
            "{text}"
        );
    }
    let text = stdout(&shm(&["check", &queue]));
    assert!(text.contains("0 taken of 5 sent"), "{text}");
    // Message 10 is in slot 2 of 4; make its sequence word claim message 6.
    let stride = u64::from_ne_bytes(peek(&stream, 48, 8).try_into().unwrap());
    poke(&stream, 320 + 2 * stride, &14u64.to_ne_bytes());
    let out = shm(&["check", &stream]);
    assert_code(&out, 1);
    assert!(
        stdout(&out).contains("slot 2: sequence 14, expected 22"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn export_gives_the_message_type_of_a_stream() {
    let stream = Name::new("export-stream");
    let _w = LiveWriter(spawn_role("stream-writer", &stream, 0, 4));
    let out = shm(&["export", "--lang", "json", &stream]);
    assert_code(&out, 0);
    assert_eq!(
        json(&out)["layout_hash"],
        format!("{:#018x}", Sample::LAYOUT_HASH)
    );
}

#[test]
fn watch_reports_the_exact_number_lost_when_the_writer_laps_it() {
    let stream = Name::new("watch-lapped");
    let mut tx = Sample::create_stream(&stream, 4).unwrap();
    tx.send(&Sample::at(1));
    let mut watch = shm_command()
        .args([
            "watch",
            "--json",
            "--count",
            "5",
            "--from-oldest",
            "--fields",
            "tick",
            &stream,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(watch.stdout.take().unwrap());
    let mut line = String::new();
    // Message 1 (from the oldest held) shows the watcher is receiving; then it is stopped
    // while ten more are sent into a ring of four, so that messages 2 to 7 are overwritten
    // before it reads them.
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["message"],
        1
    );
    let pid = watch.id() as libc::pid_t;
    // SAFETY: signalling our own child process, which is alive (it has not printed its five
    // messages yet).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    for k in 2..=11 {
        tx.send(&Sample::at(k));
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(watch.wait().unwrap().success());
    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["lost"], 6, "{rest}");
    let numbers: Vec<u64> = lines[1..]
        .iter()
        .map(|l| {
            let n = l["message"].as_u64().unwrap();
            assert_eq!(l["fields"]["tick"], n);
            n
        })
        .collect();
    assert_eq!(numbers, [8, 9, 10, 11], "{rest}");
}
