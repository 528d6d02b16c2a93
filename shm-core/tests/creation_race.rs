//! Many processes racing `open_or_create` on one name: exactly one creates it, and every other
//! one attaches to a fully initialized segment (as its next writer, or, while another writer
//! holds it, as a reader); the same on a segment whose creator died before making it ready.

mod common;

use common::{env, role, spawn_role, Name, ENTRY};
use shm_core::{Error, Options, SharedState};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

const PROCESSES: usize = 8;
const ROUNDS: u64 = 50;
type Payload = [u64; 16];
/// The control segment: the round number the racers may start.
type Control = u64;

/// Child-process entry point (see `common::ENTRY`).
#[test]
#[ignore = "child-process entry point: runs only when a test spawns it"]
fn child_process_entry_point() {
    match role().as_deref() {
        Some("racer") => racer(),
        Some("abandon") => {
            // Creates the segment and dies (abort) just before making it ready.
            let _ = shm_core::__private::hooks::crash_before_ready(Options::new())
                .create(&env("SHM_NAME"), &[0u64; 16]);
            unreachable!("the creator aborts before ready");
        }
        Some(other) => panic!("unknown role {other}"),
        None => {}
    }
}

fn racer() {
    let control = Control::open(&env("SHM_CONTROL")).expect("open control");
    let prefix = env("SHM_PREFIX");
    for round in 1..=ROUNDS {
        // Every racer sleeps on the control segment's futex and is woken at once.
        while control.read() < round {
            let _ = control.wait_for_update(control.version(), Duration::from_secs(10));
        }
        let name = format!("{prefix}-{round}");
        let expected = [round; 16];
        // Short enough that rounds on abandoned segments stay quick, long enough for a racer
        // that recovers one to finish.
        let options = Options::new().ready_wait(Duration::from_millis(300));
        let outcome = match options.open_or_create(&name, &expected) {
            Ok(mut w) => {
                let created = w.created();
                if w.get().ok() != Some(expected) {
                    format!("bad-value {:?}", w.get().map(|v| v[0]))
                } else {
                    w.write(&expected);
                    if created {
                        "created".to_string()
                    } else {
                        "attached-writer".to_string()
                    }
                }
            }
            // Another racer holds the writer lease: the segment must still be fully usable.
            Err(Error::WriterBusy { .. }) => match options.open::<Payload>(&name) {
                Ok(r) if r.read() == expected => "attached-reader".to_string(),
                Ok(r) => format!("bad-value {:?}", r.read()[0]),
                Err(e) => format!("error {e}"),
            },
            Err(e) => format!("error {e}"),
        };
        println!("round {round} {outcome}");
    }
}

#[test]
fn of_eight_racing_processes_exactly_one_creates_each_round() {
    race(false);
}

/// Every round's segment was left half-made by a creator that died: one racer recovers it, and
/// every other one attaches to it (never `NotReady`, which a racer that lost the recovery got).
#[test]
fn of_eight_processes_racing_on_an_abandoned_segment_one_recovers_it_each_round() {
    race(true);
}

/// Runs `ROUNDS` rounds of `PROCESSES` racers, each round on a new name; with `abandoned`, a
/// creator that died before making the segment ready made the name first.
fn race(abandoned: bool) {
    if role().is_some() {
        return;
    }
    let control = Name::new("race-ctl");
    let prefix = Name::new("race");
    let mut ctl = Control::create(&control, &0).unwrap();
    let vars = [
        ("SHM_CONTROL", control.to_string()),
        ("SHM_PREFIX", prefix.to_string()),
    ];
    let (tx, rx) = mpsc::channel::<(u64, String)>();
    let mut children = Vec::new();
    for _ in 0..PROCESSES {
        let mut child = spawn_role(ENTRY, "racer", &vars);
        let out = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("round ") {
                    let (n, outcome) = rest.split_once(' ').unwrap();
                    let _ = tx.send((n.parse().unwrap(), outcome.to_string()));
                }
            }
        });
        children.push(child);
    }
    let mut tally: HashMap<String, u32> = HashMap::new();
    for round in 1..=ROUNDS {
        if abandoned {
            let name = format!("{}-{round}", &*prefix);
            let mut creator = spawn_role(ENTRY, "abandon", &[("SHM_NAME", name.clone())]);
            assert!(!creator.wait().unwrap().success(), "the creator aborts");
            assert!(matches!(
                Options::new()
                    .ready_wait(Duration::ZERO)
                    .open::<Payload>(&name),
                Err(Error::NotReady)
            ));
        }
        ctl.write(&round);
        let mut outcomes = Vec::new();
        while outcomes.len() < PROCESSES {
            let (n, outcome) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a racer hung");
            assert_eq!(n, round);
            outcomes.push(outcome);
        }
        let name = format!("{}-{round}", &*prefix);
        shm_core::remove(&name).unwrap();
        let creators = outcomes.iter().filter(|o| *o == "created").count();
        assert_eq!(creators, 1, "round {round}: {outcomes:?}");
        for o in outcomes {
            assert!(
                o == "created" || o.starts_with("attached"),
                "round {round}: {o}"
            );
            *tally.entry(o).or_default() += 1;
        }
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    eprintln!("outcomes over {ROUNDS} rounds: {tally:?}");
}
