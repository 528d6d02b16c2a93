//! Version 3 of the rolling-upgrade example's `Pose`: the nested `ext`, its last field, grown,
//! and a field appended after it; see `examples::upgrade`.

use examples::upgrade::{self, expect, field, Version};
use shm_core::SharedState;

/// Extra motion data: `w` appended.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "PoseExt", appendable)]
struct Ext {
    z: f64,
    w: u64,
}

/// The third version: 56 bytes.
#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(name = "Pose", appendable)]
struct Pose {
    seq: u64,
    x: f64,
    y: f64,
    check: u64,
    ext: Ext,
    tail: u64,
}

impl Version for Pose {
    fn at(seq: u64) -> Self {
        Pose {
            seq,
            x: field::x(seq),
            y: field::y(seq),
            check: field::check(seq),
            ext: Ext {
                z: field::z(seq),
                w: field::w(seq),
            },
            tail: field::tail(seq),
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
        expect("ext.z", self.ext.z, field::z(s), 0.0, 2, stored)?;
        expect("ext.w", self.ext.w, field::w(s), 0, 3, stored)?;
        expect("tail", self.tail, field::tail(s), 0, 3, stored)
    }
}

fn main() {
    upgrade::main::<Pose>();
}
