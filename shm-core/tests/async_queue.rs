//! The queue's and the untyped stream reader's async paths, across processes, under every
//! backend (`SHM_WAIT_BACKEND`), with the async slice off (a missed wake-up is a wait that
//! reaches its bound): a consumer's `recv_async` and `Stream`, a producer's `send_async` into
//! a queue of capacity 4 that a blocking consumer in another process drains, and a
//! `RawStreamReader` as a `Stream`.

mod common;

use common::{env, kill, role, spawn_role, Name, Rng, ENTRY};
use shm_core::__private::hooks;
use shm_core::{Error, RawStreamReader, SharedState};
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

const BACKENDS: [&str; 3] = ["io_uring", "futex_waitv", "thread"];
/// Messages per run.
const MESSAGES: u64 = 5_000;
/// The bound of one wait: reaching it means a wake-up was missed.
const BOUND: Duration = Duration::from_secs(20);

/// The next item of a `Stream`.
fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |cx: &mut Context<'_>| Pin::new(&mut *s).poll_next(cx))
}

/// A short random pause, so that the other side's waits race with this side's steps.
fn pause(rng: &mut Rng) {
    let p = Duration::from_nanos(rng.below(20_000));
    let t = Instant::now();
    while t.elapsed() < p {
        core::hint::spin_loop();
    }
}

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    let Some(role) = role() else { return };
    let name = env("SHM_NAME");
    let mut rng = Rng(env("SEED").parse().unwrap());
    match role.as_str() {
        "producer" => {
            let mut tx = u64::open_queue_producer(&name).unwrap();
            for m in 1..=MESSAGES {
                pause(&mut rng);
                tx.send_timeout(&m, BOUND).unwrap();
            }
        }
        "consumer" => {
            let mut rx = u64::open_consumer(&name).unwrap();
            for m in 1..=MESSAGES {
                pause(&mut rng);
                assert_eq!(rx.recv_timeout(BOUND).unwrap(), m);
            }
        }
        "stream-writer" => {
            let mut tx = u64::open_stream_writer(&name).unwrap();
            for m in 1..=MESSAGES {
                pause(&mut rng);
                tx.send(&m);
            }
            // Stay the writer until the reader is done (the test kills this process).
            std::thread::sleep(BOUND);
        }
        "async-side" => async_side(&name),
        other => panic!("unknown role {other}"),
    }
}

/// The async half, as `MODE` says: `consume` (alternating `recv_async` and `Stream`),
/// `produce` (`send_async`), or `raw-stream` (`RawStreamReader` as a `Stream`).
fn async_side(name: &str) {
    hooks::disable_async_wait_slice();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mode = env("MODE");
    rt.block_on(async {
        let timeout = |what: &str, m: u64| format!("{what} {m}: no wake-up within {BOUND:?}");
        match mode.as_str() {
            "consume" => {
                let mut rx = u64::open_consumer(name).unwrap();
                println!("ready");
                for m in 1..=MESSAGES {
                    let got = if m % 2 == 0 {
                        tokio::time::timeout(BOUND, rx.recv_async()).await
                    } else {
                        tokio::time::timeout(BOUND, next(&mut rx))
                            .await
                            .map(|o| o.unwrap())
                    };
                    assert_eq!(
                        got.unwrap_or_else(|_| panic!("{}", timeout("message", m)))
                            .unwrap(),
                        m
                    );
                }
            }
            "produce" => {
                let mut tx = u64::open_queue_producer(name).unwrap();
                println!("ready");
                for m in 1..=MESSAGES {
                    let sent = tokio::time::timeout(BOUND, tx.send_async(&m)).await;
                    sent.unwrap_or_else(|_| panic!("{}", timeout("room for", m)))
                        .unwrap();
                }
            }
            _ => {
                let mut rx = RawStreamReader::subscribe(name).unwrap();
                println!("ready");
                let (mut last, mut lost) = (0u64, 0u64);
                while last < MESSAGES {
                    let item = tokio::time::timeout(BOUND, next(&mut rx)).await;
                    match item
                        .unwrap_or_else(|_| panic!("{}", timeout("message after", last)))
                        .unwrap()
                    {
                        Ok((number, bytes)) => {
                            let value = u64::from_ne_bytes(bytes.try_into().unwrap());
                            assert_eq!(number, value);
                            assert!(number > last);
                            last = number;
                        }
                        Err(Error::Lagged { missed }) => lost += missed,
                        Err(e) => panic!("{e}"),
                    }
                }
                println!("RESULT raw stream: {MESSAGES} messages, {lost} lost to lag");
            }
        }
    });
}

fn run(mode: &str, other_role: &str, make: impl Fn(&str)) {
    use std::io::{BufRead, BufReader};
    for b in BACKENDS {
        let name = Name::new("async-queue");
        make(&name);
        let seed = (std::process::id() as u64) << 20 | 1;
        let env = vec![
            ("SHM_NAME", name.to_string()),
            ("SEED", seed.to_string()),
            ("MODE", mode.to_string()),
            ("SHM_WAIT_BACKEND", b.to_string()),
        ];
        let mut side = spawn_role(ENTRY, "async-side", &env);
        let mut out = BufReader::new(side.stdout.take().unwrap());
        // The other side starts once this one is ready (its handle open).
        let mut line = String::new();
        for _ in 0..100 {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || line.trim() == "ready" {
                break;
            }
        }
        assert_eq!(line.trim(), "ready", "{mode} under {b}");
        let mut other = spawn_role(ENTRY, other_role, &env);
        let status = side.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        if other_role == "stream-writer" {
            kill(&mut other);
        } else {
            assert!(other.wait().unwrap().success(), "{other_role} under {b}");
        }
        eprintln!("{mode} [{b}]: {}", rest.trim());
        assert!(status.success(), "{mode} under {b} failed");
    }
}

#[test]
fn a_queue_consumer_awaits_every_message() {
    if role().is_some() {
        return;
    }
    run("consume", "producer", |n| {
        drop(u64::create_queue(n, 4).unwrap())
    });
}

#[test]
fn a_queue_producer_awaits_room() {
    if role().is_some() {
        return;
    }
    run("produce", "consumer", |n| {
        drop(u64::create_queue(n, 4).unwrap())
    });
}

#[test]
fn a_raw_stream_reader_is_a_stream() {
    if role().is_some() {
        return;
    }
    run("raw-stream", "stream-writer", |n| {
        drop(u64::create_stream(n, 1024).unwrap())
    });
}
