//! Version 2 of the rolling-upgrade example's `Pose`: a field appended, itself an appendable
//! struct; see `examples::upgrade`.

use examples::upgrade::{self, expect, field, Version};
use shm_core::SharedState;

/// Extra motion data, appendable too: version 3 grows it.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "PoseExt", appendable)]
struct Ext {
    z: f64,
}

/// The second version: 40 bytes, `ext` appended.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose")]
#[shm(appendable)]
struct Pose {
    seq: u64,
    x: f64,
    y: f64,
    check: u64,
    ext: Ext,
}

impl Version for Pose {
    fn at(seq: u64) -> Self {
        Pose {
            seq,
            x: field::x(seq),
            y: field::y(seq),
            check: field::check(seq),
            ext: Ext { z: field::z(seq) },
        }
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn check(&self, stored: u32) -> Result<(), String> {
        let s = self.seq;
        expect("x", self.x, field::x(s), 0.0, 1, stored)?;
        expect("y", self.y, field::y(s), 0.0, 1, stored)?;
        expect("check", self.check, field::check(s), 0, 1, stored)?;
        expect("ext.z", self.ext.z, field::z(s), 0.0, 2, stored)
    }
}

fn main() {
    upgrade::main::<Pose>();
}
