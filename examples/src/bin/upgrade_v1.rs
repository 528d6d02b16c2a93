//! Version 1 of the rolling-upgrade example's `Pose`; see `examples::upgrade` for what it
//! runs. `upgrade_v2` and `upgrade_v3` are later versions, compiled separately.

use examples::upgrade::{self, expect, field, Version};
use shm_core::SharedState;

/// The first version: 32 bytes.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose", appendable)]
struct Pose {
    seq: u64,
    x: f64,
    y: f64,
    check: u64,
}

impl Version for Pose {
    fn at(seq: u64) -> Self {
        Pose {
            seq,
            x: field::x(seq),
            y: field::y(seq),
            check: field::check(seq),
        }
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn check(&self, stored: u32) -> Result<(), String> {
        let s = self.seq;
        expect("x", self.x, field::x(s), 0.0, 1, stored)?;
        expect("y", self.y, field::y(s), 0.0, 1, stored)?;
        expect("check", self.check, field::check(s), 0, 1, stored)
    }
}

fn main() {
    upgrade::main::<Pose>();
}
