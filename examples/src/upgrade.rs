//! The driver of the rolling-upgrade example: `upgrade_v1`, `upgrade_v2` and `upgrade_v3` are
//! three separately compiled programs, each with its own version of the appendable type
//! `Pose`, and this is what they run.
//!
//! ```text
//! upgrade_vN create NAME              create NAME and publish back to back until killed
//! upgrade_vN takeover NAME adopt|plain take over NAME's writer (adopting another version's
//!                                      layout, or not) and publish back to back until killed
//! upgrade_vN read NAME STORED COMPAT COUNT
//!                                      read until COUNT distinct values (0: until killed)
//! upgrade_vN stream NAME              create the stream NAME and send back to back until killed
//! upgrade_vN header                   print this version's C header (shm_core::export::c_header)
//! ```
//!
//! Every field of the value published as number `seq` is a function of `seq`, so a reader
//! checks each snapshot whole: a torn read, or a field read from the wrong place, fails it.
//! `STORED` is the version of the layout the segment stores: the fields of later versions
//! must read as zero. `COMPAT` is the [`Compat`] the reader must report.

use shm_core::{Compat, Options, SharedState};
use std::io::Write;
use std::time::Duration;

/// Publish numbers of the `k`-th writer of a segment start at `k * PHASE`, so that a reader
/// can tell which writer wrote what it reads.
pub const PHASE: u64 = 1_000_000_000;

/// One version of the example's `Pose`.
pub trait Version: SharedState + core::fmt::Debug {
    /// The value published as number `seq`.
    fn at(seq: u64) -> Self;
    /// The publish number of a value.
    fn seq(&self) -> u64;
    /// Checks that `self` is `at(seq)` as a segment of version `stored` holds it: the
    /// fields of later versions zero.
    fn check(&self, stored: u32) -> Result<(), String>;
}

/// The fields as functions of `seq`, shared by every version.
pub mod field {
    /// `x`.
    pub fn x(seq: u64) -> f64 {
        seq as f64 * 0.5
    }
    /// `y`.
    pub fn y(seq: u64) -> f64 {
        -(seq as f64) - 0.25
    }
    /// `check`.
    pub fn check(seq: u64) -> u64 {
        seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x0123_4567
    }
    /// `ext.z` (version 2).
    pub fn z(seq: u64) -> f64 {
        seq as f64 * 3.0
    }
    /// `ext.w` (version 3).
    pub fn w(seq: u64) -> u64 {
        !seq
    }
    /// `tail` (version 3).
    pub fn tail(seq: u64) -> u64 {
        seq.rotate_left(17)
    }
}

/// Compares a field with what version `since` of its writer put there.
pub fn expect<T: PartialEq + core::fmt::Debug>(
    name: &str,
    got: T,
    want: T,
    zero: T,
    since: u32,
    stored: u32,
) -> Result<(), String> {
    let want = if stored >= since { want } else { zero };
    if got == want {
        Ok(())
    } else {
        Err(format!("field `{name}` is {got:?}, expected {want:?}"))
    }
}

/// Runs the program: the role and arguments from the command line.
pub fn main<T: Version>() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let code = match (arg(0), arg(1)) {
        ("create", name) => {
            let w = T::create(name, &T::at(1)).unwrap_or_else(|e| fail(&e.to_string()));
            say("ready");
            publish(w, 1)
        }
        ("takeover", name) => {
            let adopt = arg(2) == "adopt";
            match Options::new()
                .adopt_stored_layout(adopt)
                .open_writer::<T>(name)
            {
                Ok(w) => {
                    say(&format!("compat {:?}", w.compat()));
                    let current = w.get().unwrap_or_else(|e| fail(&e.to_string())).seq();
                    publish(w, (current / PHASE + 1) * PHASE)
                }
                Err(e) => {
                    say(&format!("refused: {e}"));
                    3
                }
            }
        }
        ("stream", name) => {
            let mut tx = T::create_stream(name, 64).unwrap_or_else(|e| fail(&e.to_string()));
            say("ready");
            for seq in 1..PHASE {
                tx.send(&T::at(seq));
            }
            0
        }
        ("header", _) => {
            print!("{}", shm_core::export::c_header::<T>());
            0
        }
        ("read", name) => read::<T>(
            name,
            arg(2).parse().expect("STORED"),
            arg(3),
            arg(4).parse().expect("COUNT"),
        ),
        _ => fail(
            "usage: create NAME | takeover NAME adopt|plain | read NAME STORED COMPAT COUNT | stream NAME | header",
        ),
    };
    std::process::exit(code);
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn fail(why: &str) -> ! {
    say(&format!("BAD {why}"));
    std::process::exit(2)
}

/// Publishes `at(seq)` for `seq = from, from + 1, ...` back to back, until killed.
fn publish<T: Version>(mut w: shm_core::Writer<T>, from: u64) -> i32 {
    say(&format!("writing from {from}"));
    for seq in from..from + PHASE - 1 {
        w.write(&T::at(seq));
    }
    0
}

/// Reads until `count` distinct values were checked (0: until killed), printing `phase K`
/// when the first value of the `K`-th writer arrives and `done` at the end.
fn read<T: Version>(name: &str, stored: u32, compat: &str, count: u64) -> i32 {
    let r = T::open(name).unwrap_or_else(|e| fail(&e.to_string()));
    if format!("{:?}", r.compat()) != compat {
        fail(&format!("compat is {:?}, expected {compat}", r.compat()));
    }
    let _: Compat = r.compat();
    let (mut last, mut distinct, mut phase, mut idle) = (0u64, 0u64, None, 0u32);
    loop {
        let v = r.read();
        if let Err(e) = v.check(stored) {
            fail(&format!("{e} in {v:?}"));
        }
        let seq = v.seq();
        if seq < last {
            fail(&format!("went back from {last} to {seq}"));
        }
        if seq == last {
            idle += 1;
            if idle > 1000 {
                // Between two writers: sleep on the futex, for ten minutes at most in all.
                let mut waits = 0;
                while r
                    .wait_for_update(r.version(), Duration::from_secs(1))
                    .is_err()
                {
                    waits += 1;
                    if waits > 600 {
                        fail("no new value for ten minutes");
                    }
                }
                idle = 0;
            }
            continue;
        }
        idle = 0;
        last = seq;
        distinct += 1;
        if phase != Some(seq / PHASE) {
            phase = Some(seq / PHASE);
            say(&format!("phase {}", seq / PHASE));
        }
        if count != 0 && distinct >= count {
            say(&format!("done {distinct}"));
            return 0;
        }
    }
}
